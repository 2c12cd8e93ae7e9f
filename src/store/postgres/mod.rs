//! The PostGIS backend, the system of record: geometry columns
//! `geometry(MultiPolygon, 4490)` with GiST indexes, which QGIS can open directly.
//! What only PostgreSQL does lives here: plan grids written by binary `COPY`, lineage
//! and bases by whole arrays, activations announced by `NOTIFY` and watched by
//! `LISTEN`, new cases stored in batches (`intake.rs`), events read in commit order
//! (`event_feed.rs`). Every other query is the generic store's (`store/sql`).

mod copy_binary;
mod event_feed;
mod intake;

use crate::domain::Layer;
use crate::store::dispatch::{CaseEvent, CaseRecord, EventCursor, IdempotencyKey, NewCaseEvent};
use crate::store::records::{PlanContent, PlanGrid};
use crate::store::sql::{Dialect, RawQuery, SqlStore, Value};
use crate::store::{GRIDS_CHANNEL, GridsWatch, StoreError, StoreResult, wkb};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The PostGIS store.
pub type PgStore = SqlStore<PgDialect>;

/// PostgreSQL with PostGIS, and the state its intake keeps.
pub struct PgDialect {
    /// New cases, stored in batches (see [`intake`]).
    intake: intake::Intake,
}

/// Connections per process: enough for commits to share a disk flush under load
/// (`WANGGE_PG_POOL` overrides; mind the server's `max_connections` across replicas).
fn pool_size() -> u32 {
    std::env::var("WANGGE_PG_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(16)
}

impl SqlStore<PgDialect> {
    /// Connects to the database `url` names (PostGIS must be installable there).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size())
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let intake = intake::intake(pool.clone());
        Ok(SqlStore {
            pool,
            backend: PgDialect { intake },
        })
    }
}

#[async_trait]
impl Dialect for PgDialect {
    type DB = Postgres;
    const NAME: &'static str = "postgis";
    const WRITES_IN_WITH: bool = true;
    const ROW_LOCKS: bool = true;

    fn geometry_in(param: &str) -> String {
        format!("ST_GeomFromWKB({param}, 4490)")
    }

    fn geometry_out(column: &str) -> String {
        format!("ST_AsBinary({column})")
    }

    fn bbox_holds_point() -> (&'static str, &'static str) {
        ("", "g.boundary && ST_SetSRID(ST_MakePoint($1, $2), 4490)")
    }

    type Executor<'c> = &'c mut sqlx::PgConnection;

    type Arguments<'q> = sqlx::postgres::PgArguments;

