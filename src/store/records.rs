//! The records the store keeps.

use crate::domain::{Grid, Layer, Level};
use chrono::{DateTime, NaiveDate, Utc};
use geo_types::MultiPolygon;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A city, county, township or community/village.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRecord {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent_code: Option<String>,
    pub boundary: Option<MultiPolygon<f64>>,
}

/// Which grid versions a read wants.
///
/// ```
/// use wangge::store::Validity;
/// let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
/// assert_eq!(Validity::from(Some(d)), Validity::On(d));
/// assert_eq!(Validity::from(None), Validity::Current);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The versions in force now.
    Current,
    /// The versions in force on this day.
    On(NaiveDate),
    /// Every version in force on any day from `from` to `to`, both included; an open
    /// end reaches the first version, or today (OGC API `datetime` intervals).
    During {
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    },
}

impl From<Option<NaiveDate>> for Validity {
    fn from(date: Option<NaiveDate>) -> Self {
        date.map_or(Validity::Current, Validity::On)
    }
}

impl Validity {
    /// `(current only, first day, last day)` as the grid queries bind them.
    pub(crate) fn bounds(self) -> (bool, Option<NaiveDate>, Option<NaiveDate>) {
        match self {
            Validity::Current => (true, None, None),
            Validity::On(d) => (false, Some(d), Some(d)),
            Validity::During { from, to } => (false, from, to),
        }
    }
}

/// One version of a grid: what it was from `valid_from` until `valid_to` (exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct GridVersion {
    pub id: i64,
    /// The 15-digit grid code.
    pub code: String,
    pub name: Option<String>,
    pub layer: Layer,
    /// The community or village the grid belongs to.
    pub parent_code: String,
    pub boundary: MultiPolygon<f64>,
    pub households: Option<i32>,
    pub attributes: Map<String, Value>,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
    /// The plan that made this version current.
    pub plan_id: Option<i64>,
}

impl GridVersion {
    /// The engine's view of this version.
    pub fn to_grid(&self) -> Grid {
        self.clone().into_grid()
    }

    /// The engine's view of this version, without copying the boundary.
    pub fn into_grid(self) -> Grid {
        let mut properties = self.attributes;
        if let Some(h) = self.households {
            properties.insert("households".into(), Value::from(h));
        }
        Grid {
            id: self.code,
            name: self.name,
            layer: self.layer,
            parent: Some(self.parent_code),
            ancestors: Vec::new(),
            boundary: self.boundary,
            properties,
        }
    }
}

/// Where a plan is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Draft,
    Submitted,
    Approved,
    Active,
    Superseded,
    Rejected,
}

impl PlanStatus {
    /// Lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Draft => "draft",
            PlanStatus::Submitted => "submitted",
            PlanStatus::Approved => "approved",
            PlanStatus::Active => "active",
            PlanStatus::Superseded => "superseded",
            PlanStatus::Rejected => "rejected",
        }
    }

    /// The status in Chinese words.
    pub fn zh(self) -> &'static str {
        match self {
            PlanStatus::Draft => "草稿",
            PlanStatus::Submitted => "待审批",
            PlanStatus::Approved => "已批准",
            PlanStatus::Active => "现行",
            PlanStatus::Superseded => "已替代",
            PlanStatus::Rejected => "已驳回",
        }
    }

    /// Whether a plan may move from `self` to `to` by [`super::Store::transition`]
    /// (activation and supersession happen only through activation).
    pub fn may_become(self, to: PlanStatus) -> bool {
        use PlanStatus::*;
        matches!(
            (self, to),
            (Draft, Submitted)
                | (Submitted, Approved)
                | (Submitted, Rejected)
                | (Submitted, Draft)
                | (Approved, Rejected)
                | (Draft, Rejected)
        )
    }
}

impl std::str::FromStr for PlanStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "draft" => PlanStatus::Draft,
            "submitted" => PlanStatus::Submitted,
            "approved" => PlanStatus::Approved,
            "active" => PlanStatus::Active,
            "superseded" => PlanStatus::Superseded,
            "rejected" => PlanStatus::Rejected,
            other => return Err(format!("unknown plan status {other:?}")),
        })
    }
}

/// A plan to replace the grids of one layer under one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub id: i64,
    /// The region whose grids the plan replaces (a community, township, county or city).
    pub scope_code: String,
    pub layer: Layer,
    pub title: String,
    pub status: PlanStatus,
    pub effective_date: Option<NaiveDate>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub error_count: i32,
    pub warning_count: i32,
    /// The validation report of the plan's current content.
    pub validation: Value,
}

/// What a new plan is about.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub scope_code: String,
    pub layer: Layer,
    pub title: String,
    pub effective_date: Option<NaiveDate>,
    pub actor: String,
}

/// A grid as a plan proposes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanGrid {
    pub code: String,
    pub name: Option<String>,
    pub parent_code: String,
    pub boundary: MultiPolygon<f64>,
    pub households: Option<i32>,
    pub attributes: Map<String, Value>,
}

