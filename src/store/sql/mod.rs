//! The SQL store: [`Store`](crate::store::Store), [`AccessStore`](crate::store::AccessStore)
//! and [`DispatchStore`](crate::store::DispatchStore) written once, for PostGIS and SQLite
//! alike, over a [`Dialect`] that says what differs. Every query both backends can run
//! lives here, in one text. What only one backend has or does its own way lives in that
//! backend's folder, behind the dialect's methods: PostgreSQL's binary `COPY`, arrays,
//! `LISTEN/NOTIFY` and group commit; SQLite's R*Tree, multi-row inserts and its single
//! writer.

mod access;
mod dialect;
mod dispatch;
mod rows;
mod store;

pub use dialect::{
    Column, ConnOf, Dialect, Query, RawQuery, ReadRow, RowOf, RowsAffected, Value, Via, query,
};
pub(crate) use dispatch::{CASE_COLUMNS, EVENT_COLUMNS, replayed_case, store_one_case};
pub(crate) use rows::{case_event_from_row, case_from_row, ms};

/// A store over one SQL database: its connection pool and its backend.
///
/// ```no_run
/// # async fn demo() -> wangge::store::StoreResult<()> {
/// use wangge::store::{SqliteStore, Store};
/// let store = SqliteStore::open(std::path::Path::new("var/wangge.db")).await?;
/// store.migrate().await?;
/// assert_eq!(store.backend(), "sqlite");
/// # Ok(()) }
/// ```
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: sqlx::Pool<D::DB>,
    pub(crate) backend: D,
}

impl<D: Dialect> SqlStore<D> {
    /// The connection pool (for tests and benches that need raw SQL).
    pub fn pool(&self) -> &sqlx::Pool<D::DB> {
        &self.pool
    }
}
