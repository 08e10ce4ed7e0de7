//! The change feed on PostgreSQL: events are positioned after they commit,
//! by the feed's readers, one at a time (migrations/postgres V6 and
//! `feed.rs` say why).

use super::super::feed::{logged_columns, logged_from_row, FeedRows};
use super::PgDao;
use crate::error::Result;
use crate::feed::LoggedEvent;

/// The most events one reader positions at once: the rest wait for the
/// next reader (or this one's next page).
const POSITION_BATCH: i64 = 10_000;

impl FeedRows for PgDao<'_> {
    fn feed_needs_positions(&self) -> Result<bool> {
        let row = self.query_opt(
            "SELECT 1 FROM callback_events WHERE feed_position IS NULL LIMIT 1",
            &[],
        )?;
        Ok(row.is_some())
    }

    fn position_feed(&self) -> Result<()> {
        // The row lock makes readers position in turn. Under READ COMMITTED
        // the next statement sees every event committed before it, and the
        // positions the previous holder of the lock gave (it committed
        // before this transaction got the lock).
        let last: i64 = self
            .query_opt("SELECT last_position FROM feed_state FOR UPDATE", &[])?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        self.execute(
            "WITH todo AS (
                 SELECT seq, row_number() OVER (ORDER BY seq) AS n
                 FROM callback_events WHERE feed_position IS NULL
                 ORDER BY seq LIMIT $2
             ), positioned AS (
                 UPDATE callback_events e SET feed_position = $1 + todo.n
                 FROM todo WHERE e.seq = todo.seq
                 RETURNING e.feed_position
             )
             UPDATE feed_state
             SET last_position = GREATEST(last_position, (SELECT MAX(feed_position) FROM positioned))
             WHERE (SELECT COUNT(*) FROM positioned) > 0",
            &[&last, &POSITION_BATCH],
        )?;
        Ok(())
    }

    fn feed_head(&self) -> Result<i64> {
        let row = self.query_opt("SELECT last_position FROM feed_state", &[])?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0))
    }

    fn feed_page(
        &self,
        organization_id: Option<&str>,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>> {
        let limit = i64::from(limit);
        self.query_map(
            &format!(
                "SELECT {} FROM callback_events e JOIN callbacks c ON c.seq = e.callback_seq
                 WHERE e.feed_position > $1 AND e.feed_position <= $2
                   AND ($3::text IS NULL OR c.organization_id = $3)
                 ORDER BY e.feed_position LIMIT $4",
                logged_columns("e.feed_position")
            ),
            &[&after, &through, &organization_id, &limit],
            logged_from_row,
        )
    }
}
