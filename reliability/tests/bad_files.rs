//! Bad files: not a database, truncated, corrupted, migrated by a newer
//! version, read-only (file and folder), on a full disk. Each gives
//! STORAGE_ERROR or SCHEMA_ERROR with a clear message, never a panic, and the
//! data already there stays intact and readable wherever it still exists.
//! A claim whose spend cannot be written places no call, and stays live.
//!
//! Read-only files need more than permission bits when the tests run as root
//! (root writes through them): the tests then make the file immutable with
//! `chattr +i`. The full disk is a small tmpfs mounted for the test. Where
//! neither is possible the test says so on its output and checks nothing.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use callback_store::{Callback, Error, ErrorCode, ListQuery, NewCallback, Status, Store};
use callback_store_reliability::audit;
use chrono::{Duration, TimeZone, Utc};

const ORG: &str = "org_files";

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

/// A store file with `n` callbacks (some cancelled), closed cleanly so that
/// the main file holds everything. Returns their ids.
fn seeded(path: &Path, n: usize) -> Vec<String> {
    let store = Store::open(path).unwrap();
    let org = store.organization(ORG).unwrap();
    let mut ids = Vec::new();
    for chunk in 0..n.div_ceil(50) {
        let batch = (0..50.min(n - chunk * 50))
            .map(|i| NewCallback {
                reason: Some(format!("seeded callback {chunk}/{i} {}", "x".repeat(300))),
                ..NewCallback::new("+12015551234", t0() + Duration::minutes(i as i64))
            })
            .collect();
        ids.extend(org.create_many(batch).unwrap().into_iter().map(|c| c.id));
    }
    for id in ids.iter().step_by(7) {
        org.cancel(id, Some("seeded")).unwrap();
    }
    ids
}

/// Every callback is there, its history too, and the file is sound.
fn assert_readable(path: &Path, ids: &[String]) {
    let store = Store::open(path).unwrap_or_else(|e| panic!("reopen {}: {e}", path.display()));
    store.with_connection(audit::integrity).unwrap();
    let org = store.organization(ORG).unwrap();
    for id in ids {
        org.get(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(!org.history(id).unwrap().is_empty());
    }
}

/// The error is one a bad file may give, and says what happened.
fn assert_file_error(context: &str, err: &Error, words: &[&str]) {
    assert!(
        matches!(err.code(), ErrorCode::StorageError | ErrorCode::SchemaError),
        "{context}: {} {err}",
        err.code()
    );
    let message = err.to_string().to_lowercase();
    assert!(
        words.iter().any(|w| message.contains(w)),
        "{context}: the message {message:?} says none of {words:?}"
    );
}

/// Opens a damaged file and tries every kind of operation on it. Each must
/// succeed or fail with a file error naming the damage; none may panic.
/// Returns how many failed.
fn exercise_damaged(path: &Path, ids: &[String]) -> usize {
    let damage = [
        "corrupt",
        "malformed",
        "not a callback store",
        "not a database",
    ];
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        let store = match Store::open(path) {
            Ok(store) => store,
            Err(e) => {
                assert_file_error("open", &e, &damage);
                println!("{}: open refused: {e}", path.display());
                return 1;
            }
        };
        let org = store.organization(ORG).unwrap();
        let mut failures = 0;
        let mut note = |what: &str, result: Result<(), Error>| {
            if let Err(e) = result {
                assert_file_error(what, &e, &damage);
                if failures == 0 {
                    println!("{}: {what} failed: {e}", path.display());
                }
                failures += 1;
            }
        };
        for id in ids {
            note("get", org.get(id).map(drop));
            note("history", org.history(id).map(drop));
        }
        let mut query = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        loop {
            match org.list(&query) {
                Ok(page) if page.next_cursor.is_some() => query.cursor = page.next_cursor,
                other => {
                    note("list", other.map(drop));
                    break;
                }
            }
        }
        note(
            "create",
            org.create(NewCallback::new("+12015551234", t0())).map(drop),
        );
        // Claims taken from a damaged file go through the spend too.
        match store.claim_due(t0(), 10) {
            Ok(claims) => {
                let answer = |cb: &Callback| Ok::<_, String>(format!("sess_{}", cb.id));
                for claim in &claims {
                    note("place_call", store.place_call(&answer, claim).map(drop));
                }
            }
            Err(e) => note("claim_due", Err(e)),
        }
        failures
    }));
    attempt.unwrap_or_else(|_| panic!("a damaged file made the store panic"))
}

