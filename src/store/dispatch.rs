//! Storage of the dispatch loop (Art. 10–12): departments and their staff, the versioned
//! matters list, the working-day calendar, cases with their append-only event trail,
//! and the webhook outbox. The rules live in `workflow::dispatch`; the store keeps the
//! data and the invariants that must hold whoever writes: a case changes only from the
//! version its writer read (so of two handlers acting at once one gets a conflict), each
//! change appends its event and queues its webhook in the same transaction, events are
//! never updated or deleted, and a retried submission with the same idempotency key
//! finds the case the first one stored.

use super::StoreResult;
use crate::domain::DayKind;
use crate::domain::{CaseSource, CaseState, Category, CentreLevel, MatterStatus, TimeLimit};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A department or unit that handles cases within a region (its jurisdiction).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Department {
    /// Unique, e.g. `371602001-urban_management`.
    pub code: String,
    pub name: String,
    /// What it does, e.g. `urban_management`, `public_security`; matters name kinds.
    pub kind: String,
    /// The region it serves (a township, county or city code).
    pub region_code: String,
    /// Where assignments and deadline notices are POSTed, if anywhere.
    pub webhook_url: Option<String>,
}

/// A matter of the list as proposed or changed; becomes a version when stored.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NewMatter {
    /// Stable across versions, e.g. `CG-001`.
    pub code: String,
    pub name: String,
    pub description: String,
    pub category: Category,
    /// The department kind responsible at each centre level.
    #[schema(value_type = Object)]
    pub responsible: BTreeMap<CentreLevel, String>,
    pub time_limit: TimeLimit,
    /// Whether residents may report it (public intake, Open311).
    pub public: bool,
    pub valid_from: NaiveDate,
    /// The last day of a temporary matter (exclusive end: valid before this date).
    pub valid_to: Option<NaiveDate>,
    pub proposed_by: String,
    /// The list the matter is on (Art. 10): a county's code for that county's list,
    /// which applies only there; the city's code, or empty, for the city's list.
    #[serde(default)]
    pub region_code: String,
}

/// One version of a matter.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MatterVersion {
    pub id: i64,
    pub version: i32,
    #[serde(flatten)]
    pub matter: NewMatter,
    pub status: MatterStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl NewMatter {
    /// The county whose list holds this matter, or `None` for the city's list.
    ///
    /// ```
    /// # use wangge::store::NewMatter;
    /// # let mut m: NewMatter = serde_json::from_value(serde_json::json!({"code": "X", "name": "x",
    /// #   "description": "", "category": "dispute", "responsible": {},
    /// #   "time_limit": {"amount": 2, "unit": "working_days"}, "public": true,
    /// #   "valid_from": "2026-01-01", "valid_to": null, "proposed_by": "li"})).unwrap();
    /// assert_eq!(m.county(), None);
    /// m.region_code = "371602".into();
    /// assert_eq!(m.county(), Some("371602"));
    /// ```
    pub fn county(&self) -> Option<&str> {
        let code = self.region_code.parse::<crate::domain::RegionCode>().ok()?;
        (code.level() == crate::domain::Level::County).then_some(self.region_code.as_str())
    }

    /// Whether the matter applies at a place of county `county` (the city's list
    /// applies everywhere).
    pub fn applies_in(&self, county: &str) -> bool {
        self.county().is_none_or(|c| c == county)
    }
}

impl MatterVersion {
    /// Whether this version is on the list on `date`.
    pub fn in_force(&self, date: NaiveDate) -> bool {
        self.status == MatterStatus::Admitted
            && self.matter.valid_from <= date
            && self.matter.valid_to.is_none_or(|end| date < end)
    }
}

/// A case as stored. Times are UTC.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseRecord {
    pub id: i64,
    pub state: CaseState,
    pub source: CaseSource,
    pub matter_code: Option<String>,
    /// The matter version the case was classified under (its deadline rule).
    pub matter_version: Option<i64>,
    pub category: Option<Category>,
    pub description: String,
    pub photos: Vec<String>,
    pub address: Option<String>,
    /// CGCS2000 lon/lat (converted from `coord_sys` on intake).
    pub lon: f64,
    pub lat: f64,
    pub coord_sys: String,
    pub grid_code: String,
    pub community_code: String,
    pub township_code: String,
    pub county_code: String,
    pub city_code: String,
    /// Within metres of another grid: the dispatcher should confirm.
    pub near_boundary: bool,
    pub neighbour_grid: Option<String>,
    /// Outside every grid; routed to the nearest within the configured distance.
    pub outside: bool,
    /// The account that reported, if any.
    pub reporter: Option<String>,
    pub reporter_name: Option<String>,
    pub reporter_phone: Option<String>,
    pub reporter_email: Option<String>,
    /// The dispatch centre now responsible (a township, county or city code).
    pub centre_code: String,
    pub department_code: Option<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub assigned_at: Option<DateTime<Utc>>,
    /// A pending extension request: `{"working_days": n, "reason": …, "by": …}`.
    pub extension_request: Option<Value>,
    pub merged_into: Option<i64>,
    pub returns: i32,
    pub extensions: i32,
    pub supervisions: i32,
    pub escalations: i32,
    pub verification_failures: i32,
    pub due_soon_noticed: bool,
    pub overdue_noticed: bool,
    pub reported_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Grows with every change; a writer names the version it read.
    pub version: i64,
    /// A resident's report's follow-up secret, which opens its public status page.
    /// Handed to the resident once, in the answer to the report; never serialised with
    /// the case (staff views, events and webhooks do not carry it).
    #[serde(skip)]
    pub follow_up_key: Option<String>,
}

