//! The dashboard (`/ui`, docs/dashboard.md): its page and files are served
//! without a key (they hold no data), typed, under a strict
//! Content-Security-Policy that its markup needs nothing beyond; and every
//! call its script makes is to a route and method that the API has. (What
//! it shows, in a real browser: tests/browser/test_dashboard.py.)

mod common;

use common::*;
use serde_json::json;

const FILES: [(&str, &str); 3] = [
    ("/ui", "text/html; charset=utf-8"),
    ("/ui/app.js", "text/javascript; charset=utf-8"),
    ("/ui/style.css", "text/css; charset=utf-8"),
];

#[test]
fn the_dashboard_and_its_files_are_served_without_a_key_with_their_content_types() {
    let (_db, server, _api) = server_with_token(Options::default());
    for (path, content_type) in FILES {
        let resp = send(client().get(server.url(path)));
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
        assert_eq!(resp.header("content-type"), Some(content_type), "{path}");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert!(!resp.text.is_empty(), "{path}");
    }
    // The page links its files relatively; from `/ui/` it goes to `/ui`.
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let resp = send(no_redirects.get(server.url("/ui/")));
    assert_eq!(resp.status, 308, "{}", resp.text);
    assert_eq!(resp.header("location"), Some("../ui"));
}

#[test]
fn the_dashboard_runs_under_a_strict_content_security_policy_and_has_no_inline_code() {
    let (_db, server, _api) = server_with_token(Options::default());
    for (path, _) in FILES {
        let resp = send(client().get(server.url(path)));
        let policy = resp.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        for loophole in ["unsafe-inline", "unsafe-eval", "*"] {
            assert!(!policy.contains(loophole), "{path}: {policy}");
        }
    }
    // What the policy forbids, the page must not need: inline scripts,
    // inline styles or event handlers would be blocked in the browser.
    let page = send(client().get(server.url("/ui"))).text;
    let scripts: Vec<&str> = page.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "{page}");
    assert!(
        scripts[0].starts_with(r#" src="ui/app.js" defer></script>"#),
        "{page}"
    );
    for inline in [
        "<style",
        " style=",
        " onclick=",
        " onload=",
        " onsubmit=",
        "javascript:",
    ] {
        assert!(!page.contains(inline), "the page holds {inline}");
    }
}

/// The `api('METHOD', '/v1/…'` calls of the script: (method, path), with
/// each `${…}` of a template literal kept as written.
fn api_calls(script: &str) -> Vec<(String, String)> {
    script
        .split("api('")
        .skip(1)
        .filter_map(|call| {
            let (method, rest) = call.split_once("', ")?;
            let quote = rest.chars().next()?;
            let literal = rest[1..].split(quote).next()?;
            Some((method.to_owned(), literal.to_owned()))
        })
        .collect()
}

#[test]
fn every_api_call_of_the_dashboard_script_is_to_a_route_and_method_the_api_has() {
    let (_db, server, api) = server_with_token(Options::default());
    let script = send(client().get(server.url("/ui/app.js"))).text;
    let calls = api_calls(&script);
    // Every mention of the API in the script is one of the calls read here,
    // so none escapes the check below.
    assert_eq!(
        calls.len(),
        script.matches("'/v1/").count() + script.matches("`/v1/").count(),
        "{calls:?}"
    );
    assert!(calls.len() >= 8, "{calls:?}");
    for (method, path) in &calls {
        // A callback of its own for each call: the transitions cannot
        // collide. A `${…}` is always the callback's id.
        let id = api.create(json!({"scheduled_at": "2030-03-05T10:00:00Z"}))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let concrete = match path.split_once("${") {
            Some((head, tail)) => format!("{head}{id}{}", tail.split_once('}').unwrap().1),
            None => path.clone(),
        };
        assert!(!concrete.contains("${"), "{path}");
        let body = (method == "POST").then(|| json!({}));
        let resp = api.call(method, &concrete, body.as_ref());
        // Refused bodies (reschedule without a time) are 400s: the route is
        // there. A missing route is a 404 "no route", a wrong method a 405.
        assert!(
            resp.status == 200 || resp.status == 400,
            "{method} {path} (as {concrete}): {} {}",
            resp.status,
            resp.text
        );
    }
    let methods: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        methods.contains(&"GET") && methods.contains(&"POST"),
        "{methods:?}"
    );
}