fn page_size(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => n as usize,
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut noise = callback_store_reliability::Rng::new(7);
    let random: Vec<u8> = (0..8192).map(|_| noise.next_u64() as u8).collect();
    let mut header_then_noise = b"SQLite format 3\0".to_vec();
    header_then_noise.extend_from_slice(&random[..4096]);
    for (name, bytes) in [
        (
            "notes.txt",
            b"callbacks to place on Tuesday:\n+12015551234\n".repeat(200),
        ),
        ("random.bin", random.clone()),
        ("header-then-noise.db", header_then_noise),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = Store::open(&path).expect_err(name);
        assert_file_error(
            name,
            &err,
            &["not a callback store", "not a database", "corrupt"],
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} was changed");
    }
}

#[test]
fn a_truncated_database_gives_storage_errors_and_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    let ids = seeded(&original, 300);
    let full = std::fs::read(&original).unwrap();
    let page = page_size(&original);
    assert!(full.len() >= 20 * page, "the seed is too small to cut");
    for (name, keep) in [
        ("half", full.len() / 2 / page * page),
        ("mid-page", full.len() / 3 + 123),
        ("first-page", page),
        ("header", 100),
    ] {
        let path = dir.path().join(format!("truncated-{name}.db"));
        std::fs::write(&path, &full[..keep]).unwrap();
        let failures = exercise_damaged(&path, &ids);
        assert!(failures > 0, "{name}: a truncated file read back as whole");
    }
    assert_readable(&original, &ids);
}

#[test]
fn a_database_corrupted_in_the_middle_gives_storage_errors_and_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    let ids = seeded(&original, 300);
    let full = std::fs::read(&original).unwrap();
    let page = page_size(&original);
    let pages = full.len() / page;
    let mut noise = callback_store_reliability::Rng::new(11);
    for (name, first, count, byte) in [
        ("zeroed", pages / 2, 3, Some(0u8)),
        ("noise", pages / 3, 4, None),
        ("ones", pages / 2 + 2, 2, Some(0xFF)),
    ] {
        let mut bytes = full.clone();
        for b in &mut bytes[first * page..(first + count) * page] {
            *b = byte.unwrap_or_else(|| noise.next_u64() as u8);
        }
        let path = dir.path().join(format!("corrupt-{name}.db"));
        std::fs::write(&path, &bytes).unwrap();
        let check = Store::open(&path)
            .ok()
            .map(|s| s.with_connection(audit::integrity));
        assert!(
            !matches!(check, Some(Ok(()))),
            "{name}: integrity_check did not see the damage"
        );
        let failures = exercise_damaged(&path, &ids);
        assert!(failures > 0, "{name}: a corrupted file read back as whole");
    }
    assert_readable(&original, &ids);
}

#[test]
fn a_file_migrated_by_a_newer_version_is_refused_and_its_data_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    let ids = seeded(&path, 20);
    let newer = rusqlite::Connection::open(&path).unwrap();
    newer
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'from_the_future', '2031-01-01T00:00:00Z', '42')",
            [],
        )
        .unwrap();
    drop(newer);
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SchemaError, "{err}");
    assert_file_error("newer", &err, &["newer version"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a refused file was written"
    );
    // The newer version's data is all there for that version to read.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "DELETE FROM refinery_schema_history WHERE version = 999",
        [],
    )
    .unwrap();
    drop(conn);
    assert_readable(&path, &ids);
}

