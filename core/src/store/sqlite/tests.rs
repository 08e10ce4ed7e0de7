//! Group commit, proven member by member: each test holds the connection in
//! a first writer until the others are queued for it, so the group they
//! form is certain rather than left to the scheduler.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use super::Sqlite;
use crate::db::Dao;
use crate::error::{Error, Result};
use crate::model::ApiKey;
use crate::schema;
use crate::time::Timestamp;

/// What one member of a group does.
type Work<'a> = dyn Fn(&dyn Dao) -> Result<()> + Sync + 'a;

fn now() -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn open(path: &Path, group_commit: bool) -> Sqlite {
    open_with(path, group_commit, false)
}

/// A store on a migrated file; `readers`: reads through connections of
/// their own, as a store opened on a file does.
fn open_with(path: &Path, group_commit: bool, readers: bool) -> Sqlite {
    let mut conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    schema::migrate(&mut conn).unwrap();
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE;
    let budget = super::busy::Budget {
        timeout: Duration::from_secs(5),
        retries: Default::default(),
    };
    let readers = readers.then(|| super::Readers::new(path, flags, budget.clone()));
    Sqlite::new(conn, readers, group_commit, budget)
}

/// A write of one row (an API key named `id`): the smallest thing a
/// member can do.
fn insert(dao: &dyn Dao, id: &str) -> Result<()> {
    let key = ApiKey {
        id: id.to_owned(),
        organization_id: "org_test".to_owned(),
        label: "test".to_owned(),
        created_at: dao.now(),
        revoked_at: None,
    };
    dao.insert_api_key(&key, id.as_bytes())
}

/// The keys another connection sees: what is committed.
fn committed(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM api_keys ORDER BY id").unwrap();
    let ids = stmt.query_map([], |row| row.get(0)).unwrap();
    ids.collect::<rusqlite::Result<_>>().unwrap()
}

/// Runs `first` as a writer that keeps the connection until `others`
/// writers are queued for it, then runs those writers; returns each one's
/// answer (first's, then the others' in start order) and the committed
/// keys each writer saw from another connection when it was answered.
fn group_of(
    store: &Sqlite,
    path: &Path,
    first: &Work,
    others: &[&Work],
) -> Vec<(Result<()>, Vec<String>)> {
    thread::scope(|s| {
        let (entered, wait_for_entered) = mpsc::channel();
        let leader = s.spawn(move || {
            let answer = store.write(now, |dao| {
                entered.send(()).unwrap();
                // Hold the connection until every other writer waits for it.
                while store.waiting.load(Ordering::SeqCst) < others.len() {
                    thread::sleep(Duration::from_millis(1));
                }
                first(dao)
            });
            (answer, committed(path))
        });
        wait_for_entered.recv().unwrap();
        let followers: Vec<_> = others
            .iter()
            .map(|work| {
                s.spawn(move || {
                    let answer = store.write(now, |dao| work(dao));
                    (answer, committed(path))
                })
            })
            .collect();
        let mut answers = vec![leader.join().unwrap()];
        answers.extend(followers.into_iter().map(|h| h.join().unwrap()));
        answers
    })
}

#[test]
fn writers_queued_for_the_connection_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = open(&path, true);
    let before = store.commits();
    let answers = group_of(
        &store,
        &path,
        &|dao| insert(dao, "key_a"),
        &[&|dao| insert(dao, "key_b"), &|dao| insert(dao, "key_c")],
    );
    assert_eq!(store.commits() - before, 1, "three writers, one COMMIT");
    for (answer, seen) in answers {
        answer.unwrap();
        // Answered only once durable: another connection already sees all.
        assert_eq!(seen, ["key_a", "key_b", "key_c"]);
    }
}

#[test]
fn a_refused_member_is_rolled_back_alone_and_answered_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = open(&path, true);
    let refused = |dao: &dyn Dao| -> Result<()> {
        insert(dao, "key_refused")?;
        Err(Error::validation("label", "refused after writing"))
    };
    let answers = group_of(
        &store,
        &path,
        &|dao| insert(dao, "key_a"),
        &[&refused, &|dao| insert(dao, "key_c")],
    );
    let codes: Vec<_> = answers.iter().map(|(a, _)| a.clone().err()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some(Error::validation("label", "refused after writing")),
            None
        ]
    );
    for (_, seen) in answers {
        assert_eq!(seen, ["key_a", "key_c"], "the refused member's row is gone");
    }
}

#[test]
fn a_storage_error_in_one_member_fails_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = open(&path, true);
    let broken = |dao: &dyn Dao| -> Result<()> {
        insert(dao, "key_broken")?;
        Err(Error::storage("the disk went away", false))
    };
    let answers = group_of(&store, &path, &|dao| insert(dao, "key_a"), &[&broken]);
    for (answer, seen) in answers {
        assert_eq!(
            answer.unwrap_err(),
            Error::storage("the disk went away", false)
        );
        assert!(seen.is_empty(), "nothing of the group committed: {seen:?}");
    }
    // The connection is usable again, outside any group.
    store.write(now, |dao| insert(dao, "key_after")).unwrap();
    assert_eq!(committed(&path), ["key_after"]);
}

