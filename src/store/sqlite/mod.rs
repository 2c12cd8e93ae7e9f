//! The embedded store: one SQLite file. Boundaries are WKB blobs with an R*Tree of their
//! bounding boxes (`grid_versions_bbox`, filled here when grids become current); dates
//! are ISO 8601 text, which sorts like the dates it names. SQLite has one writer: a
//! transaction that reads before it writes takes the write lock at `BEGIN`, and events
//! commit in id order. Every other query is the generic store's (`store/sql`).

use crate::domain::Layer;
use crate::spatial::geom;
use crate::store::dispatch::{
    CaseEvent, CaseRecord, DispatchStore, EventCursor, IdempotencyKey, NewCaseEvent,
};
use crate::store::records::{PlanContent, PlanGrid};
use crate::store::sql::{Dialect, RawQuery, SqlStore, Value, store_one_case};
use crate::store::{GridsWatch, StoreError, StoreResult, wkb};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};
use std::path::Path;
use std::time::Duration;

/// Rows per multi-row INSERT (12 parameters each, well under SQLite's 32 766).
const ROWS_PER_STATEMENT: usize = 500;

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// SQLite, with the R*Tree module.
pub struct SqliteDialect;

impl SqlStore<SqliteDialect> {
    /// Opens (creating when missing) the database file at `path`, in WAL mode with full
    /// synchronous commits: an acknowledged write survives a crash.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqlStore {
            pool,
            backend: SqliteDialect,
        })
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    type DB = Sqlite;
    const NAME: &'static str = "sqlite";
    const WRITES_IN_WITH: bool = false;
    const ROW_LOCKS: bool = false;

    fn geometry_in(param: &str) -> String {
        param.to_string()
    }

    fn geometry_out(column: &str) -> String {
        column.to_string()
    }

    fn bbox_holds_point() -> (&'static str, &'static str) {
        (
            "JOIN grid_versions_bbox b ON b.id = g.id",
            "b.min_x <= $1 AND b.max_x >= $1 AND b.min_y <= $2 AND b.max_y >= $2",
        )
    }

    type Executor<'c> = &'c mut sqlx::SqliteConnection;

    type Arguments<'q> = sqlx::sqlite::SqliteArguments<'q>;

    fn query(sql: &str) -> RawQuery<'_, Self> {
        sqlx::query(sql)
    }

    fn bind<'q, T: Value<'q>>(q: RawQuery<'q, Self>, value: T) -> RawQuery<'q, Self> {
        q.bind(value)
    }

    fn executor(conn: &mut sqlx::SqliteConnection) -> &mut sqlx::SqliteConnection {
        conn
    }

    async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite").run(pool).await?;
        Ok(())
    }

    /// A deferred transaction would take the write lock only at its first write, and
    /// fail ("database is locked") when another writer went first; `BEGIN IMMEDIATE`
    /// takes it at once, waiting its turn.
    async fn begin_write(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn write_plan_rows(
        tx: &mut Transaction<'_, Sqlite>,
        id: i64,
        layer: Layer,
        content: &PlanContent,
    ) -> StoreResult<()> {
        // Many rows per statement: each statement is a round trip to sqlx's worker thread.
        let rows: Vec<(usize, &PlanGrid, Vec<u8>, geo_types::Rect<f64>)> = content
            .grids
            .iter()
            .enumerate()
            .map(|(seq, g)| {
                let bbox = geom::bounds(&g.boundary).ok_or_else(|| {
                    StoreError::Corrupt(format!("grid {} has an empty boundary", g.code))
                })?;
                Ok((seq, g, wkb::encode(&g.boundary)?, bbox))
            })
            .collect::<StoreResult<_>>()?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO plan_grids (plan_id, seq, code, name, parent_code, boundary, \
                 households, attributes, min_x, max_x, min_y, max_y) ",
            );
            insert.push_values(chunk, |mut row, (seq, g, wkb, bbox)| {
                row.push_bind(id)
                    .push_bind(*seq as i64)
                    .push_bind(&g.code)
                    .push_bind(&g.name)
                    .push_bind(&g.parent_code)
                    .push_bind(wkb.as_slice())
                    .push_bind(g.households)
                    .push_bind(Json(&g.attributes))
                    .push_bind(bbox.min().x)
                    .push_bind(bbox.max().x)
                    .push_bind(bbox.min().y)
                    .push_bind(bbox.max().y);
            });
            insert.build().execute(&mut **tx).await?;
        }
        for chunk in content.lineage.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO plan_lineage (plan_id, from_code, to_code, kind, area_m2) ",
            );
            insert.push_values(chunk, |mut row, l| {
                row.push_bind(id)
                    .push_bind(&l.from_code)
                    .push_bind(&l.to_code)
                    .push_bind(l.kind.as_str())
                    .push_bind(l.area_m2);
            });
            insert.build().execute(&mut **tx).await?;
        }
        for (community, generation) in &content.bases {
            sqlx::query(
                "INSERT INTO plan_bases (plan_id, community_code, generation) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(community)
            .bind(generation)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO layer_heads (community_code, layer, generation) VALUES ($1, $2, 0) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(community)
            .bind(layer.as_str())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn highest_codes(
        pool: &SqlitePool,
        communities: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for c in communities {
            let max: Option<String> =
                sqlx::query_scalar("SELECT max(code) FROM grid_versions WHERE parent_code = $1")
                    .bind(c)
                    .fetch_one(pool)
                    .await?;
            if let Some(m) = max {
                out.push((c.clone(), m));
            }
        }
        Ok(out)
    }

    async fn generations(
        pool: &SqlitePool,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut out = Vec::with_capacity(communities.len());
        for c in communities {
            let g: Option<i64> = sqlx::query_scalar(
                "SELECT generation FROM layer_heads WHERE community_code = $1 AND layer = $2",
            )
            .bind(c)
            .bind(layer.as_str())
            .fetch_optional(pool)
            .await?;
            out.push((c.clone(), g.unwrap_or(0)));
        }
        Ok(out)
    }

    /// Nothing to take: the activation's first statement writes, which takes the
    /// database's write lock.
    async fn lock_for_activation(_tx: &mut Transaction<'_, Sqlite>, _id: i64) -> StoreResult<()> {
        Ok(())
    }

    /// The new versions' bounding boxes, for `grid_at`.
    async fn grids_activated(tx: &mut Transaction<'_, Sqlite>, id: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO grid_versions_bbox (id, min_x, max_x, min_y, max_y) \
             SELECT g.id, p.min_x, p.max_x, p.min_y, p.max_y FROM grid_versions g \
             JOIN plan_grids p ON p.plan_id = g.plan_id AND p.code = g.code WHERE g.plan_id = $1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// SQLite cannot push: callers poll [`Store::grids_version`](crate::store::Store::grids_version).
    async fn watch_grids(_pool: &SqlitePool) -> StoreResult<Option<GridsWatch>> {
        Ok(None)
    }

    /// One transaction per case (SQLite has a single writer; see `postgres/intake.rs`
    /// for the batched PostGIS path).
    async fn store_case(
        &self,
        pool: &SqlitePool,
        case: &CaseRecord,
        event: &NewCaseEvent,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(CaseRecord, bool)> {
        store_one_case::<SqliteDialect>(pool, case, event, idempotency).await
    }

    /// The newest id. SQLite has one writer, which draws an event's id inside its
    /// transaction, so events commit in id order.
    async fn feed_start(store: &SqliteStore) -> StoreResult<EventCursor> {
        let id = store.last_event_id().await?;
        Ok(EventCursor { horizon: 0, id })
    }

    async fn position_of(_store: &SqliteStore, id: i64) -> StoreResult<EventCursor> {
        Ok(EventCursor { horizon: 0, id })
    }

    /// Ids in order suffice here (see `feed_start`).
    async fn committed_after(
        store: &SqliteStore,
        cursor: EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(EventCursor, CaseEvent)>> {
        let events = store.events_after(cursor.id, limit).await?;
        Ok(events
            .into_iter()
            .map(|e| {
                (
                    EventCursor {
                        horizon: 0,
                        id: e.id,
                    },
                    e,
                )
            })
            .collect())
    }
}
