-- wrk script of bench_http.py: every request creates one callback, due in
-- the future, with the API key given after `--`.
wrk.method = "POST"
wrk.body = '{"to_number":"+12015551234","scheduled_at":"2031-03-05T10:00:00Z",' ..
    '"reason":"pricing question","metadata":{"crm_id":"A-1042","tier":"gold"}}'

function init(args)
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. args[1]
end
