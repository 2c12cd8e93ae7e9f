//! Storage: one [`Store`] trait, implemented once over `sqlx` (`sql/`) for two backends —
//! PostGIS, the system of record, and an SQLite file, the embedded default. Both keep every grid version with
//! its validity dates, the plans that replace grids with their lifecycle, and the people
//! who serve each grid.
//!
//! The store enforces the invariants that must hold whoever calls it: a plan with an
//! error-severity validation problem cannot be submitted or approved; an activation
//! either applies completely or not at all; two activations over the same communities
//! cannot both succeed.

pub mod access;
pub mod dispatch;
pub mod group_commit;
mod postgres;
mod records;
mod rules;
mod shards;
pub mod sql;
mod sqlite;
pub mod wkb;

pub use access::{AccessStore, AuditEntry, AuditQuery, NewAuditEntry, TokenRecord, UserRecord};
pub use dispatch::{
    CaseEvent, CaseQuery, CaseRecord, Delivery, Department, DispatchStore, EventCursor,
    IdempotencyKey, MatterVersion, NewCaseEvent, NewMatter,
};
pub use postgres::{PgDialect, PgStore};
pub use records::*;
pub use sqlite::{SqliteDialect, SqliteStore};

use crate::domain::{Layer, Localised, Msg};
use async_trait::async_trait;
use chrono::NaiveDate;
use geo_types::Coord;
use std::sync::Arc;

/// The `LIKE` pattern of the codes under `under` (every code when `None`).
pub(crate) fn like_prefix(under: Option<&str>) -> String {
    format!("{}%", under.unwrap_or(""))
}

/// Anything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no backend wangge knows.
    #[error("unsupported database URL {0:?}: expected postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    /// The thing asked for does not exist.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The request conflicts with the current state (e.g. another activation won).
    #[error("conflict: {0}")]
    Conflict(Msg),
    /// The request is not allowed in the current state (e.g. submitting a plan with errors).
    #[error("{0}")]
    Refused(Msg),
    /// A stored value cannot be read back (e.g. a geometry that is not a multipolygon).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl Localised for StoreError {
    fn zh(&self) -> String {
        match self {
            StoreError::Database(e) => format!("数据库错误：{e}"),
            StoreError::Migrate(e) => format!("无法迁移数据库：{e}"),
            StoreError::UnsupportedUrl(url) => {
                format!("不支持的数据库地址 {url:?}：应为 postgres://… 或 sqlite://…")
            }
            StoreError::NotFound { what, id } => {
                let what = match *what {
                    "case" => "案件",
                    "plan" => "方案",
                    "user" => "用户",
                    "user or department" => "用户或部门",
                    "matter version" => "事项版本",
                    other => other,
                };
                format!("未找到{what} {id}")
            }
            StoreError::Conflict(m) => format!("冲突：{}", m.zh()),
            StoreError::Refused(m) => m.zh().to_string(),
            StoreError::Corrupt(e) => format!("存储的数据无法读取：{e}"),
        }
    }
}

/// `Result` with [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// Persistence of regions, grid versions, plans and members.
///
/// Implementations must behave identically; `tests/api/store_contract.rs` runs one suite
/// against both.
#[async_trait]
pub trait Store: AccessStore + DispatchStore + Send + Sync {
    /// The backend's name (`postgis` or `sqlite`).
    fn backend(&self) -> &'static str;

    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;

    /// Inserts regions or replaces those with the same code, in one transaction.
    async fn upsert_regions(&self, regions: &[RegionRecord]) -> StoreResult<()>;
    /// Regions whose code starts with `under` (all when `None`), ordered by code.
    async fn regions(&self, under: Option<&str>) -> StoreResult<Vec<RegionRecord>>;

    /// Grid versions of `validity`, of one layer or all, under a region code prefix or
    /// everywhere; ordered by code.
    async fn grids(
        &self,
        validity: Validity,
        layer: Option<Layer>,
        under: Option<&str>,
    ) -> StoreResult<Vec<GridVersion>>;
    /// The grid version of `layer` that covered `point` (CGCS2000 lon/lat) on `date`.
    async fn grid_at(
        &self,
        point: Coord<f64>,
        date: NaiveDate,
        layer: Layer,
    ) -> StoreResult<Option<GridVersion>>;
    /// Every version of one grid code, oldest first.
    async fn grid_history(&self, code: &str) -> StoreResult<Vec<GridVersion>>;
    /// Lineage links of activated plans that lead from or to `code`.
    async fn grid_lineage(&self, code: &str) -> StoreResult<Vec<LineageLink>>;
    /// The highest grid code ever used in each of `communities` (current or historic).
    async fn highest_codes(&self, communities: &[String]) -> StoreResult<Vec<(String, String)>>;
    /// The generation of each community's grids of `layer` (0 when it never had any).
    async fn generations(
        &self,
        layer: Layer,
        communities: &[String],
    ) -> StoreResult<Vec<(String, i64)>>;

