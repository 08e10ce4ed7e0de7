use callback_store::{Callback, ErrorCode, ListQuery, NewCallback, Status, Store};
use chrono::{Duration, Utc};

fn main() -> Result<(), callback_store::Error> {
    // A file path creates and migrates the database; in memory for this example.
    let store = Store::open_in_memory()?;
    let acme = store.organization("org_acme")?;

    // An analysis decided: call this person back in two days.
    let callback = acme.create(NewCallback {
        source_session_id: Some("sess_123".into()),
        idempotency_key: Some("sess_123#0".into()), // a retry returns the same callback
        ..NewCallback::new("+12015551234", Utc::now() + Duration::days(2))
    })?;
    println!("{}", serde_json::to_string(&callback).expect("JSON")); // the API's shape

    let query = ListQuery {
        source_session_id: Some("sess_123".into()),
        ..ListQuery::default()
    };
    assert_eq!(acme.list(&query)?.callbacks.len(), 1); // a page; next_cursor for the next

    // Your dialer places the call and returns its session id; an Err fails the callback.
    let dialer = |cb: &Callback| -> Result<String, String> { Ok(format!("sess_for_{}", cb.id)) };
    // A worker: claims every callback due, places each claim once.
    let report = store.dispatch_due(&dialer, Utc::now() + Duration::days(3), 100)?;
    assert_eq!(report.dispatched.len(), 1);

    // Call someone now: dispatch hands out a claim (the callback and a fencing
    // token); placing it spends the claim, then dials.
    let urgent = acme.create(NewCallback::new("+12015559876", Utc::now()))?;
    let claim = acme.dispatch(&urgent.id)?;
    let placed = store.place_call(&dialer, &claim)?;
    assert_eq!(placed.status, Status::Dispatched);
    let err = store.place_call(&dialer, &claim).unwrap_err(); // the same claim: nobody is called
    assert_eq!(err.code(), ErrorCode::InvalidTransition);
    println!("{err}"); // cannot place_call callback cb_...: stale claim: ...

    let err = acme.cancel(&callback.id, None).unwrap_err(); // dispatched: too late
    assert_eq!(err.code(), ErrorCode::InvalidTransition);
    Ok(())
}
