//! Data access for API keys: only token hashes are stored.

use rusqlite::OptionalExtension;

use super::rows::{api_key_from_row, API_KEY_COLUMNS};
use super::SqliteDao;
use crate::error::Result;
use crate::model::ApiKey;
use crate::time::{to_micros, Timestamp};

/// The API keys of the store: only token hashes are kept.
pub(crate) trait ApiKeyRows {
    fn insert_api_key(&self, key: &ApiKey, token_hash: &[u8]) -> Result<()>;
    /// The organization of an unrevoked key with this token hash.
    fn organization_of_token(&self, token_hash: &[u8]) -> Result<Option<String>>;
    fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>>;
    /// Revokes a key (again, harmlessly, if it already was) and returns it.
    fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<Option<ApiKey>>;
}

impl ApiKeyRows for SqliteDao<'_> {
    fn insert_api_key(&self, key: &ApiKey, token_hash: &[u8]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO api_keys (id, organization_id, label, token_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        stmt.execute(rusqlite::params![
            key.id,
            key.organization_id,
            key.label,
            token_hash,
            to_micros(key.created_at)
        ])?;
        Ok(())
    }

    /// The organization of an unrevoked key with this token hash.
    fn organization_of_token(&self, token_hash: &[u8]) -> Result<Option<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT organization_id FROM api_keys WHERE token_hash = ?1 AND revoked_at IS NULL",
        )?;
        Ok(stmt.query_row([token_hash], |row| row.get(0)).optional()?)
    }

    fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys
             WHERE organization_id = ?1 ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([organization_id], |row| api_key_from_row(row))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes a key (again, harmlessly, if it already was) and returns it.
    fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<Option<ApiKey>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1
             RETURNING {API_KEY_COLUMNS}"
        ))?;
        Ok(stmt
            .query_row(rusqlite::params![key_id, to_micros(now)], |row| {
                api_key_from_row(row)
            })
            .optional()?)
    }
}