// ------------------------------------------------------- read-only and full

/// Makes a path unwritable, even for root, until dropped.
struct Immutable(PathBuf);

impl Immutable {
    /// `chmod` first; when that does not stop this process (root),
    /// `chattr +i`. None when nothing works here.
    fn make(path: &Path) -> Option<Immutable> {
        let mode = |m: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
        };
        let is_dir = path.is_dir();
        mode(if is_dir { 0o555 } else { 0o444 });
        let probe = |p: &Path| {
            if p.is_dir() {
                let f = p.join(".probe");
                let ok = std::fs::write(&f, b"x").is_ok();
                std::fs::remove_file(&f).ok();
                ok
            } else {
                std::fs::OpenOptions::new().append(true).open(p).is_ok()
            }
        };
        if !probe(path) {
            return Some(Immutable(path.to_owned()));
        }
        mode(if is_dir { 0o755 } else { 0o644 });
        let chattr = Command::new("chattr").arg("+i").arg(path).status();
        if matches!(chattr, Ok(s) if s.success()) && !probe(path) {
            return Some(Immutable(path.to_owned()));
        }
        println!(
            "SKIPPED: neither permissions nor `chattr +i` make {} read-only for this user \
             (root without CAP_LINUX_IMMUTABLE, or a filesystem without attributes)",
            path.display()
        );
        None
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        Command::new("chattr").arg("-i").arg(&self.0).status().ok();
        use std::os::unix::fs::PermissionsExt;
        let mode = if self.0.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(mode)).ok();
    }
}

/// A live claim on one of the callbacks, as (id, token), handed out before
/// the file turns read-only: a dialer fleet may hold one at that moment.
fn live_claim(path: &Path, ids: &[String]) -> (String, String) {
    let store = Store::open(path).unwrap();
    let claim = store.organization(ORG).unwrap().dispatch(&ids[2]).unwrap();
    (claim.id().to_owned(), claim.token().to_owned())
}

/// Places the claim (id, token) through `store` with a dialer that counts
/// its calls; returns the answer and how many calls were placed.
fn place(store: &Store, (id, token): &(String, String)) -> (Result<Callback, Error>, usize) {
    let claim = store
        .claim_by_token(id, token)
        .unwrap_or_else(|e| panic!("the claim on {id} is live: {e}"));
    let calls = Cell::new(0);
    let dialer = |cb: &Callback| {
        calls.set(calls.get() + 1);
        Ok::<_, String>(format!("sess_{}", cb.id))
    };
    let answer = store.place_call(&dialer, &claim);
    (answer, calls.get())
}

/// Once the file is writable again, the claim that could not be spent is
/// still live and places its one call.
fn assert_claim_places_once(path: &Path, live: &(String, String)) {
    let store = Store::open(path).unwrap();
    let (answer, calls) = place(&store, live);
    assert_eq!(answer.unwrap().status, Status::Dispatched);
    assert_eq!(calls, 1);
}

/// Reads work (or opening fails with a clear file error), writes fail with a
/// read-only STORAGE_ERROR, a live claim cannot be spent so no call is
/// placed, and the file is not changed.
fn assert_read_only_behaviour(path: &Path, ids: &[String], live: &(String, String)) {
    let before = std::fs::read(path).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| match Store::open(path) {
        Err(e) => {
            // The message must say why: "unable to open database file" alone
            // leaves the user guessing.
            assert_file_error(
                "open",
                &e,
                &["read-only", "readonly", "folder", "directory", "permission"],
            );
            println!("open refused: {e}");
        }
        Ok(store) => {
            let org = store.organization(ORG).unwrap();
            for id in ids {
                org.get(id).unwrap_or_else(|e| panic!("read {id}: {e}"));
            }
            let err = org
                .create(NewCallback::new("+12015551234", t0()))
                .unwrap_err();
            assert_file_error("create", &err, &["read-only", "readonly"]);
            let err = org.cancel(&ids[1], None).unwrap_err();
            assert_file_error("cancel", &err, &["read-only", "readonly"]);
            let (answer, calls) = place(&store, live);
            let spend = answer.expect_err("a spend on a read-only file");
            assert_file_error("place_call", &spend, &["read-only", "readonly"]);
            assert_eq!(calls, 0, "a call was placed on a claim that was not spent");
            println!("open read-only; writes refused: {err}");
        }
    }));
    assert!(outcome.is_ok(), "a read-only file made the store panic");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "a read-only file was changed"
    );
}