/// An event of a case's trail.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseEvent {
    pub id: i64,
    pub case_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The step: `reported`, `accept`, `assign`, `return`, `supervise`, `overdue`, …
    pub kind: String,
    pub from_state: Option<CaseState>,
    pub to_state: CaseState,
    pub note: Option<String>,
    pub detail: Value,
}

/// A position in the stream of committed events (see
/// [`DispatchStore::events_committed_after`]): the transaction horizon and the last id
/// read within it (SQLite: horizon 0, the last id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    pub horizon: i64,
    pub id: i64,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCaseEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub from_state: Option<CaseState>,
    pub note: Option<String>,
    pub detail: Value,
}

/// An idempotent submission: the caller's key, scoped to who sent it, and a hash of the
/// request so a reused key with a different body is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    /// Cases located under one of these region or grid codes (any when empty).
    pub under: Vec<String>,
    /// Cases whose dispatch centre is one of these codes.
    pub centres: Vec<String>,
    pub states: Vec<CaseState>,
    /// Cases brought in these ways (any when empty).
    pub sources: Vec<CaseSource>,
    pub departments: Vec<String>,
    pub matter: Option<String>,
    pub reporter: Option<String>,
    /// Deadline strictly before this instant.
    pub deadline_before: Option<DateTime<Utc>>,
    pub reported_from: Option<DateTime<Utc>>,
    pub reported_to: Option<DateTime<Utc>>,
    /// Order by deadline (soonest first) instead of by id.
    pub by_deadline: bool,
    /// Cases with a larger id (paging by id).
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// A webhook delivery waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event_id: i64,
    pub department_code: String,
    pub url: String,
    pub attempts: i32,
    /// The department's signing secret (`X-Wangge-Signature`), when it has one.
    pub secret: Option<String>,
}

/// One change to the directory of dispatch (departments, staff, matters, calendar), for
/// [`DispatchStore::apply_audited`].
#[derive(Debug, Clone)]
pub enum DirectoryChange {
    /// Inserts or replaces a department.
    PutDepartment(Department),
    /// Sets (or with `None` removes) a department's webhook signing secret.
    SetWebhookSecret {
        department: String,
        secret: Option<String>,
    },
    AddStaff {
        user: String,
        department: String,
    },
    RemoveStaff {
        user: String,
        department: String,
    },
    /// A proposed version of a matter (applied: [`Applied::Matter`]).
    ProposeMatter(NewMatter),
    /// Admits or refuses a proposed version (applied: [`Applied::Matter`]).
    DecideMatter {
        id: i64,
        admit: bool,
        actor: String,
        at: DateTime<Utc>,
    },
    /// Sets (`Some`) or clears (`None`) a calendar exception.
    SetCalendarDay {
        date: NaiveDate,
        kind: Option<DayKind>,
        note: String,
    },
}

/// What one [`DirectoryChange`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Done,
    Matter(Box<MatterVersion>),
}

