//! One of the two processes that race to place one claim
//! (`tests/races.rs`): it gets claims as id + token, as a dialer fleet gets
//! them from a queue, and places them through `Store::place_call`.
//!
//! `claim-racer --db F --dials L --process P` (F: an SQLite file or a
//! `postgres://` URL) reads commands on stdin and answers each with one line
//! on stdout:
//! - `claim <id> <token>`: `Store::claim_by_token`, keeping the claim;
//!   answers `claimed` or `refused <CODE>`.
//! - `place`: `place_call` of the claim kept; answers `placed <status>` or
//!   `refused <CODE>`.
//! - `claim-place <id> <token>`: both at once; answers as the step that
//!   answered last.
//!
//! Its dialer appends `dialed <id> p<P>` to L before answering the call,
//! so the parent counts the calls really placed. Any error but
//! INVALID_TRANSITION (a lost race) is printed as `error <CODE> <message>`
//! and ends the process with 1.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::exit;
use std::time::Duration;

use callback_store::{Claim, Error, ErrorCode, Store};
use callback_store_reliability::{LoggedDialer, Rng, WorkLog};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |key: &str| {
        args.iter()
            .position(|a| a == key)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| {
                eprintln!("usage: claim-racer --db F --dials L --process P");
                exit(2)
            })
    };
    let store = Store::open(arg("--db")).unwrap_or_else(|e| die(&e));
    let log = WorkLog::open(Path::new(arg("--dials")), false).unwrap_or_else(|e| {
        eprintln!("claim-racer: cannot open the dial log: {e}");
        exit(1)
    });
    // Every call is answered at once: the race is about who places it.
    let dialer = LoggedDialer::new(
        log,
        Rng::new(0),
        &format!("p{}", arg("--process")),
        Duration::ZERO,
        100,
    );
    let mut held: Option<Claim> = None;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_else(|e| {
            eprintln!("claim-racer: stdin: {e}");
            exit(1)
        });
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["claim", id, token] => claim(&store, id, token, &mut held),
            ["place"] => place(&store, &dialer, held.take()),
            ["claim-place", id, token] => match claim(&store, id, token, &mut held) {
                Ok(_) => place(&store, &dialer, held.take()),
                refused => refused,
            },
            _ => {
                eprintln!("claim-racer: unknown command {line:?}");
                exit(2)
            }
        };
        let text = match answer {
            Ok(text) => text,
            Err(e) if e.code() == ErrorCode::InvalidTransition => format!("refused {}", e.code()),
            Err(e) => die(&e),
        };
        if let Some(e) = dialer.take_error() {
            eprintln!("claim-racer: {e}");
            exit(1);
        }
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .unwrap_or_else(|_| exit(1));
    }
}

fn claim(store: &Store, id: &str, token: &str, held: &mut Option<Claim>) -> Result<String, Error> {
    *held = Some(store.claim_by_token(id, token)?);
    Ok("claimed".to_owned())
}

fn place(store: &Store, dialer: &LoggedDialer, claim: Option<Claim>) -> Result<String, Error> {
    let Some(claim) = claim else {
        eprintln!("claim-racer: place without a claim");
        exit(2)
    };
    Ok(format!(
        "placed {}",
        store.place_call(dialer, &claim)?.status
    ))
}

fn die(e: &Error) -> ! {
    println!("error {} {e}", e.code());
    exit(1)
}