#[test]
fn a_read_only_file_refuses_writes_with_storage_error_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("read-only.db");
    let ids = seeded(&path, 20);
    let live = live_claim(&path, &ids);
    {
        let Some(_guard) = Immutable::make(&path) else {
            return;
        };
        assert_read_only_behaviour(&path, &ids, &live);
    }
    assert_readable(&path, &ids);
    assert_claim_places_once(&path, &live);
}

#[test]
fn a_read_only_folder_refuses_writes_with_storage_error_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let path = folder.join("in-read-only-folder.db");
    let ids = seeded(&path, 20);
    let live = live_claim(&path, &ids);
    {
        let Some(_guard) = Immutable::make(&folder) else {
            return;
        };
        assert_read_only_behaviour(&path, &ids, &live);
    }
    assert_readable(&path, &ids);
    assert_claim_places_once(&path, &live);
}

/// A tmpfs of `size` mounted on `dir` for the life of the value.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk(dir.to_owned())),
            Ok(o) => {
                println!(
                    "SKIPPED: cannot mount a {size} tmpfs for the full-disk test (not root, or \
                     no CAP_SYS_ADMIN in this container): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: no `mount` command for the full-disk test: {e}");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        Command::new("umount").arg("-l").arg(&self.0).status().ok();
    }
}

#[test]
fn a_full_disk_fails_writes_with_storage_error_and_keeps_every_committed_callback() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("small"), "2m") else {
        return;
    };
    let path = disk.0.join("full.db");
    let store = Store::open(&path).unwrap();
    let org = store.organization(ORG).unwrap();
    // Leave little room, then fill it with callbacks of 60 KiB.
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![7u8; 1024 * 1024]).unwrap();
    let mut committed = Vec::new();
    let err = loop {
        let batch = (0..3)
            .map(|i| NewCallback {
                reason: Some(format!("{i}{}", "r".repeat(60 * 1024))),
                ..NewCallback::new("+12015551234", t0())
            })
            .collect();
        match org.create_many(batch) {
            Ok(made) => committed.extend(made.into_iter().map(|c| c.id)),
            Err(e) => break e,
        }
        assert!(committed.len() < 300, "2 MiB never filled up");
    };
    assert_file_error("create_many on a full disk", &err, &["disk is full"]);
    println!("full disk: {err}");
    assert!(!err.is_busy());
    // Everything committed before is there, and nothing of the failed batch.
    let count = |store: &Store| {
        store.with_connection(|c| {
            c.query_row("SELECT COUNT(*) FROM callbacks", [], |r| r.get::<_, i64>(0))
                .unwrap()
        })
    };
    assert_eq!(count(&store), committed.len() as i64);
    for id in &committed {
        org.get(id).unwrap();
    }
    drop(store);
    assert_readable(&path, &committed);
    // Room again: writing works again, on the same file.
    std::fs::remove_file(&filler).unwrap();
    let store = Store::open(&path).unwrap();
    let org = store.organization(ORG).unwrap();
    org.create(NewCallback::new("+12015551234", t0())).unwrap();
    assert_eq!(count(&store), committed.len() as i64 + 1);
    drop(store);
    drop(disk);
}
