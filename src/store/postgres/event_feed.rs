//! Committed events in commit order on PostGIS.
//!
//! Event ids come from a sequence when the row is inserted, not when its transaction
//! commits, so `id > last` skips an event whose transaction commits after a
//! higher-numbered one was read. Each event therefore records its transaction
//! (`tx xid8 DEFAULT pg_current_xact_id()`), and the feed reads only transactions
//! older than the oldest one still running (`pg_snapshot_xmin`): those are final, so
//! nothing can appear behind the cursor later. An open transaction delays the feed
//! until it ends; it never loses an event.

use super::dispatch_rows;
use crate::store::StoreResult;
use crate::store::dispatch::{CaseEvent, EventCursor};
use crate::store::dispatch_sql::EVENT_COLUMNS;
use sqlx::Row;

/// The oldest transaction still running (every older one has committed or aborted).
const HORIZON: &str = "pg_snapshot_xmin(pg_current_snapshot())";

impl super::PgStore {
    /// [`DispatchStore::event_feed_start`](crate::store::DispatchStore::event_feed_start).
    pub(super) async fn feed_start(&self) -> StoreResult<EventCursor> {
        let horizon: i64 = sqlx::query_scalar(&format!("SELECT {HORIZON}::text::bigint"))
            .fetch_one(&self.pool)
            .await?;
        // Transactions from the horizon on may still commit events: start before them.
        Ok(EventCursor { horizon, id: 0 })
    }

    /// [`DispatchStore::event_position`](crate::store::DispatchStore::event_position).
    pub(super) async fn position_of(&self, id: i64) -> StoreResult<EventCursor> {
        let row = sqlx::query(
            "SELECT tx::text::bigint AS tx_id, id FROM case_events WHERE id <= $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => EventCursor {
                horizon: row.try_get("tx_id")?,
                id: row.try_get("id")?,
            },
            None => EventCursor::default(),
        })
    }

    /// [`DispatchStore::events_committed_after`](crate::store::DispatchStore::events_committed_after).
    pub(super) async fn committed_after(
        &self,
        cursor: EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(EventCursor, CaseEvent)>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, tx::text::bigint AS tx_id FROM case_events \
             WHERE (tx, id) > ($1::text::xid8, $2) AND tx < {HORIZON} \
             ORDER BY tx, id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(cursor.horizon.to_string())
            .bind(cursor.id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let position = EventCursor {
                    horizon: row.try_get("tx_id")?,
                    id: row.try_get("id")?,
                };
                Ok((position, dispatch_rows::event(row)?))
            })
            .collect()
    }
}