/// Departments, matters, calendar, cases.
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Applies `changes` in order and appends `audit`, all in one transaction: all of it
    /// happens or none. In an audit row's `resource`, `{id}` stands for the id of the
    /// first matter version the changes produced.
    async fn apply_audited(
        &self,
        changes: &[DirectoryChange],
        audit: &[crate::store::NewAuditEntry],
    ) -> StoreResult<Vec<Applied>>;
    /// A case department `code` has ever held (now or in any event), if any.
    async fn department_held_case(&self, code: &str) -> StoreResult<Option<i64>>;
    /// Inserts or replaces a department.
    async fn upsert_department(&self, department: &Department) -> StoreResult<()>;
    /// Sets (or with `None` removes) a department's webhook signing secret; the
    /// department itself is left as it is.
    async fn set_webhook_secret(&self, code: &str, secret: Option<&str>) -> StoreResult<()>;
    /// Whether a department has a webhook signing secret.
    async fn has_webhook_secret(&self, code: &str) -> StoreResult<bool>;
    /// Every department, by code.
    async fn departments(&self) -> StoreResult<Vec<Department>>;
    /// Makes a user staff of a department (a department handler acts for it).
    async fn add_staff(&self, user: &str, department: &str) -> StoreResult<()>;
    /// Ends a user's work for a department.
    async fn remove_staff(&self, user: &str, department: &str) -> StoreResult<()>;
    /// A department's staff, by name.
    async fn department_staff(&self, department: &str) -> StoreResult<Vec<String>>;
    /// The departments a user acts for.
    async fn staff_departments(&self, user: &str) -> StoreResult<Vec<String>>;

    /// Stores a proposed version of a matter (its version number is the next one).
    async fn propose_matter(&self, matter: &NewMatter) -> StoreResult<MatterVersion>;
    /// Admits (the earlier admitted version ends where this one starts) or refuses a
    /// proposed version.
    async fn decide_matter(
        &self,
        id: i64,
        admit: bool,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<MatterVersion>;
    /// Every version of every matter (or of one), by code and version.
    async fn matter_versions(&self, code: Option<&str>) -> StoreResult<Vec<MatterVersion>>;
    /// One version.
    async fn matter_version(&self, id: i64) -> StoreResult<MatterVersion>;

    /// Sets (or with `None` clears) a calendar exception.
    async fn set_calendar_day(
        &self,
        date: NaiveDate,
        kind: Option<DayKind>,
        note: &str,
    ) -> StoreResult<()>;
    /// Every calendar exception.
    async fn calendar_days(&self) -> StoreResult<Vec<(NaiveDate, DayKind, String)>>;

    /// Stores a new case (`id` and `version` of `case` are ignored) with its first event,
    /// durably, before returning. With a key already used by the same request, returns
    /// the stored case and `false`; with a different request, refuses.
    async fn create_case(
        &self,
        case: &CaseRecord,
        event: &NewCaseEvent,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(CaseRecord, bool)>;
    /// One case.
    async fn case(&self, id: i64) -> StoreResult<CaseRecord>;
    /// Writes `case` if the stored one is still at `case.version`, appends `event`,
    /// queues a webhook delivery to `notify` (when it has a URL) and appends `audit` to
    /// the audit log, all in one transaction; the new version is returned.
    /// [`super::StoreError::Conflict`] when someone else changed it first.
    async fn update_case(
        &self,
        case: &CaseRecord,
        event: &NewCaseEvent,
        notify: Option<&str>,
        audit: Option<&crate::store::NewAuditEntry>,
    ) -> StoreResult<CaseRecord>;
    /// A case's events, oldest first.
    async fn case_events(&self, id: i64) -> StoreResult<Vec<CaseEvent>>;
    /// Cases matching `query`.
    async fn cases(&self, query: &CaseQuery) -> StoreResult<Vec<CaseRecord>>;
    /// Events with ids above `after_id`, oldest first (streams resume from here).
    async fn events_after(&self, after_id: i64, limit: i64) -> StoreResult<Vec<CaseEvent>>;
    /// The id of the newest event (0 when there is none).
    async fn last_event_id(&self) -> StoreResult<i64>;
    /// The position of event `id` in the committed order (of the newest event numbered
    /// at most `id` when there is no such event): a stream resumed after event `id`
    /// continues from here.
    async fn event_position(&self, id: i64) -> StoreResult<EventCursor>;
    /// Where a reader that wants only events committed from now on starts.
    async fn event_feed_start(&self) -> StoreResult<EventCursor>;
    /// Events committed after `cursor`, each with its own position (the cursor to
    /// continue from after it), in commit order and each exactly once over successive
    /// calls. Unlike [`Self::events_after`], an event whose
    /// transaction commits after a higher-numbered one was read is not skipped: on
    /// PostGIS the page holds only transactions older than every one still running
    /// (ordered by transaction, then id); SQLite commits in id order.
    async fn events_committed_after(
        &self,
        cursor: EventCursor,
        limit: i64,
    ) -> StoreResult<Vec<(EventCursor, CaseEvent)>>;
    /// Events in `[from, to)`, oldest first.
    async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<CaseEvent>>;

    /// Webhook deliveries due at `now`.
    async fn due_deliveries(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Delivery>>;
    /// Records a delivery's outcome: done, or failed with the next try at `retry_at`.
    async fn finish_delivery(
        &self,
        event_id: i64,
        department: &str,
        outcome: Result<(), String>,
        retry_at: DateTime<Utc>,
    ) -> StoreResult<()>;
}
