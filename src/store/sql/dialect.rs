//! What tells the two SQL backends apart, as one trait: how geometry goes in and out,
//! how a write transaction begins and an activation locks, and the few writes only one
//! backend can make in one statement. Everything else — every query of the generic
//! store — is written once against it.
//!
//! sqlx's own traits cannot carry a generic query: binding a value or running a
//! statement needs a bound per value type and per executor lifetime, which Rust does
//! not let a trait imply. So the generic store binds through [`Value`] and reads
//! through [`ReadRow`] and [`Column`] (values both databases encode or decode), and
//! each dialect names its arguments and executor types, whose bounds the trait carries.
//! A pool's connection is acquired once per statement, as sqlx does itself.

use super::SqlStore;
use crate::domain::Layer;
use crate::store::dispatch::{CaseEvent, CaseRecord, EventCursor, IdempotencyKey, NewCaseEvent};
use crate::store::records::PlanContent;
use crate::store::{GridsWatch, StoreResult};
use async_trait::async_trait;
use sqlx::database::HasStatementCache;
use sqlx::{Database, Decode, Encode, IntoArguments, Pool, Postgres, Sqlite, Transaction, Type};

/// A value either database can bind: what the generic store's statements take.
pub trait Value<'q>:
    Encode<'q, Postgres> + Type<Postgres> + Encode<'q, Sqlite> + Type<Sqlite> + Send + 'q
{
}

impl<'q, T> Value<'q> for T where
    T: Encode<'q, Postgres> + Type<Postgres> + Encode<'q, Sqlite> + Type<Sqlite> + Send + 'q
{
}

/// A value either database can decode from a column.
pub trait Column<'r>:
    Decode<'r, Postgres> + Type<Postgres> + Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<'r, T> Column<'r> for T where
    T: Decode<'r, Postgres> + Type<Postgres> + Decode<'r, Sqlite> + Type<Sqlite>
{
}