    fn query(sql: &str) -> RawQuery<'_, Self> {
        sqlx::query(sql)
    }

    fn bind<'q, T: Value<'q>>(q: RawQuery<'q, Self>, value: T) -> RawQuery<'q, Self> {
        q.bind(value)
    }

    fn executor(conn: &mut sqlx::PgConnection) -> &mut sqlx::PgConnection {
        conn
    }

    async fn migrate(pool: &PgPool) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres").run(pool).await?;
        Ok(())
    }

    /// PostgreSQL locks rows as it goes: a plain transaction.
    async fn begin_write(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    async fn write_plan_rows(
        tx: &mut Transaction<'_, Postgres>,
        id: i64,
        layer: Layer,
        content: &PlanContent,
    ) -> StoreResult<()> {
        copy_plan_grids(tx, id, &content.grids).await?;
        // Whole arrays per statement: one round trip however many links a plan has.
        let from: Vec<Option<&str>> = content
            .lineage
            .iter()
            .map(|l| l.from_code.as_deref())
            .collect();
        let to: Vec<Option<&str>> = content
            .lineage
            .iter()
            .map(|l| l.to_code.as_deref())
            .collect();
        let kind: Vec<&str> = content.lineage.iter().map(|l| l.kind.as_str()).collect();
        let area: Vec<f64> = content.lineage.iter().map(|l| l.area_m2).collect();
        sqlx::query(
            "INSERT INTO plan_lineage (plan_id, from_code, to_code, kind, area_m2) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::float8[])",
        )
        .bind(id)
        .bind(&from)
        .bind(&to)
        .bind(&kind)
        .bind(&area)
        .execute(&mut **tx)
        .await?;
        let communities: Vec<&str> = content.bases.iter().map(|(c, _)| c.as_str()).collect();
        let generations: Vec<i64> = content.bases.iter().map(|(_, g)| *g).collect();
        sqlx::query(
            "INSERT INTO plan_bases (plan_id, community_code, generation) \
             SELECT $1, * FROM UNNEST($2::text[], $3::int8[])",
        )
        .bind(id)
        .bind(&communities)
        .bind(&generations)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO layer_heads (community_code, layer, generation) \
             SELECT c, $2, 0 FROM UNNEST($1::text[]) AS c ON CONFLICT DO NOTHING",
        )
        .bind(&communities)
        .bind(layer.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn highest_codes(
        pool: &PgPool,
        communities: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT parent_code, max(code) FROM grid_versions WHERE parent_code = ANY($1) \
             GROUP BY parent_code ORDER BY parent_code",
        )
        .bind(communities)
        .fetch_all(pool)
        .await?)
    }

    async fn generations(
        pool: &PgPool,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT c, coalesce(h.generation, 0) FROM UNNEST($1::text[]) AS c \
             LEFT JOIN layer_heads h ON h.community_code = c AND h.layer = $2 ORDER BY c",
        )
        .bind(communities)
        .bind(layer.as_str())
        .fetch_all(pool)
        .await?)
    }

    /// Locks the plan's layer heads in code order, so racing activations queue instead
    /// of deadlocking.
    async fn lock_for_activation(tx: &mut Transaction<'_, Postgres>, id: i64) -> StoreResult<()> {
        sqlx::query(
            "SELECT h.community_code FROM layer_heads h JOIN plan_bases b \
             ON b.community_code = h.community_code JOIN plans p ON p.id = b.plan_id \
             AND p.layer = h.layer WHERE b.plan_id = $1 ORDER BY h.community_code FOR UPDATE OF h",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        Ok(())
    }

    /// Tells every replica listening, at commit (nobody on rollback).
    async fn grids_activated(tx: &mut Transaction<'_, Postgres>, id: i64) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(GRIDS_CHANNEL)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn watch_grids(pool: &PgPool) -> StoreResult<Option<GridsWatch>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(GRIDS_CHANNEL).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            // PgListener reconnects by itself; an error here is a notification we may
            // have missed, so the receiver is told to check.
            loop {
                let missed = listener.recv().await.is_err();
                if tx.try_send(()).is_err() && tx.is_closed() {
                    return;
                }
                if missed {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        Ok(Some(rx))
    }

    async fn store_case(
        &self,
        _pool: &PgPool,
        case: &CaseRecord,
        event: &NewCaseEvent,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(CaseRecord, bool)> {
        intake::store_case(&self.intake, case, event, idempotency).await
    }

    async fn feed_start(store: &PgStore) -> StoreResult<EventCursor> {
        event_feed::feed_start(&store.pool).await
    }

    async fn position_of(store: &PgStore, id: i64) -> StoreResult<EventCursor> {
        event_feed::position_of(&store.pool, id).await
    }

    async fn committed_after(
        store: &PgStore,
        cursor: EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(EventCursor, CaseEvent)>> {
        event_feed::committed_after(&store.pool, cursor, limit).await
    }
}

/// Writes a plan's grids with one binary `COPY`: one round trip for any number of rows.
async fn copy_plan_grids(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    grids: &[PlanGrid],
) -> StoreResult<()> {
    if grids.is_empty() {
        return Ok(());
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY plan_grids (plan_id, seq, code, name, parent_code, boundary, households, \
             attributes) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = copy_binary::header();
    for (seq, g) in grids.iter().enumerate() {
        copy_binary::tuple(&mut buf, 8);
        copy_binary::int8(&mut buf, id);
        copy_binary::int4(&mut buf, seq as i32);
        copy_binary::text(&mut buf, Some(&g.code));
        copy_binary::text(&mut buf, g.name.as_deref());
        copy_binary::text(&mut buf, Some(&g.parent_code));
        copy_binary::bytes(&mut buf, &wkb::encode_ewkb(&g.boundary)?);
        match g.households {
            Some(h) => copy_binary::int4(&mut buf, h),
            None => copy_binary::null(&mut buf),
        }
        let json = serde_json::to_vec(&g.attributes)
            .map_err(|e| StoreError::Corrupt(format!("attributes of {}: {e}", g.code)))?;
        copy_binary::jsonb(&mut buf, &json);
        if buf.len() > 4 << 20 {
            copy.send(std::mem::take(&mut buf)).await?;
        }
    }
    copy_binary::trailer(&mut buf);
    copy.send(buf).await?;
    copy.finish().await?;
    Ok(())
}
