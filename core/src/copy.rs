//! `Store::copy_into`: every callback, event, API key and calling policy of one store into
//! another, empty one, on either backend (an SQLite file to PostgreSQL and
//! back), verified by counts and a checksum.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::copy::{Row, Table, Value, TABLES};
use crate::db::Dao;
use crate::error::{Error, Result};
use crate::store::Store;

/// Rows read and written a page at a time: one statement a page on
/// PostgreSQL.
const BATCH: usize = 1_000;

/// What a copy moved: counts, and a checksum of every row.
///
/// `checksum` is the SHA-256 (lowercase hex) of a canonical serialization
/// of every row of every table copied, all columns included: `callbacks`
/// in `seq` order (with their idempotency key, request hash, claim token,
/// spent time and last event), then `callback_events` in `seq` order (with
/// `callback_seq` and the previous event of the same callback), then `api_keys` in byte order of `id` (with
/// `token_hash` and `revoked_at`), then the three counts. Each value is
/// one tag byte, then: NULL `0x00`; integer `0x01` and 8 bytes big-endian;
/// text `0x02`, its length in 8 bytes big-endian and its UTF-8 bytes;
/// bytes `0x03`, the same. Timestamps are integer microseconds and JSON is
/// the stored text, so the same rows give the same checksum on either
/// backend. The cursor secret is copied and compared, but kept out of the
/// checksum (the report is printed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    pub callbacks: u64,
    pub events: u64,
    pub api_keys: u64,
    pub calling_policies: u64,
    pub checksum: String,
}

impl Store {
    /// Copies every callback, event, API key and calling policy of this
    /// store, and its cursor secret, into `target`, which must hold none of
    /// them (a store just opened): otherwise VALIDATION_ERROR naming
    /// what it holds, and nothing is written. Either backend to either
    /// backend.
    ///
    /// - This store is read from one snapshot (SQLite: a read transaction;
    ///   PostgreSQL: REPEATABLE READ, READ ONLY), so writers may go on
    ///   during the copy; what they write after it began is not copied.
    /// - The target is written in one transaction, 1,000 rows a batch,
    ///   keeping every row's `seq`, so history and cursor order are the
    ///   same. Before it commits, the target is read back and its counts
    ///   and checksum compared with this store's: a mismatch is a
    ///   STORAGE_ERROR and the target stays empty. After it commits, the
    ///   target is read back again and compared once more.
    /// - On PostgreSQL, the identity sequences move past the copied `seq`s,
    ///   so new callbacks can be created on the target at once.
    /// - Cursors: `target` (this handle) signs and accepts cursors with the
    ///   copied secret at once, so a cursor from this store continues on it.
    ///   Other processes that had the target open before the copy must
    ///   reopen it to do the same.
    pub fn copy_into(&self, target: &Store) -> Result<CopyReport> {
        if self.is_same_store(target) {
            return Err(Error::validation(
                "target",
                "is this store itself: copy into another, empty store",
            ));
        }
        let (copied, secret) = self.snapshot(|source| {
            let secret = source.cursor_secret()?;
            let copied = target.write(|dao| {
                dao.copy_lock()?;
                refuse_unless_empty(dao)?;
                let mut copied = Checksum::default();
                walk(source, |table, rows| {
                    dao.copy_insert(table, rows)?;
                    copied.add(table, rows);
                    Ok(())
                })?;
                dao.set_cursor_secret(&secret)?;
                dao.copy_finish()?;
                let copied = copied.report();
                verify(&copied, &checksum_of(dao)?, "the copy was rolled back")?;
                Ok(copied)
            })?;
            Ok((copied, secret))
        })?;
        let (written, written_secret) =
            target.snapshot(|dao| Ok((checksum_of(dao)?, dao.cursor_secret()?)))?;
        verify(
            &copied,
            &written,
            "the copy was committed: empty the target before copying again",
        )?;
        if written_secret != secret {
            return Err(Error::storage(
                "copy: the target's cursor secret differs from the source's after the copy",
                false,
            ));
        }
        target.replace_cursor_secret(written_secret);
        Ok(copied)
    }
}

/// Pages through every table of `dao`, in `TABLES` order and each in key
/// order, handing each page to `each`.
fn walk(dao: &dyn Dao, mut each: impl FnMut(&Table, &[Row]) -> Result<()>) -> Result<()> {
    for table in &TABLES {
        let mut after: Option<Value> = None;
        loop {
            let rows = dao.copy_page(table, after.as_ref(), BATCH)?;
            if rows.is_empty() {
                break;
            }
            each(table, &rows)?;
            if rows.len() < BATCH {
                break;
            }
            after = rows.last().map(|row| row[table.key].clone());
        }
    }
    Ok(())
}