/// How a grid of a plan relates to the grids it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineageKind {
    /// Same boundary, same code.
    Unchanged,
    /// One old grid became one new grid with a moved boundary; the code is kept.
    Modified,
    /// One old grid became several new grids.
    Split,
    /// Several old grids (or parts of them) became one new grid.
    Merged,
    /// A new grid over no old grid.
    New,
    /// An old grid with no successor.
    Retired,
}

impl LineageKind {
    /// Lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            LineageKind::Unchanged => "unchanged",
            LineageKind::Modified => "modified",
            LineageKind::Split => "split",
            LineageKind::Merged => "merged",
            LineageKind::New => "new",
            LineageKind::Retired => "retired",
        }
    }
}

impl std::str::FromStr for LineageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "unchanged" => LineageKind::Unchanged,
            "modified" => LineageKind::Modified,
            "split" => LineageKind::Split,
            "merged" => LineageKind::Merged,
            "new" => LineageKind::New,
            "retired" => LineageKind::Retired,
            other => return Err(format!("unknown lineage kind {other:?}")),
        })
    }
}

/// One link of lineage: area of `from_code` that went to `to_code`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineageLink {
    /// The old grid (none for `new`).
    pub from_code: Option<String>,
    /// The new grid (none for `retired`).
    pub to_code: Option<String>,
    pub kind: LineageKind,
    /// Area shared by the two, in m² (the old grid's area for `retired`, the new one's
    /// for `new`).
    pub area_m2: f64,
}

/// Everything a draft holds besides its header.
#[derive(Debug, Clone, Default)]
pub struct PlanContent {
    pub grids: Vec<PlanGrid>,
    pub lineage: Vec<LineageLink>,
    /// Generation of each affected community when the plan was drawn.
    pub bases: Vec<(String, i64)>,
    pub error_count: i32,
    pub warning_count: i32,
    pub validation: Value,
}

/// A status change asked of [`super::Store::transition`].
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: PlanStatus,
    pub to: PlanStatus,
    pub actor: String,
    pub reason: Option<String>,
    /// Sets the effective date on the way (e.g. on approval), when given.
    pub effective_date: Option<NaiveDate>,
    /// The audit row appended in the same transaction, when given.
    pub audit: Option<super::NewAuditEntry>,
}

/// A recorded status change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEvent {
    pub from: Option<PlanStatus>,
    pub to: PlanStatus,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// What an activation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activation {
    pub plan: Plan,
    /// Grid versions closed (given `valid_to`).
    pub closed: u64,
    /// Grid versions inserted.
    pub inserted: u64,
    /// Plans that no longer have current grids.
    pub superseded: Vec<i64>,
}

/// A grid member's or service-team member's role (Art. 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 网格长
    GridLeader,
    /// 专职网格员
    FullTime,
    /// 兼职网格员
    PartTime,
    /// 网格指导员
    Instructor,
    /// 服务团队成员
    TeamMember,
}

impl Role {
    /// Lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridLeader => "grid_leader",
            Role::FullTime => "full_time",
            Role::PartTime => "part_time",
            Role::Instructor => "instructor",
            Role::TeamMember => "team_member",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = crate::domain::Msg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "grid_leader" | "网格长" => Role::GridLeader,
            "full_time" | "专职网格员" => Role::FullTime,
            "part_time" | "兼职网格员" => Role::PartTime,
            "instructor" | "网格指导员" => Role::Instructor,
            "team_member" | "服务团队成员" => Role::TeamMember,
            other => {
                return Err(crate::msg!(
                    "unknown member role {other:?}",
                    "未知的网格员角色 {other:?}：应为网格长、专职网格员、兼职网格员、网格指导员或服务团队成员"
                ));
            }
        })
    }
}

/// A member to add.
#[derive(Debug, Clone)]
pub struct NewMember {
    /// The grid code (grid members) or region code (service teams) served.
    pub scope_code: String,
    pub role: Role,
    pub name: String,
    pub phone: Option<String>,
    /// Duty schedule, e.g. `[{"weekday": 1, "from": "08:30", "to": "17:30"}]`.
    pub duty_schedule: Value,
}

/// A stored member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub id: i64,
    pub scope_code: String,
    pub role: Role,
    pub name: String,
    pub phone: Option<String>,
    pub duty_schedule: Value,
}

/// Parses a stored enum, turning a bad value into [`super::StoreError::Corrupt`].
pub(crate) fn parse_stored<T: std::str::FromStr>(s: &str) -> Result<T, super::StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| super::StoreError::Corrupt(e.to_string()))
}

/// Parses a stored level name.
pub(crate) fn parse_level(s: &str) -> Result<Level, super::StoreError> {
    Ok(match s {
        "city" => Level::City,
        "county" => Level::County,
        "township" => Level::Township,
        "community" => Level::Community,
        "grid" => Level::Grid,
        other => {
            return Err(super::StoreError::Corrupt(format!(
                "unknown level {other:?}"
            )));
        }
    })
}

/// Parses a stored layer name.
pub(crate) fn parse_layer(s: &str) -> Result<Layer, super::StoreError> {
    match s {
        "comprehensive" => Ok(Layer::Comprehensive),
        "dedicated" => Ok(Layer::Dedicated),
        other => Err(super::StoreError::Corrupt(format!(
            "unknown layer {other:?}"
        ))),
    }
}
