// One scenario through openapi-fetch with the types openapi-typescript
// generated from openapi.yaml (./schema.d.ts), against a real
// `callback-store serve`. scripts/test-clients.sh generates the types,
// compiles this with `tsc --strict` (so every path, parameter, body and
// answer used here must exist in the generated types) and runs it with node.
//
// Environment: CALLBACK_STORE_URL, CALLBACK_STORE_TOKEN, CALLBACK_STORE_DB
// (the server's SQLite file, locked by HOLD_LOCK, hold_lock.py, for the busy error).
import createClient from "openapi-fetch";
import { spawn } from "node:child_process";
import { once } from "node:events";
import type { components, paths } from "./schema.js";

type ApiError = components["schemas"]["Error"];
type ErrorCode = ApiError["code"];
type Callback = components["schemas"]["Callback"];

const url = process.env.CALLBACK_STORE_URL!;
const client = createClient<paths>({
    baseUrl: url,
    headers: { Authorization: `Bearer ${process.env.CALLBACK_STORE_TOKEN}` },
});
const seen = new Set<ErrorCode>();
// Every code of the Error schema, as the generated type spells them: a code
// missing from the type, or one the type has and this list not, fails tsc.
const documented = {
    UNAUTHORIZED: 0, NOT_FOUND: 0, INVALID_TRANSITION: 0, CONFLICT: 0, VALIDATION_ERROR: 0,
    STORAGE_ERROR: 0, SCHEMA_ERROR: 0, METHOD_NOT_ALLOWED: 0, INTERNAL_ERROR: 0,
} satisfies Record<ErrorCode, 0>;

function check(condition: boolean, what: string, detail?: unknown): asserts condition {
    if (!condition) {
        throw new Error(`${what}: ${JSON.stringify(detail)}`);
    }
}

// A success: the status, and the typed body.
function ok<T>(r: { data?: T; error?: unknown; response: Response }, status = 200): T {
    check(r.response.status === status && r.data !== undefined, `expected ${status}`, [r.response.status, r.error]);
    return r.data;
}

// An error answer: the typed Error body with the expected code.
function failed(r: { error?: ApiError; response: Response }, status: number, code: ErrorCode): ApiError {
    check(r.response.status === status, `expected ${status} ${code}`, [r.response.status, r.error]);
    const body = r.error;
    check(body !== undefined && body.code === code && body.error.length > 0, `expected ${code}`, body);
    seen.add(body.code);
    return body;
}

function at(days: number): string {
    return new Date(Date.UTC(2030, 2, 5 + days, 10)).toISOString().replace(".000Z", "Z");
}