/// The counts and checksum of everything `dao` holds, read as a copy reads.
fn checksum_of(dao: &dyn Dao) -> Result<CopyReport> {
    let mut checksum = Checksum::default();
    walk(dao, |table, rows| {
        checksum.add(table, rows);
        Ok(())
    })?;
    Ok(checksum.report())
}

/// A copy only fills an empty store: merging two stores' histories would
/// mix their `seq`s, ids and keys.
fn refuse_unless_empty(dao: &dyn Dao) -> Result<()> {
    let mut found = Vec::new();
    for (table, one, many) in [
        (&TABLES[0], "callback", "callbacks"),
        (&TABLES[1], "event", "events"),
        (&TABLES[2], "API key", "API keys"),
        (&TABLES[3], "calling policy", "calling policies"),
    ] {
        match dao.copy_count(table)? {
            0 => {}
            1 => found.push(format!("1 {one}")),
            n => found.push(format!("{n} {many}")),
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::validation(
        "target",
        format!(
            "must be an empty store (a copy never merges), but it holds {}; nothing was written",
            found.join(", ")
        ),
    ))
}

fn verify(expected: &CopyReport, found: &CopyReport, outcome: &str) -> Result<()> {
    if expected == found {
        return Ok(());
    }
    Err(Error::storage(
        format!(
            "copy verification failed: the source has {} callbacks, {} events, {} API keys \
             (checksum {}), the target read back {} callbacks, {} events, {} API keys \
             (checksum {}); {outcome}",
            expected.callbacks,
            expected.events,
            expected.api_keys,
            expected.checksum,
            found.callbacks,
            found.events,
            found.api_keys,
            found.checksum
        ),
        false,
    ))
}

/// The canonical serialization of `CopyReport::checksum`, hashed as rows
/// come, with the count of each table.
#[derive(Default)]
struct Checksum {
    hash: Sha256,
    counts: [u64; TABLES.len()],
}

impl Checksum {
    fn add(&mut self, table: &Table, rows: &[Row]) {
        let index = TABLES.iter().position(|t| t.name == table.name);
        if let Some(i) = index {
            self.counts[i] += rows.len() as u64;
        }
        for value in rows.iter().flatten() {
            self.value(value);
        }
    }

    fn value(&mut self, value: &Value) {
        let (tag, bytes): (u8, &[u8]) = match value {
            Value::Null => (0, &[]),
            Value::Int(v) => {
                self.hash.update([1]);
                self.hash.update(v.to_be_bytes());
                return;
            }
            Value::Text(v) => (2, v.as_bytes()),
            Value::Blob(v) => (3, v),
        };
        self.hash.update([tag]);
        if tag != 0 {
            self.hash.update((bytes.len() as u64).to_be_bytes());
            self.hash.update(bytes);
        }
    }

    fn report(mut self) -> CopyReport {
        let counts = self.counts;
        for count in counts {
            self.value(&Value::Int(count as i64));
        }
        let digest = self.hash.finalize();
        CopyReport {
            callbacks: counts[0],
            events: counts[1],
            api_keys: counts[2],
            calling_policies: counts[3],
            checksum: digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewCallback;
    use chrono::{TimeZone, Utc};

    fn store_with_rows() -> Store {
        let store = Store::open_in_memory().unwrap();
        let org = store.organization("org_a").unwrap();
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        for _ in 0..3 {
            org.create(NewCallback::new("+12015551234", at)).unwrap();
        }
        store.create_api_key("org_a", "key").unwrap();
        store
    }

    #[test]
    fn an_empty_store_has_a_fixed_checksum_and_zero_counts() {
        let report = Checksum::default().report();
        assert_eq!(
            (report.callbacks, report.events, report.api_keys),
            (0, 0, 0)
        );
        assert_eq!(report.checksum.len(), 64);
    }

    #[test]
    fn a_copy_between_two_sqlite_stores_keeps_the_checksum() {
        let source = store_with_rows();
        let target = Store::open_in_memory().unwrap();
        let report = source.copy_into(&target).unwrap();
        assert_eq!(
            (report.callbacks, report.events, report.api_keys),
            (3, 3, 1)
        );
        let again = target.snapshot(|dao| checksum_of(dao)).unwrap();
        assert_eq!(again, report);
    }

    #[test]
    fn a_store_is_not_copied_into_itself() {
        let source = store_with_rows();
        let err = source.copy_into(&source.clone()).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::ValidationError);
    }

    #[test]
    fn one_changed_byte_changes_the_checksum() {
        let mut a = Checksum::default();
        let mut b = Checksum::default();
        a.add(&TABLES[2], &[vec![Value::Text("ab".into()), Value::Null]]);
        b.add(
            &TABLES[2],
            &[vec![Value::Text("a".into()), Value::Text("b".into())]],
        );
        assert_ne!(a.report().checksum, b.report().checksum);
    }
}