    /// Stores a new draft plan with its content; records the `draft` event.
    /// With `audit`, its row is appended in the same transaction (`{id}` in its
    /// resource stands for the new plan's id).
    async fn create_plan(
        &self,
        plan: &NewPlan,
        content: &PlanContent,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Plan>;
    /// Replaces a draft's content (its grids, lineage, bases and validation), recording
    /// a plan event with `note` (what kind of revision it was); with `audit`, its row
    /// is appended in the same transaction.
    async fn replace_plan_content(
        &self,
        id: i64,
        actor: &str,
        content: &PlanContent,
        note: &str,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Plan>;
    /// One plan.
    async fn plan(&self, id: i64) -> StoreResult<Plan>;
    /// Plans under a region code prefix and/or in one status, newest first.
    async fn plans(
        &self,
        under: Option<&str>,
        status: Option<PlanStatus>,
    ) -> StoreResult<Vec<Plan>>;
    /// The grids a plan proposes, in sequence order.
    async fn plan_grids(&self, id: i64) -> StoreResult<Vec<PlanGrid>>;
    /// The lineage a plan would record.
    async fn plan_lineage(&self, id: i64) -> StoreResult<Vec<LineageLink>>;
    /// A plan's history of status changes, oldest first.
    async fn plan_events(&self, id: i64) -> StoreResult<Vec<PlanEvent>>;
    /// Moves a plan from `change.from` to `change.to` if it is still in `change.from`.
    /// `submitted` and `approved` are refused while the plan has validation errors.
    /// Activation has its own method.
    async fn transition(&self, id: i64, change: &Transition) -> StoreResult<Plan>;
    /// Makes an approved plan's grids current from its effective date, atomically: the
    /// grids it replaces get `valid_to`, its grids are inserted, its lineage recorded,
    /// plans left without current grids become `superseded`. Fails with
    /// [`StoreError::Conflict`] if the grids it was drawn against changed meanwhile.
    /// With `audit`, its row (its detail given `closed` and `inserted`) is appended in
    /// the same transaction.
    async fn activate(
        &self,
        id: i64,
        actor: &str,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<Activation>;

    /// Adds a grid member or service-team member; returns its id.
    /// With `audit`, its row is appended in the same transaction (`{id}` in its resource
    /// stands for the new member's id).
    async fn add_member(
        &self,
        member: &NewMember,
        audit: Option<&NewAuditEntry>,
    ) -> StoreResult<i64>;
    /// Adds several members in one transaction (all or none); returns their ids.
    async fn add_members(&self, members: &[NewMember]) -> StoreResult<Vec<i64>>;
    /// Members serving a grid or region code.
    async fn members(&self, scope_code: &str) -> StoreResult<Vec<Member>>;
    /// Sets the supervision phone of a grid or region.
    async fn set_supervision_phone(&self, scope_code: &str, phone: &str) -> StoreResult<()>;
    /// The supervision phone of the first of `scope_codes` that has one (pass a grid's
    /// code and then its ancestors').
    async fn supervision_phone(&self, scope_codes: &[String]) -> StoreResult<Option<String>>;
    /// Every member, by scope code and id (the service keeps them in memory).
    async fn all_members(&self) -> StoreResult<Vec<Member>>;
    /// Every supervision phone, as `(scope_code, phone)`.
    async fn supervision_phones(&self) -> StoreResult<Vec<(String, String)>>;

    /// A number that grows whenever current grids change (the sum of all layer
    /// generations): replicas compare it to decide whether to reload.
    async fn grids_version(&self) -> StoreResult<i64>;
    /// A number that grows whenever members or supervision phones change (a trigger
    /// counts every change, whoever makes it).
    async fn directory_version(&self) -> StoreResult<i64>;
    /// A stream that yields whenever any process activates a plan, where the backend
    /// can push (PostgreSQL `LISTEN`); `None` where callers must poll
    /// [`Store::grids_version`].
    async fn watch_grids(&self) -> StoreResult<Option<GridsWatch>>;
}

/// Notifications of grid changes (see [`Store::watch_grids`]).
pub type GridsWatch = tokio::sync::mpsc::Receiver<()>;

/// The channel activations notify on (PostgreSQL).
pub const GRIDS_CHANNEL: &str = "wangge_grids";

/// Opens the store a URL names (`postgres://…` or `sqlite://path`), creating an SQLite
/// file when missing, and applies migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Arc::new(PgStore::connect(url).await?)
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            Arc::new(SqliteStore::open(std::path::Path::new(path)).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
    store.migrate().await?;
    Ok(store)
}

/// The embedded default when no `DATABASE_URL` is given.
pub const DEFAULT_URL: &str = "sqlite://var/wangge.db";