#[test]
fn a_member_whose_unique_insert_fails_fails_the_group() {
    // A constraint SQLite enforces is a storage error of the statement:
    // the store never turns it into a refusal, so the group fails whole.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = open(&path, true);
    let answers = group_of(
        &store,
        &path,
        &|dao| insert(dao, "key_a"),
        &[&|dao| insert(dao, "key_a")],
    );
    assert!(answers.iter().all(|(a, _)| a.is_err()));
    assert!(committed(&path).is_empty());
}

#[test]
fn a_reader_commits_the_open_group_before_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = open(&path, true);
    thread::scope(|s| {
        let (entered, wait_for_entered) = mpsc::channel();
        let store = &store;
        let writer = s.spawn(move || {
            store.write(now, |dao| {
                entered.send(()).unwrap();
                while store.waiting.load(Ordering::SeqCst) < 1 {
                    thread::sleep(Duration::from_millis(1));
                }
                insert(dao, "key_a")
            })
        });
        wait_for_entered.recv().unwrap();
        let read = store.read(now(), |dao| dao.list_api_keys("org_test"));
        writer.join().unwrap().unwrap();
        let ids: Vec<_> = read.unwrap().into_iter().map(|k| k.id).collect();
        assert_eq!(ids, ["key_a"]);
        // The reader read what was committed, not a group in progress.
        assert_eq!(committed(&path), ["key_a"]);
    });
}

#[test]
fn a_panicking_member_is_rolled_back_alone_and_its_caller_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = open(&path, true);
    let answers = thread::scope(|s| {
        let store = &store;
        let (entered, wait_for_entered) = mpsc::channel();
        let leader = s.spawn(move || {
            store.write(now, |dao| {
                entered.send(()).unwrap();
                while store.waiting.load(Ordering::SeqCst) < 2 {
                    thread::sleep(Duration::from_millis(1));
                }
                insert(dao, "key_a")
            })
        });
        wait_for_entered.recv().unwrap();
        let panicking = s.spawn(move || {
            store.write(now, |dao| -> Result<()> {
                insert(dao, "key_panic")?;
                panic!("a bug in a member");
            })
        });
        // Queue the third writer after the panicking one.
        while store.waiting.load(Ordering::SeqCst) < 1 {
            thread::sleep(Duration::from_millis(1));
        }
        let last = s.spawn(move || store.write(now, |dao| insert(dao, "key_c")));
        (
            leader.join().unwrap(),
            panicking.join().is_err(),
            last.join().unwrap(),
        )
    });
    answers.0.unwrap();
    assert!(answers.1, "the panic reaches its own caller");
    answers.2.unwrap();
    assert_eq!(committed(&path), ["key_a", "key_c"]);
}

#[test]
fn with_group_commit_off_every_writer_commits_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alone.db");
    let store = open(&path, false);
    let before = store.commits();
    let answers = group_of(
        &store,
        &path,
        &|dao| insert(dao, "key_a"),
        &[&|dao| insert(dao, "key_b"), &|dao| insert(dao, "key_c")],
    );
    assert_eq!(store.commits() - before, 3);
    assert!(answers.into_iter().all(|(a, _)| a.is_ok()));
}

#[test]
fn a_group_stops_growing_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limit.db");
    let store = open(&path, true);
    let before = store.commits();
    let work: Vec<String> = (0..super::MAX_GROUP + 1)
        .map(|i| format!("key_{i:03}"))
        .collect();
    let closures: Vec<Box<Work<'_>>> = work
        .iter()
        .map(|id| Box::new(move |dao: &dyn Dao| insert(dao, id)) as Box<_>)
        .collect();
    let refs: Vec<&Work> = closures.iter().map(|c| c.as_ref()).collect();
    let answers = group_of(&store, &path, &|dao| insert(dao, "key_first"), &refs);
    assert!(answers.iter().all(|(a, _)| a.is_ok()));
    assert!(
        store.commits() - before >= 2,
        "{} writers cannot fit one group of {}",
        super::MAX_GROUP + 2,
        super::MAX_GROUP
    );
    assert_eq!(committed(&path).len(), super::MAX_GROUP + 2);
}

#[test]
fn a_store_on_a_file_reads_beside_an_open_group_and_sees_only_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readers.db");
    let store = open_with(&path, true, true);
    let keys = |store: &Sqlite| -> Vec<String> {
        let keys = store
            .read(now(), |dao| dao.list_api_keys("org_test"))
            .unwrap();
        keys.into_iter().map(|k| k.id).collect()
    };
    thread::scope(|s| {
        let (written, wait_for_written) = mpsc::channel();
        let (read_done, wait_for_read) = mpsc::channel::<()>();
        let store = &store;
        let writer = s.spawn(move || {
            store.write(now, |dao| {
                insert(dao, "key_a")?;
                written.send(()).unwrap();
                // The transaction stays open until the reader has read.
                wait_for_read.recv().unwrap();
                Ok(())
            })
        });
        wait_for_written.recv().unwrap();
        assert!(keys(store).is_empty(), "an open transaction is not read");
        read_done.send(()).unwrap();
        writer.join().unwrap().unwrap();
    });
    assert_eq!(keys(&store), ["key_a"]);
    assert_eq!(store.commits(), 1);
}