/// A result row, read by column name or position.
pub trait ReadRow: Send + Sync + 'static {
    /// The column `name`, decoded.
    fn try_get<'r, T: Column<'r>>(&'r self, name: &str) -> sqlx::Result<T>;
    /// The column at `index` (from 0), decoded.
    fn try_get_at<'r, T: Column<'r>>(&'r self, index: usize) -> sqlx::Result<T>;
}

/// The outcome of a statement that changes rows.
pub trait RowsAffected {
    /// How many rows it changed.
    fn rows_affected(&self) -> u64;
}

impl ReadRow for sqlx::postgres::PgRow {
    fn try_get<'r, T: Column<'r>>(&'r self, name: &str) -> sqlx::Result<T> {
        sqlx::Row::try_get(self, name)
    }
    fn try_get_at<'r, T: Column<'r>>(&'r self, index: usize) -> sqlx::Result<T> {
        sqlx::Row::try_get(self, index)
    }
}

impl ReadRow for sqlx::sqlite::SqliteRow {
    fn try_get<'r, T: Column<'r>>(&'r self, name: &str) -> sqlx::Result<T> {
        sqlx::Row::try_get(self, name)
    }
    fn try_get_at<'r, T: Column<'r>>(&'r self, index: usize) -> sqlx::Result<T> {
        sqlx::Row::try_get(self, index)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// A statement of backend `D` with its parameters, as sqlx builds it.
pub type RawQuery<'q, D> =
    sqlx::query::Query<'q, <D as Dialect>::DB, <D as Dialect>::Arguments<'q>>;
/// A row of backend `D`.
pub type RowOf<D> = <<D as Dialect>::DB as Database>::Row;
/// A connection of backend `D` (what a transaction or a pooled connection derefs to).
pub type ConnOf<D> = <<D as Dialect>::DB as Database>::Connection;

/// A backend of the generic SQL store (implemented by `postgres::PgDialect` and
/// `sqlite::SqliteDialect`). The value lives in the store, so a backend can keep state
/// there (PostgreSQL's group-commit intake).
#[async_trait]
pub trait Dialect: Send + Sync + Sized + 'static {
    /// The sqlx database.
    type DB: Database<Row: ReadRow, QueryResult: RowsAffected> + HasStatementCache;

    /// The backend's name (`postgis` or `sqlite`).
    const NAME: &'static str;
    /// Whether a statement may write in a `WITH` clause, so a case and its first event
    /// are one statement (PostgreSQL) rather than one transaction (SQLite).
    const WRITES_IN_WITH: bool;
    /// Whether rows can be locked (`FOR UPDATE`, `FOR SHARE`); without, the single
    /// writer's transaction lock serialises writes.
    const ROW_LOCKS: bool;

    /// A WKB parameter as a geometry column's value.
    fn geometry_in(param: &str) -> String;
    /// A geometry column read back as WKB.
    fn geometry_out(column: &str) -> String;
    /// `FROM`-clause joins and a condition (`$1` longitude, `$2` latitude) keeping the
    /// grid versions `g` whose bounding box holds the point.
    fn bbox_holds_point() -> (&'static str, &'static str);

    /// What runs a statement on a connection (the connection itself, for both).
    type Executor<'c>: sqlx::Executor<'c, Database = Self::DB>
    where
        Self: 'c;

    /// A statement's parameters (the database's own arguments, for both).
    type Arguments<'q>: IntoArguments<'q, Self::DB> + Send;

    /// The statement `sql`, without parameters yet.
    fn query(sql: &str) -> RawQuery<'_, Self>;
    /// `q` with `value` bound to its next parameter.
    fn bind<'q, T: Value<'q>>(q: RawQuery<'q, Self>, value: T) -> RawQuery<'q, Self>;
    /// `conn` as an executor.
    fn executor<'c>(conn: &'c mut ConnOf<Self>) -> Self::Executor<'c>;

    /// Applies the backend's pending migrations.
    async fn migrate(pool: &Pool<Self::DB>) -> StoreResult<()>;
    /// A transaction that reads before it writes and must not lose its write lock to
    /// another writer in between.
    async fn begin_write(pool: &Pool<Self::DB>) -> StoreResult<Transaction<'static, Self::DB>>;

    /// Writes a plan's grids, lineage and bases (the tables are empty for `id`), and
    /// the layer heads of its communities that do not exist yet.
    async fn write_plan_rows(
        tx: &mut Transaction<'_, Self::DB>,
        id: i64,
        layer: Layer,
        content: &PlanContent,
    ) -> StoreResult<()>;
    /// The highest grid code ever used under each of `communities` that has one.
    async fn highest_codes(
        pool: &Pool<Self::DB>,
        communities: &[String],
    ) -> StoreResult<Vec<(String, String)>>;
    /// The generation of `layer` in each of `communities` (0 where it has none).
    async fn generations(
        pool: &Pool<Self::DB>,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>>;
    /// Takes the locks an activation of plan `id` needs before it reads the layer heads.
    async fn lock_for_activation(tx: &mut Transaction<'_, Self::DB>, id: i64) -> StoreResult<()>;
    /// After plan `id`'s grids were inserted as current versions, inside the same
    /// transaction: indexes the backend keeps itself, and notices to other processes.
    async fn grids_activated(tx: &mut Transaction<'_, Self::DB>, id: i64) -> StoreResult<()>;
    /// See [`Store::watch_grids`](crate::store::Store::watch_grids).
    async fn watch_grids(pool: &Pool<Self::DB>) -> StoreResult<Option<GridsWatch>>;

    /// See [`DispatchStore::create_case`](crate::store::DispatchStore::create_case).
    async fn store_case(
        &self,
        pool: &Pool<Self::DB>,
        case: &CaseRecord,
        event: &NewCaseEvent,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(CaseRecord, bool)>;
    /// See [`DispatchStore::event_feed_start`](crate::store::DispatchStore::event_feed_start).
    async fn feed_start(store: &SqlStore<Self>) -> StoreResult<EventCursor>;
    /// See [`DispatchStore::event_position`](crate::store::DispatchStore::event_position).
    async fn position_of(store: &SqlStore<Self>, id: i64) -> StoreResult<EventCursor>;
    /// See [`DispatchStore::events_committed_after`](crate::store::DispatchStore::events_committed_after).
    async fn committed_after(
        store: &SqlStore<Self>,
        cursor: EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(EventCursor, CaseEvent)>>;
}

/// Where a statement runs: on a connection from the pool, or on one already held (a
/// transaction's).
pub enum Via<'e, D: Dialect> {
    Pool(&'e Pool<D::DB>),
    Conn(&'e mut ConnOf<D>),
}

impl<'e, D: Dialect> From<&'e Pool<D::DB>> for Via<'e, D> {
    fn from(pool: &'e Pool<D::DB>) -> Self {
        Via::Pool(pool)
    }
}

impl<'e, D: Dialect> From<&'e mut ConnOf<D>> for Via<'e, D> {
    fn from(conn: &'e mut ConnOf<D>) -> Self {
        Via::Conn(conn)
    }
}

/// The connection a statement runs on: one acquired from the pool for it alone, or one
/// the caller holds.
enum Held<'e, D: Dialect> {
    Pooled(sqlx::pool::PoolConnection<D::DB>),
    Borrowed(&'e mut ConnOf<D>),
}

impl<'e, D: Dialect> Held<'e, D> {
    async fn acquire(via: Via<'e, D>) -> sqlx::Result<Self> {
        Ok(match via {
            Via::Pool(pool) => Held::Pooled(pool.acquire().await?),
            Via::Conn(conn) => Held::Borrowed(conn),
        })
    }

    fn conn(&mut self) -> &mut ConnOf<D> {
        match self {
            Held::Pooled(conn) => conn,
            Held::Borrowed(conn) => conn,
        }
    }
}

/// A statement of the generic store: `sqlx::query` with the same methods, for either
/// backend. Parameters are written `$n` for both: SQLite takes `$n` as a named
/// parameter, which sqlx binds to the n-th value. (A statement must bind every number
/// it names: sqlx leaves a parameter past the values bound as NULL, and on SQLite, where
/// named parameters are counted in order of appearance, lower ones after it too.)
/// Debug builds (every test) check that before the statement runs.
pub struct Query<'q, D: Dialect> {
    inner: RawQuery<'q, D>,
    sql: &'q str,
    bound: usize,
}

/// The statement `sql`, its parameters written `$1`, `$2`, ….
pub fn query<D: Dialect>(sql: &str) -> Query<'_, D> {
    Query {
        inner: D::query(sql),
        sql,
        bound: 0,
    }
}

/// The highest `n` of the `$n` parameters `sql` names (0 for none).
fn highest_parameter(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|after| {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            after[..digits].parse().ok()
        })
        .max()
        .unwrap_or(0)
}

impl<'q, D: Dialect> Query<'q, D> {
    /// Binds `value` to the next parameter.
    pub fn bind<T: Value<'q>>(self, value: T) -> Self {
        Query {
            inner: D::bind(self.inner, value),
            bound: self.bound + 1,
            ..self
        }
    }

    /// Whether the statement is prepared and cached for reuse (the default).
    pub fn persistent(self, keep: bool) -> Self {
        Query {
            inner: self.inner.persistent(keep),
            ..self
        }
    }

    /// The statement to run, once it binds every parameter it names.
    fn checked(self) -> RawQuery<'q, D> {
        debug_assert!(
            highest_parameter(self.sql) <= self.bound,
            "{} values bound to a statement naming ${}: {}",
            self.bound,
            highest_parameter(self.sql),
            self.sql
        );
        self.inner
    }

    /// Every row.
    pub async fn fetch_all<'e>(self, via: impl Into<Via<'e, D>>) -> sqlx::Result<Vec<RowOf<D>>>
    where
        'q: 'e,
    {
        let mut held = Held::acquire(via.into()).await?;
        self.checked().fetch_all(D::executor(held.conn())).await
    }

    /// The first row, if any.
    pub async fn fetch_optional<'e>(
        self,
        via: impl Into<Via<'e, D>>,
    ) -> sqlx::Result<Option<RowOf<D>>>
    where
        'q: 'e,
    {
        let mut held = Held::acquire(via.into()).await?;
        self.checked()
            .fetch_optional(D::executor(held.conn()))
            .await
    }

    /// The first row; [`sqlx::Error::RowNotFound`] when there is none.
    pub async fn fetch_one<'e>(self, via: impl Into<Via<'e, D>>) -> sqlx::Result<RowOf<D>>
    where
        'q: 'e,
    {
        self.fetch_optional(via)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<'e>(self, via: impl Into<Via<'e, D>>) -> sqlx::Result<u64>
    where
        'q: 'e,
    {
        let mut held = Held::acquire(via.into()).await?;
        let done = self.checked().execute(D::executor(held.conn())).await?;
        Ok(done.rows_affected())
    }

    /// The first column of the first row (`sqlx::query_scalar(…).fetch_one`).
    pub async fn scalar<'e, T>(self, via: impl Into<Via<'e, D>>) -> sqlx::Result<T>
    where
        'q: 'e,
        T: for<'r> Column<'r>,
    {
        self.fetch_one(via).await?.try_get_at(0)
    }

    /// The first column of the first row, if there is a row.
    pub async fn scalar_optional<'e, T>(self, via: impl Into<Via<'e, D>>) -> sqlx::Result<Option<T>>
    where
        'q: 'e,
        T: for<'r> Column<'r>,
    {
        self.fetch_optional(via)
            .await?
            .map(|row| row.try_get_at(0))
            .transpose()
    }

    /// The first column of every row.
    pub async fn scalars<'e, T>(self, via: impl Into<Via<'e, D>>) -> sqlx::Result<Vec<T>>
    where
        'q: 'e,
        T: for<'r> Column<'r>,
    {
        self.fetch_all(via)
            .await?
            .iter()
            .map(|row| row.try_get_at(0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::highest_parameter;

    #[test]
    fn the_highest_parameter_is_the_largest_number_after_a_dollar() {
        assert_eq!(highest_parameter("SELECT 1"), 0);
        assert_eq!(highest_parameter("SELECT $2, $10, $1"), 10);
        assert_eq!(highest_parameter("VALUES ($1, $25, $25)"), 25);
        assert_eq!(highest_parameter("SELECT '$' || $3"), 3);
    }
}