async function main(): Promise<void> {
    check(ok(await client.GET("/healthz")).status === "ok", "health");

    // Create with an idempotency key: the retry answers the same callback.
    const body = { to_number: "+12015551234", scheduled_at: at(0), source_session_id: "sess_ts", agent_id: "agent_ts" };
    const key = { header: { "Idempotency-Key": "ts/1" } };
    const first = ok(await client.POST("/v1/callbacks", { params: key, body }), 201);
    const again = ok(await client.POST("/v1/callbacks", { params: key, body }), 201);
    check(again.id === first.id && first.status === "scheduled", "idempotent create", [first, again]);
    failed(await client.POST("/v1/callbacks", { params: key, body: { ...body, to_number: "+12015559999" } }), 409, "CONFLICT");
    const ids: string[] = [first.id];
    for (let day = 1; day < 5; day++) {
        const created = await client.POST("/v1/callbacks", {
            body: { to_number: "+12015551234", scheduled_at: at(day), source_session_id: "sess_ts" },
        });
        ids.push(ok(created, 201).id);
    }

    // List with filters, walking the cursor two at a time.
    const walked: string[] = [];
    let cursor: string | undefined;
    for (;;) {
        const page = ok(await client.GET("/v1/callbacks", {
            params: { query: { source_session_id: "sess_ts", status: "scheduled", order: "scheduled_asc", limit: 2, cursor } },
        }));
        walked.push(...page.callbacks.map((c: Callback) => c.id));
        if (page.next_cursor === null) break;
        cursor = page.next_cursor;
    }
    check(JSON.stringify(walked) === JSON.stringify(ids), "cursor walk", [walked, ids]);
    const byAgent = ok(await client.GET("/v1/callbacks", { params: { query: { agent_id: "agent_ts" } } }));
    check(byAgent.callbacks.length === 1 && byAgent.callbacks[0].id === first.id, "agent filter", byAgent);

    const one = ok(await client.GET("/v1/callbacks/{id}", { params: { path: { id: first.id } } }));
    check(one.to_number === "+12015551234", "get", one);

    const cancelled = ok(await client.POST("/v1/callbacks/{id}/cancel", {
        params: { path: { id: ids[1] } }, body: { reason: "called in" },
    }));
    check(cancelled.status === "cancelled", "cancel", cancelled);
    const moved = ok(await client.POST("/v1/callbacks/{id}/reschedule", {
        params: { path: { id: ids[2] } }, body: { scheduled_at: at(30) },
    }));
    check(moved.scheduled_at === at(30), "reschedule", moved);

    // Dispatch, then complete with the claim's token.
    const dispatched = await client.POST("/v1/callbacks/{id}/dispatch", { params: { path: { id: first.id } } });
    check(ok(dispatched).status === "dispatching", "dispatch", dispatched.data);
    const token = dispatched.response.headers.get("Claim-Token");
    check(token !== null && /^[0-9a-f]{32}$/.test(token), "claim token", token);
    const done = ok(await client.POST("/v1/callbacks/{id}/complete", {
        params: { path: { id: first.id } }, body: { created_session_id: "sess_new", claim_token: token },
    }));
    check(done.status === "dispatched" && done.created_session_id === "sess_new", "complete", done);

    // Dispatch, then fail; the follow-up is refused by the default policy (one attempt).
    ok(await client.POST("/v1/callbacks/{id}/dispatch", { params: { path: { id: ids[3] } } }));
    const lost = ok(await client.POST("/v1/callbacks/{id}/fail", {
        params: { path: { id: ids[3] } }, body: { failure_cause: "no route" },
    }));
    check(lost.status === "failed" && lost.failure_cause === "no route", "fail", lost);
    failed(await client.POST("/v1/callbacks/{id}/retry", {
        params: { path: { id: ids[3] } }, body: { outcome: "no_answer" },
    }), 409, "INVALID_TRANSITION");

    const history = ok(await client.GET("/v1/callbacks/{id}/events", { params: { path: { id: first.id } } }));
    const actions = history.events.map((e) => e.action).join(",");
    check(actions === "create,dispatch,complete_dispatch", "history", actions);

    // The calling policy: the default, then one put and read back.
    check(ok(await client.GET("/v1/calling-policy")).max_attempts === 1, "default policy");
    const put = ok(await client.PUT("/v1/calling-policy", {
        body: {
            timezone: "America/New_York",
            windows: [{ days: ["mon", "fri"], start: "08:00", end: "21:00" }],
            max_attempts: 3, retry_intervals: ["2h", "1d"], retry_on: ["no_answer", "busy"],
        },
    }));
    const read = ok(await client.GET("/v1/calling-policy"));
    check(JSON.stringify(read) === JSON.stringify(put) && put.windows[0].end === "21:00", "policy", [put, read]);
    const agent = { params: { path: { agent_id: "agent_ts" } } };
    ok(await client.PUT("/v1/agents/{agent_id}/calling-policy", { ...agent, body: { max_attempts: 2 } }));
    check(ok(await client.GET("/v1/agents/{agent_id}/calling-policy", agent)).max_attempts === 2, "agent policy");
    const removed = await client.DELETE("/v1/agents/{agent_id}/calling-policy", agent);
    check(removed.response.status === 204, "delete agent policy", removed.response.status);
    failed(await client.GET("/v1/agents/{agent_id}/calling-policy", agent), 404, "NOT_FOUND");

    // The change feed from the start, page by page, to an empty page.
    const changes: components["schemas"]["Change"][] = [];
    let since = "start";
    for (;;) {
        const page = ok(await client.GET("/v1/events", { params: { query: { since, limit: 3 } } }));
        // The type is the JSON page or the text/event-stream text: JSON was asked for.
        check(typeof page !== "string", "a JSON page", page);
        changes.push(...page.changes);
        since = page.next_cursor;
        if (page.changes.length === 0) break;
    }
    check(changes.length === 11, "feed length", changes.map((c) => [c.callback_id, c.action]));
    const firstActions = changes.filter((c) => c.callback_id === first.id).map((c) => c.action).join(",");
    check(firstActions === "create,dispatch,complete_dispatch", "feed of one callback", firstActions);

    const stats = ok(await client.GET("/v1/stats"));
    check("counts" in stats, "an organization's stats", stats);
    const { scheduled, cancelled: nCancelled, dispatched: nDispatched, failed: nFailed } = stats.counts;
    check([scheduled, nCancelled, nDispatched, nFailed].join() === "2,1,1,1", "stats", stats.counts);

    const exposition = await client.GET("/metrics", { parseAs: "text" });
    check(exposition.response.status === 200 && String(exposition.data).trimEnd().endsWith("# EOF"), "metrics");

    // One error of each code a running server answers, typed as Error.
    failed(await client.GET("/v1/callbacks/{id}", { params: { path: { id: "cb_missing" } } }), 404, "NOT_FOUND");
    failed(await client.GET("/v1/callbacks", { params: { query: { limit: 0 } } }), 400, "VALIDATION_ERROR");
    failed(await client.POST("/v1/callbacks/{id}/cancel", { params: { path: { id: first.id } } }), 409, "INVALID_TRANSITION");
    failed(await client.POST("/v1/callbacks", {
        body: { to_number: "+12015551234", scheduled_at: at(0), reason: "x".repeat(300 * 1024) },
    }), 413, "VALIDATION_ERROR");
    const intruder = createClient<paths>({ baseUrl: url, headers: { Authorization: "Bearer cbs_not_a_key" } });
    failed(await intruder.GET("/v1/callbacks/{id}", { params: { path: { id: first.id } } }), 401, "UNAUTHORIZED");
    // No typed path takes another method: a raw request, read as Error.
    const wrong = await fetch(`${url}/v1/callbacks`, {
        method: "DELETE", headers: { Authorization: `Bearer ${process.env.CALLBACK_STORE_TOKEN}` },
    });
    const wrongBody = (await wrong.json()) as ApiError;
    failed({ error: wrongBody, response: wrong }, 405, "METHOD_NOT_ALLOWED");
    // A writer holding the database past the server's busy timeout: 503.
    const holder = spawn("python3", [process.env.HOLD_LOCK!, process.env.CALLBACK_STORE_DB!], {
        stdio: ["pipe", "pipe", "inherit"],
    });
    const [line] = (await once(holder.stdout!, "data")) as [Buffer];
    check(line.toString().trim() === "locked", "lock held", line.toString());
    const busy = await client.POST("/v1/callbacks", { body: { to_number: "+12015551234", scheduled_at: at(0) } });
    holder.stdin!.end();
    const [exitCode] = (await once(holder, "exit")) as [number];
    check(exitCode === 0, "lock released", exitCode);
    failed(busy, 503, "STORAGE_ERROR");
    check(busy.response.headers.get("Retry-After") === "1", "Retry-After", busy.response.headers.get("Retry-After"));

    // SCHEMA_ERROR (a database that is no callback store, refused when the
    // server opens it) and INTERNAL_ERROR (a bug): no request makes a running
    // server answer them; the type has them (`documented` above).
    const answered = Object.keys(documented).filter((c) => c !== "SCHEMA_ERROR" && c !== "INTERNAL_ERROR").sort();
    check(JSON.stringify([...seen].sort()) === JSON.stringify(answered), "codes seen", [...seen]);
    console.log(`typescript client: scenario passed (${changes.length} changes; answered error codes: ${answered.join(", ")})`);
}

main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
});
