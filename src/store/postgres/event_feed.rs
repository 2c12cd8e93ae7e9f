//! Committed events in commit order on PostGIS.
//!
//! Event ids come from a sequence when the row is inserted, not when its transaction
//! commits, so `id > last` skips an event whose transaction commits after a
//! higher-numbered one was read. Each event therefore records its transaction
//! (`tx xid8 DEFAULT pg_current_xact_id()`), and the feed reads only transactions
//! older than the oldest one still running (`pg_snapshot_xmin`): those are final, so
//! nothing can appear behind the cursor later. An open transaction delays the feed
//! until it ends; it never loses an event.

use crate::store::StoreResult;
use crate::store::dispatch::{CaseEvent, EventCursor};
use crate::store::sql::{EVENT_COLUMNS, case_event_from_row};
use sqlx::{PgPool, Row};

/// The oldest transaction still running (every older one has committed or aborted).
const HORIZON: &str = "pg_snapshot_xmin(pg_current_snapshot())";

/// [`DispatchStore::event_feed_start`](crate::store::DispatchStore::event_feed_start).
pub(super) async fn feed_start(pool: &PgPool) -> StoreResult<EventCursor> {
    let horizon: i64 = sqlx::query_scalar(&format!("SELECT {HORIZON}::text::bigint"))
        .fetch_one(pool)
        .await?;
    // Transactions from the horizon on may still commit events: start before them.
    Ok(EventCursor { horizon, id: 0 })
}

/// [`DispatchStore::event_position`](crate::store::DispatchStore::event_position).
pub(super) async fn position_of(pool: &PgPool, id: i64) -> StoreResult<EventCursor> {
    let row = sqlx::query(
        "SELECT tx::text::bigint AS tx_id, id FROM case_events WHERE id <= $1 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
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
    pool: &PgPool,
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
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let position = EventCursor {
                horizon: row.try_get("tx_id")?,
                id: row.try_get("id")?,
            };
            Ok((position, case_event_from_row(row)?))
        })
        .collect()
}
