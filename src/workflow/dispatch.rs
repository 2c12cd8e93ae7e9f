//! The dispatch loop of Art. 11–12: intake (a report located and routed to its grid's
//! member and township centre), the steps of the state machine with who may take them
//! and what each changes (department, deadline, counters), and the sweep that notices
//! due and overdue cases and escalates the overdue ones.

use super::calendar::WorkCalendar;
use super::live::Snapshot;
use super::state::{InvalidStep, Step, next_state};
use crate::auth::{Action, Principal};
use crate::domain::text::TextKind;
use crate::domain::{
    CaseSource, CaseState, CentreLevel, Level, Localised, Msg, RegionCode, ReturnReason,
};
use crate::msg;
use crate::spatial::LocateOptions;
use crate::spatial::crs::CoordSys;
use crate::store::{
    CaseQuery, CaseRecord, Department, IdempotencyKey, MatterVersion, NewCaseEvent, Store,
    StoreError,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use geo_types::Coord;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What can go wrong in dispatch.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Step(#[from] InvalidStep),
    /// The caller may not take this step on this case.
    #[error("{0}")]
    Forbidden(Msg),
    /// The request is malformed or names something that does not exist.
    #[error("{0}")]
    Invalid(Msg),
    /// No department can be found for the case; assign one explicitly.
    #[error("{0}")]
    Unroutable(Msg),
    /// The report names one grid and its point lies in another.
    #[error(
        "the point lies in grid {found}, not in {expected}: move the pin into {expected} or report in {found}"
    )]
    GridMismatch { expected: String, found: String },
}

impl Localised for DispatchError {
    fn zh(&self) -> String {
        match self {
            DispatchError::Store(e) => e.zh(),
            DispatchError::Step(e) => e.zh(),
            DispatchError::Forbidden(m)
            | DispatchError::Invalid(m)
            | DispatchError::Unroutable(m) => m.zh().to_string(),
            DispatchError::GridMismatch { expected, found } => format!(
                "该位置在网格 {found} 内，不在 {expected} 内：请把定位点移入 {expected}，或改在 {found} 反映"
            ),
        }
    }
}

type Result<T> = std::result::Result<T, DispatchError>;

/// The reporter's contact (personal data: masked unless the reader needs it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contact {
    #[schema(max_length = 64)]
    pub name: Option<String>,
    #[schema(max_length = 32)]
    pub phone: Option<String>,
    #[schema(max_length = 254)]
    pub email: Option<String>,
}

/// A report as it arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub lon: f64,
    pub lat: f64,
    /// wgs84 (default), cgcs2000, gcj02 or bd09.
    #[serde(default)]
    #[schema(max_length = 16)]
    pub coord_sys: Option<String>,
    /// The matter's code; without one a dispatcher classifies the case.
    #[serde(default)]
    #[schema(max_length = 32)]
    pub matter: Option<String>,
    #[schema(min_length = 1, max_length = 4000)]
    pub description: String,
    /// http(s) URLs of at most 2000 characters.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub photos: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub address: Option<String>,
    #[serde(default)]
    pub contact: Contact,
    /// The grid the reporter means (the one their form shows). When given, the report
    /// is refused, not filed, if the point lies in another grid: a form whose grid and
    /// pin disagree never files a case somewhere the reporter did not choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 15)]
    pub grid: Option<String>,
}

/// Who sends a report.
#[derive(Debug, Clone, Copy)]
pub enum Reporter<'a> {
    /// A grid member, or a dispatcher recording a hotline call.
    Account(&'a Principal),
    /// A resident without an account (public form or Open311).
    Public { open311: bool },
}

/// What a step needs besides the case: who takes it and the departments they act for.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub principal: &'a Principal,
    pub departments: &'a [String],
}

/// A step with its arguments, as clients send it (`{"action": "assign", …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    ResolveOnSite {
        result: String,
    },
    Escalate {
        note: Option<String>,
    },
    Accept {
        matter: Option<String>,
        note: Option<String>,
    },
    /// Without `department` the matters list decides; naming another one needs `reason`.
    Assign {
        department: Option<String>,
        matter: Option<String>,
        reason: Option<String>,
    },
    Acknowledge {
        note: Option<String>,
    },
    Return {
        reason: ReturnReason,
        explanation: String,
    },
    RequestExtension {
        working_days: u32,
        reason: String,
    },
    DecideExtension {
        approve: bool,
        note: Option<String>,
    },
    Handle {
        feedback: String,
    },
    /// `ok: false` sends the case back to the department.
    Verify {
        ok: bool,
        note: Option<String>,
    },
    Close {
        note: Option<String>,
    },
    Reopen {
        reason: String,
    },
    EscalateUp {
        reason: String,
    },
    Supervise {
        note: String,
    },
    Merge {
        into: i64,
        note: Option<String>,
    },
}

impl Command {
    /// The step this command takes.
    pub fn step(&self) -> Step {
        match self {
            Command::ResolveOnSite { .. } => Step::ResolveOnSite,
            Command::Escalate { .. } => Step::Escalate,
            Command::Accept { .. } => Step::Accept,
            Command::Assign { .. } => Step::Assign,
            Command::Acknowledge { .. } => Step::Acknowledge,
            Command::Return { .. } => Step::Return,
            Command::RequestExtension { .. } => Step::RequestExtension,
            Command::DecideExtension { .. } => Step::DecideExtension,
            Command::Handle { .. } => Step::Handle,
            Command::Verify { ok: true, .. } => Step::Verify,
            Command::Verify { ok: false, .. } => Step::RejectResult,
            Command::Close { .. } => Step::Close,
            Command::Reopen { .. } => Step::Reopen,
            Command::EscalateUp { .. } => Step::EscalateUp,
            Command::Supervise { .. } => Step::Supervise,
            Command::Merge { .. } => Step::Merge,
        }
    }
}

/// The calendar as stored.
pub async fn calendar(store: &dyn Store) -> Result<WorkCalendar> {
    Ok(WorkCalendar::with_days(
        store
            .calendar_days()
            .await?
            .into_iter()
            .map(|(d, k, _)| (d, k)),
    ))
}

/// The matters list on `date`: the admitted version in force of each matter.
pub async fn matters_on(store: &dyn Store, date: NaiveDate) -> Result<Vec<MatterVersion>> {
    Ok(store
        .matter_versions(None)
        .await?
        .into_iter()
        .filter(|m| m.in_force(date))
        .collect())
}

/// The version of `code` in force on `date`.
pub async fn matter_in_force(
    store: &dyn Store,
    code: &str,
    date: NaiveDate,
) -> Result<MatterVersion> {
    store
        .matter_versions(Some(code))
        .await?
        .into_iter()
        .rev()
        .find(|m| m.in_force(date))
        .ok_or_else(|| {
            DispatchError::Invalid(crate::msg!(
                "no matter {code:?} is on the list on {date}",
                "{date} 的清单上没有事项 {code:?}"
            ))
        })
}

/// What intake reads for every report, kept in memory for a few seconds so a stream of
/// reports does not query it once each: the matters list (every version) and the
/// working-day calendar (for the acceptance deadline). A version admitted or a day
/// changed on another replica is seen within the lifetime (admissions name a future
/// `valid_from` anyway); [`MatterCatalog::invalidate`] makes this replica see its own
/// changes at once.
pub struct MatterCatalog {
    cached: Cached<Vec<MatterVersion>>,
    calendar: Cached<WorkCalendar>,
    lifetime: std::time::Duration,
}

type Cached<T> = std::sync::RwLock<Option<(std::time::Instant, std::sync::Arc<T>)>>;

impl Default for MatterCatalog {
    fn default() -> Self {
        MatterCatalog::with_lifetime(std::time::Duration::from_secs(5))
    }
}

impl MatterCatalog {
    /// A catalog that re-reads the store when its copy is older than `lifetime`.
    pub fn with_lifetime(lifetime: std::time::Duration) -> Self {
        MatterCatalog {
            cached: std::sync::RwLock::new(None),
            calendar: std::sync::RwLock::new(None),
            lifetime,
        }
    }

    /// Forgets the copies: the next reads go to the store.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cached.write() {
            *c = None;
        }
        if let Ok(mut c) = self.calendar.write() {
            *c = None;
        }
    }

    /// The working-day calendar as stored (holidays and make-up days).
    pub async fn calendar(&self, store: &dyn Store) -> Result<std::sync::Arc<WorkCalendar>> {
        self.read_through(&self.calendar, calendar(store)).await
    }

    /// `slot`'s copy while younger than the lifetime, else what `load` reads (kept).
    async fn read_through<T>(
        &self,
        slot: &Cached<T>,
        load: impl std::future::Future<Output = Result<T>>,
    ) -> Result<std::sync::Arc<T>> {
        if let Ok(c) = slot.read()
            && let Some((at, kept)) = c.as_ref()
            && at.elapsed() < self.lifetime
        {
            return Ok(kept.clone());
        }
        let fresh = std::sync::Arc::new(load.await?);
        if let Ok(mut c) = slot.write() {
            *c = Some((std::time::Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// Every version of every matter.
    pub async fn versions(&self, store: &dyn Store) -> Result<std::sync::Arc<Vec<MatterVersion>>> {
        self.read_through(&self.cached, async {
            Ok(store.matter_versions(None).await?)
        })
        .await
    }

    /// The version of `code` in force on `date`.
    pub async fn in_force(
        &self,
        store: &dyn Store,
        code: &str,
        date: NaiveDate,
    ) -> Result<MatterVersion> {
        self.versions(store)
            .await?
            .iter()
            .rev()
            .find(|m| m.matter.code == code && m.in_force(date))
            .cloned()
            .ok_or_else(|| {
                DispatchError::Invalid(crate::msg!(
                    "no matter {code:?} is on the list on {date}",
                    "{date} 的清单上没有事项 {code:?}"
                ))
            })
    }
}

/// A required piece of prose (a description, a step's reason): not empty, at most `max`
/// characters, nothing that reorders the text after it.
fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    crate::domain::text::check_text(field, value, max, false, TextKind::Prose)
        .map_err(DispatchError::Invalid)
}

/// A department as it may be stored: a code of lower-case letters, digits, `_` and `-`
/// (a new one named `<region>-<kind>`, so no county can take a code that reads as
/// another's), a name and kind of sensible length, a region code, a URL of at most
/// 2 000 characters.
///
/// ```
/// use wangge::store::Department;
/// use wangge::workflow::dispatch::check_department;
/// let d = Department { code: "371603-housing".into(), name: "沾化区住建局".into(),
///     kind: "housing".into(), region_code: "371603".into(), webhook_url: None };
/// assert!(check_department(&d, true).is_ok());
/// let squat = Department { code: "371602-housing".into(), ..d };
/// assert!(check_department(&squat, true).is_err());
/// ```
pub fn check_department(d: &Department, new: bool) -> Result<()> {
    check_name("name", &d.name, 100)?;
    if d.code.is_empty()
        || d.code.len() > 100
        || !d
            .code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(DispatchError::Invalid(crate::msg!(
            "a department code is 1–100 of a–z, 0–9, '_' and '-'",
            "部门编码为 1–100 个 a–z、0–9、'_' 和 '-' 字符"
        )));
    }
    if d.kind.is_empty()
        || d.kind.len() > 40
        || !d.kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(DispatchError::Invalid(crate::msg!(
            "a department kind is 1–40 of a–z and '_' (e.g. urban_management)",
            "部门类别为 1–40 个 a–z 和 '_' 字符（例如 urban_management）"
        )));
    }
    let region: RegionCode = d
        .region_code
        .parse()
        .map_err(|e: crate::domain::region::BadCode| DispatchError::Invalid(Msg::of(&e)))?;
    if region.level() == Level::Grid {
        return Err(DispatchError::Invalid(crate::msg!(
            "a department serves a city, county, township or community, not a grid",
            "部门服务于市、县区、街镇或村社区，而不是网格"
        )));
    }
    if new && !d.code.starts_with(&format!("{}-", d.region_code)) {
        return Err(DispatchError::Invalid(crate::msg!(
            "a new department's code starts with its region: {}-{}",
            "新部门的编码须以其区划开头：{}-{}",
            d.region_code,
            d.kind
        )));
    }
    if d.webhook_url.as_ref().is_some_and(|u| u.len() > 2000) {
        return Err(DispatchError::Invalid(crate::msg!(
            "webhook_url is longer than 2 000 characters",
            "webhook_url 超过 2000 个字符"
        )));
    }
    Ok(())
}

/// A name (see [`crate::domain::text`]): visible, at most `max` characters.
fn check_name(field: &str, value: &str, max: usize) -> Result<()> {
    crate::domain::text::check_text(field, value, max, false, TextKind::Name)
        .map_err(DispatchError::Invalid)
}

/// A matter as it may be proposed on `today`: a code of 1–32 of A–Z, 0–9, '-' and '_'
/// (no look-alikes of another's), a plain name and description, department kinds as
/// departments spell them, a time limit of at most 365 working days or 2 000 working
/// hours, and a validity that starts today or later (a list is never rewritten
/// backwards) and ends after it starts.
///
/// ```
/// use wangge::workflow::dispatch::check_matter;
/// let m: wangge::store::NewMatter = serde_json::from_value(serde_json::json!({
///     "code": "WG-001", "name": "井盖缺失", "description": "", "category": "safety_hazard",
///     "responsible": {"township": "urban_management"},
///     "time_limit": {"amount": 8, "unit": "working_hours"}, "public": true,
///     "valid_from": "2026-12-01", "valid_to": null, "proposed_by": ""})).unwrap();
/// let today = "2026-12-01".parse().unwrap();
/// assert!(check_matter(&m, today).is_ok());
/// let mut lookalike = m.clone();
/// lookalike.code = "WG-001\u{200b}".into();
/// assert!(check_matter(&lookalike, today).is_err());
/// let mut backdated = m.clone();
/// backdated.valid_from = "2020-01-01".parse().unwrap();
/// assert!(check_matter(&backdated, today).is_err());
/// ```
pub fn check_matter(m: &crate::store::NewMatter, today: NaiveDate) -> Result<()> {
    let invalid = |why: Msg| Err(DispatchError::Invalid(why));
    if m.code.is_empty()
        || m.code.len() > 32
        || !m
            .code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return invalid(msg!(
            "a matter code is 1–32 of A–Z, 0–9, '-' and '_' (e.g. WG-001)",
            "事项编码为 1–32 个 A–Z、0–9、'-' 和 '_' 字符（例如 WG-001）"
        ));
    }
    check_name("name", &m.name, 100)?;
    check_optional("description", Some(&m.description), 2000)?;
    if let Some(kind) = m.responsible.values().find(|k| {
        k.is_empty() || k.len() > 40 || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }) {
        return invalid(msg!(
            "responsible department kind {} is not 1–40 of a–z and '_'",
            "责任部门类别 {} 不是 1–40 个 a–z 和 '_' 字符",
            crate::io::upload::quote(kind)
        ));
    }
    let most = match m.time_limit.unit {
        crate::domain::TimeUnit::WorkingDays => 365,
        crate::domain::TimeUnit::WorkingHours => 2000,
    };
    if !(1..=most).contains(&m.time_limit.amount) {
        let (unit, unit_zh) = match m.time_limit.unit {
            crate::domain::TimeUnit::WorkingDays => ("working days", "个工作日"),
            crate::domain::TimeUnit::WorkingHours => ("working hours", "个工作小时"),
        };
        return invalid(msg!(
            "a time limit is 1 to {most} {unit}",
            "时限为 1 到 {most} {unit_zh}"
        ));
    }
    if m.valid_from < today {
        return invalid(msg!(
            "valid_from {} has passed: a list changes from today ({today}) on",
            "valid_from {} 已经过去：清单只能从今天（{today}）起变更",
            m.valid_from
        ));
    }
    if m.valid_to.is_some_and(|end| end <= m.valid_from) {
        return invalid(msg!(
            "valid_to must be after valid_from",
            "valid_to 须晚于 valid_from"
        ));
    }
    Ok(())
}

/// Whether an account with `grants` may be staff of a department serving `region`: a
/// department handler granted over that region, a region under it, or one above it.
///
/// ```
/// use wangge::domain::{Grant, UserRole};
/// use wangge::workflow::dispatch::fits_department;
/// let h = |scope: &str| vec![Grant { role: UserRole::DepartmentHandler, scope: scope.into() }];
/// assert!(fits_department(&h("371602001"), "371602"));
/// assert!(fits_department(&h("3716"), "371602"));
/// assert!(!fits_department(&h("371603"), "371602"));
/// ```
pub fn fits_department(grants: &[crate::domain::Grant], region: &str) -> bool {
    let area = crate::domain::Grant {
        role: crate::domain::UserRole::DepartmentHandler,
        scope: region.to_string(),
    };
    grants.iter().any(|g| {
        g.role == crate::domain::UserRole::DepartmentHandler
            && (area.covers(&g.scope) || g.covers(region))
    })
}

/// An optional piece of prose: empty is fine; too long, or holding what reorders the
/// text after it, is refused naming the field.
fn check_optional(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    match value {
        Some(v) => crate::domain::text::check_text(field, v, max, true, TextKind::Prose)
            .map_err(DispatchError::Invalid),
        None => Ok(()),
    }
}

/// The optional notes a step may carry, checked as prose.
fn check_notes(command: &Command) -> Result<()> {
    let note = match command {
        Command::Escalate { note }
        | Command::Accept { note, .. }
        | Command::Acknowledge { note }
        | Command::DecideExtension { note, .. }
        | Command::Verify { note, .. }
        | Command::Close { note }
        | Command::Merge { note, .. } => note.as_deref(),
        Command::Assign { reason, .. } => reason.as_deref(),
        _ => None,
    };
    check_optional("note", note, 2000)
}

/// The longest text a report's fields may hold (characters), as the OpenAPI schema
/// states them.
pub const REPORT_LIMITS: [(&str, usize); 8] = [
    ("description", 4000),
    ("address", 200),
    ("contact.name", 64),
    ("contact.phone", 32),
    ("contact.email", 254),
    ("matter", 32),
    ("coord_sys", 16),
    ("grid", 15),
];

fn limit_of(field: &str) -> usize {
    REPORT_LIMITS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(0, |(_, n)| *n)
}

/// Locates, classifies and stores a report; the case waits in its township's centre and
/// its grid member's list. A retried submission with the same key returns the first
/// case and `false`.
#[allow(clippy::too_many_arguments)]
pub async fn intake(
    store: &dyn Store,
    matters: &MatterCatalog,
    snapshot: &Snapshot,
    options: &LocateOptions,
    report: &Report,
    reporter: Reporter<'_>,
    now: DateTime<Utc>,
    accept_within: Duration,
    idempotency: Option<&IdempotencyKey>,
) -> Result<(CaseRecord, bool)> {
    check_text("description", &report.description, limit_of("description"))?;
    for (field, value) in [
        ("address", report.address.as_deref()),
        ("contact.name", report.contact.name.as_deref()),
        ("contact.phone", report.contact.phone.as_deref()),
        ("contact.email", report.contact.email.as_deref()),
        ("matter", report.matter.as_deref()),
        ("coord_sys", report.coord_sys.as_deref()),
        ("grid", report.grid.as_deref()),
    ] {
        check_optional(field, value, limit_of(field))?;
    }
    // A contact the centre cannot use is refused, as a member's is.
    if let Some(phone) = report.contact.phone.as_deref()
        && !phone.is_empty()
        && !crate::domain::text::is_phone(phone)
    {
        return Err(DispatchError::Invalid(crate::msg!(
            "contact.phone: a phone number is up to 32 of digits, '+', '-' and spaces, with a digit",
            "contact.phone：电话号码最多 32 个字符，只能包含数字、'+'、'-' 和空格，且至少有一个数字"
        )));
    }
    if let Some(email) = report.contact.email.as_deref()
        && !email.is_empty()
        && !crate::domain::text::is_email(email)
    {
        return Err(DispatchError::Invalid(crate::msg!(
            "contact.email: not an e-mail address (name@example.org)",
            "contact.email：不是电子邮件地址（例如 name@example.org）"
        )));
    }
    if report.photos.len() > 10 {
        return Err(DispatchError::Invalid(crate::msg!(
            "at most 10 photos",
            "最多 10 张照片"
        )));
    }
    if let Some(bad) = report
        .photos
        .iter()
        .find(|u| !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2000)
    {
        return Err(DispatchError::Invalid(crate::msg!(
            "photo {} is not an http(s) URL of at most 2000 characters",
            "照片 {} 不是长度不超过 2000 个字符的 http(s) 地址",
            crate::io::upload::quote(bad)
        )));
    }
    let coord_sys: CoordSys = match report.coord_sys.as_deref() {
        None => CoordSys::Wgs84,
        Some(s) => s
            .parse()
            .map_err(|e: crate::spatial::crs::UnknownCoordSys| {
                DispatchError::Invalid(Msg::of(&e))
            })?,
    };
    let plausible = (-180.0..=180.0).contains(&report.lon) && (-90.0..=90.0).contains(&report.lat);
    if !plausible {
        return Err(DispatchError::Invalid(crate::msg!(
            "({}, {}) is not a longitude/latitude",
            "({}, {}) 不是经纬度",
            report.lon,
            report.lat
        )));
    }
    let raw = Coord {
        x: report.lon,
        y: report.lat,
    };
    let located = snapshot.locator.locate(raw, coord_sys, options);
    let Some(grid) = located.grid.as_ref() else {
        return Err(DispatchError::Invalid(crate::msg!(
            "({}, {}) lies in no grid and none is within {} m",
            "({}, {}) 不在任何网格内，{} 米内也没有网格",
            report.lon,
            report.lat,
            options.max_outside_m
        )));
    };
    let grid_code = grid.id.clone();
    if let Some(expected) = report.grid.as_deref().filter(|g| *g != grid_code) {
        return Err(DispatchError::GridMismatch {
            expected: expected.to_string(),
            found: grid_code,
        });
    }
    // The grid's community: its stored parent, else the community its code names.
    let community = snapshot
        .grid(&grid_code)
        .and_then(|g| {
            g.parent
                .as_deref()
                .and_then(|p| p.parse::<RegionCode>().ok())
        })
        .or_else(|| grid_code.parse::<RegionCode>().ok())
        .and_then(|c| c.at(Level::Community))
        .ok_or_else(|| {
            DispatchError::Invalid(crate::msg!(
                "grid {grid_code} has no community code to route by",
                "网格 {grid_code} 没有可用于分派的村社区编码"
            ))
        })?;
    let above = |level: Level| {
        community
            .at(level)
            .map(|c| c.as_str().to_string())
            .unwrap_or_default()
    };
    let point = coord_sys.to_wgs84(raw);
    let today = crate::domain::date_in_china(now);
    let matter = match &report.matter {
        Some(code) => Some(matters.in_force(store, code, today).await?),
        None => None,
    };
    if let Some(m) = &matter {
        check_applies(m, &above(Level::County), || {
            let (lon, lat) = (report.lon, report.lat);
            msg!("({lon}, {lat})", "该位置（{lon}, {lat}）")
        })?;
    }
    let (source, reporter_name) = match reporter {
        Reporter::Account(p) => {
            if !p.may(Action::ReportCase, &grid_code) {
                return Err(DispatchError::Forbidden(crate::msg!(
                    "{} may not report cases in {grid_code}",
                    "{} 无权在 {grid_code} 上报案件",
                    p.name
                )));
            }
            let source = if p.may(Action::WorkOnSite, &grid_code) {
                CaseSource::GridMember
            } else {
                CaseSource::Hotline
            };
            (source, Some(p.name.clone()))
        }
        Reporter::Public { open311 } => {
            match &matter {
                Some(m) if m.matter.public => {}
                Some(m) => {
                    return Err(DispatchError::Invalid(crate::msg!(
                        "matter {} is not open to residents' reports",
                        "事项 {} 不接受居民反映",
                        m.matter.code
                    )));
                }
                None => {
                    return Err(DispatchError::Invalid(crate::msg!(
                        "residents choose a matter of the public list",
                        "居民只能选择公开清单上的事项"
                    )));
                }
            }
            let source = if open311 {
                CaseSource::Open311
            } else {
                CaseSource::Resident
            };
            (source, None)
        }
    };
    let case = CaseRecord {
        id: 0,
        state: CaseState::Reported,
        source,
        matter_code: matter.as_ref().map(|m| m.matter.code.clone()),
        matter_version: matter.as_ref().map(|m| m.id),
        category: matter.as_ref().map(|m| m.matter.category),
        description: report.description.trim().to_string(),
        photos: report.photos.clone(),
        address: report.address.clone(),
        lon: point.x,
        lat: point.y,
        coord_sys: coord_sys.as_str().to_string(),
        grid_code: grid_code.clone(),
        township_code: above(Level::Township),
        county_code: above(Level::County),
        city_code: above(Level::City),
        community_code: community.as_str().to_string(),
        near_boundary: located.near_boundary,
        neighbour_grid: located.neighbour.as_ref().map(|n| n.grid.id.clone()),
        outside: located.outside,
        reporter: reporter_name,
        reporter_name: report.contact.name.clone(),
        reporter_phone: report.contact.phone.clone(),
        reporter_email: report.contact.email.clone(),
        centre_code: String::new(),
        department_code: None,
        // The centre's deadline for accepting it, counted in working hours. A grid
        // member's own report is theirs to settle on site first: no centre clock runs.
        deadline: match source {
            CaseSource::GridMember => None,
            _ => Some(
                matters
                    .calendar(store)
                    .await?
                    .add_working_time(now, accept_within),
            ),
        },
        assigned_at: None,
        extension_request: None,
        merged_into: None,
        returns: 0,
        extensions: 0,
        supervisions: 0,
        escalations: 0,
        verification_failures: 0,
        due_soon_noticed: false,
        overdue_noticed: false,
        reported_at: now,
        updated_at: now,
        closed_at: None,
        version: 0,
        follow_up_key: matches!(reporter, Reporter::Public { .. }).then(follow_up_key),
    };
    let case = CaseRecord {
        centre_code: case.township_code.clone(),
        ..case
    };
    let member = snapshot.on_duty(&grid_code, now).map(|m| m.name.clone());
    let event = NewCaseEvent {
        at: now,
        actor: case.reporter.clone().unwrap_or_else(|| source.to_string()),
        kind: "reported".into(),
        from_state: None,
        note: None,
        detail: json!({
            "grid": grid_code,
            "township": case.township_code,
            "source": source,
            "member_on_duty": member,
            "near_boundary": located.near_boundary,
            "matter_version": case.matter_version,
        }),
    };
    Ok(store.create_case(&case, &event, idempotency).await?)
}

/// Eight characters from Crockford's base-32 alphabet (no I, L, O or U to misread):
/// 40 random bits, which the public rate limit makes unguessable one report at a time.
fn follow_up_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn routed_department(
    case: &CaseRecord,
    matter: &MatterVersion,
    departments: &[Department],
) -> Result<Department> {
    let mut level = CentreLevel::of_code(&case.centre_code);
    while let Some(l) = level {
        if let Some(kind) = matter.matter.responsible.get(&l) {
            let region = match l {
                CentreLevel::Township => &case.township_code,
                CentreLevel::County => &case.county_code,
                CentreLevel::City => &case.city_code,
            };
            return departments
                .iter()
                .find(|d| &d.kind == kind && &d.region_code == region)
                .cloned()
                .ok_or_else(|| {
                    let (code, level) = (&matter.matter.code, l.as_str());
                    let level_zh = match l {
                        CentreLevel::Township => "街镇",
                        CentreLevel::County => "县区",
                        CentreLevel::City => "市",
                    };
                    DispatchError::Unroutable(msg!(
                        "matter {code} goes to a {kind} department at {level} level, and {region} has none: name the department",
                        "事项 {code} 应由{level_zh}级的 {kind} 类部门办理，而 {region} 没有这样的部门：请指定部门"
                    ))
                });
        }
        level = l.up();
    }
    Err(DispatchError::Unroutable(crate::msg!(
        "matter {} names no department for the {} centre or above: name the department",
        "事项 {} 没有为 {} 中心或其上级指定部门：请指定部门",
        matter.matter.code,
        case.centre_code
    )))
}

/// Whether `p` may read `case` at all: through a grant over its grid (department
/// handlers' grants do not count), as staff of its department, or as its reporter.
pub fn may_read(p: &Principal, departments: &[String], case: &CaseRecord) -> bool {
    p.may_except(
        Action::ReadCases,
        &case.grid_code,
        crate::domain::UserRole::DepartmentHandler,
    ) || case
        .department_code
        .as_ref()
        .is_some_and(|d| departments.contains(d))
        || case.reporter.as_deref() == Some(p.name.as_str())
}

fn forbidden(p: &Principal, step: Step, case: &CaseRecord) -> DispatchError {
    let (who, act, act_zh, id) = (&p.name, step.as_str().replace('_', " "), step.zh(), case.id);
    DispatchError::Forbidden(msg!(
        "{who} may not {act} case {id}",
        "{who} 无权对案件 {id} 执行“{act_zh}”"
    ))
}

/// Whether `actor` may take `step` on `case`.
pub fn may_take(actor: &Actor<'_>, step: Step, case: &CaseRecord) -> bool {
    let p = actor.principal;
    let centre = p.may(Action::DispatchCase, &case.centre_code);
    let handler = p.may_somewhere(Action::HandleCase)
        && case
            .department_code
            .as_ref()
            .is_some_and(|d| actor.departments.contains(d));
    match step {
        Step::ResolveOnSite | Step::Escalate => p.may(Action::WorkOnSite, &case.grid_code),
        Step::Acknowledge | Step::Return | Step::RequestExtension | Step::Handle => handler,
        Step::Verify | Step::RejectResult => {
            centre || p.may(Action::VerifyCase, &case.grid_code) && !handler
        }
        // Offered only with a request to decide (taking it without one is refused).
        Step::DecideExtension => centre && case.extension_request.is_some(),
        Step::Accept
        | Step::Assign
        | Step::Close
        | Step::Reopen
        | Step::EscalateUp
        | Step::Supervise
        | Step::Merge => centre,
        Step::DueSoon | Step::Overdue => false,
    }
}

/// Takes one step on a case for `actor`, if the case is still at `expected_version`
/// (when given) and nobody changed it meanwhile.
pub async fn act(
    store: &dyn Store,
    case_id: i64,
    actor: Actor<'_>,
    command: &Command,
    expected_version: Option<i64>,
    now: DateTime<Utc>,
) -> Result<CaseRecord> {
    check_notes(command)?;
    let case = store.case(case_id).await?;
    let step = command.step();
    // Who first: a caller without the right learns nothing of the case's state, not
    // even its version; one who may not read it, not even that it exists.
    if !may_read(actor.principal, actor.departments, &case) {
        return Err(StoreError::NotFound {
            what: "case",
            id: case_id.to_string(),
        }
        .into());
    }
    if !may_take(&actor, step, &case) {
        return Err(forbidden(actor.principal, step, &case));
    }
    if let Some(v) = expected_version.filter(|&v| v != case.version) {
        return Err(StoreError::Conflict(crate::msg!(
            "case {case_id} is at version {}, not {v}: reload and retry",
            "案件 {case_id} 的版本是 {}，不是 {v}：请刷新后重试",
            case.version
        ))
        .into());
    }
    let to = next_state(case.state, step)?;
    let mut next = CaseRecord {
        state: to,
        ..case.clone()
    };
    let note: Option<String>;
    let mut detail = json!({});
    let mut notify: Option<String> = None;
    match command {
        Command::ResolveOnSite { result } => {
            check_text("result", result, 4000)?;
            note = Some(result.clone());
            next.closed_at = Some(now);
            next.deadline = None;
        }
        Command::Escalate { note: n } | Command::Acknowledge { note: n } => note = n.clone(),
        Command::Accept { matter, note: n } => {
            note = n.clone();
            // Accepted in time or not, the acceptance deadline is spent; the handling
            // deadline starts with the assignment.
            next.deadline = None;
            next.due_soon_noticed = false;
            next.overdue_noticed = false;
            if let Some(code) = matter {
                classify(store, &mut next, code, now).await?;
            }
        }
        Command::Assign {
            department,
            matter,
            reason,
        } => {
            if let Some(code) = matter {
                classify(store, &mut next, code, now).await?;
            }
            let Some(version) = next.matter_version else {
                return Err(DispatchError::Invalid(crate::msg!(
                    "case {case_id} has no matter yet: name one (\"matter\") to assign it",
                    "案件 {case_id} 尚无事项：请指定事项（\"matter\"）后再派遣"
                )));
            };
            let matter = store.matter_version(version).await?;
            let departments = store.departments().await?;
            let routed = routed_department(&next, &matter, &departments);
            let chosen = match department {
                Some(code) => {
                    let chosen = departments
                        .iter()
                        .find(|d| &d.code == code)
                        .cloned()
                        .ok_or_else(|| {
                            DispatchError::Invalid(crate::msg!(
                                "no department {code:?}",
                                "没有部门 {code:?}"
                            ))
                        })?;
                    // Only a department serving the case's area (or an area above it)
                    // may be given the case: another county's handlers would read it.
                    if !next.grid_code.starts_with(chosen.region_code.as_str()) {
                        return Err(DispatchError::Invalid(crate::msg!(
                            "department {code} serves {}, not the area of case {case_id}",
                            "部门 {code} 服务于 {}，不是案件 {case_id} 所在的区域",
                            chosen.region_code
                        )));
                    }
                    let is_routed = routed.as_ref().is_ok_and(|r| r.code == chosen.code);
                    if !is_routed && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                        let listed = &matter.matter.code;
                        let (to, to_zh) = match &routed {
                            Ok(r) => (r.code.clone(), r.code.clone()),
                            Err(_) => ("no department".to_string(), "无部门".to_string()),
                        };
                        return Err(DispatchError::Invalid(crate::msg!(
                            "the matters list sends {listed} to {to}; assigning it to {code} needs a reason",
                            "事项清单把 {listed} 派给{to_zh}；改派给 {code} 需要说明理由"
                        )));
                    }
                    chosen
                }
                None => routed?,
            };
            let calendar = calendar(store).await?;
            let deadline = calendar.deadline(now, matter.matter.time_limit);
            next.department_code = Some(chosen.code.clone());
            next.deadline = Some(deadline);
            next.assigned_at = Some(now);
            next.due_soon_noticed = false;
            next.overdue_noticed = false;
            next.extension_request = None;
            note = reason.clone();
            detail = json!({
                "department": chosen.code,
                "deadline": deadline,
                "time_limit": matter.matter.time_limit,
                "matter_version": matter.id,
                "override": department.is_some() && reason.is_some(),
            });
            notify = Some(chosen.code);
        }
        Command::Return {
            reason,
            explanation,
        } => {
            check_text("explanation", explanation, 4000)?;
            note = Some(explanation.clone());
            detail = json!({"reason": reason});
            next.returns += 1;
            next.department_code = None;
            next.deadline = None;
            next.extension_request = None;
        }
        Command::RequestExtension {
            working_days,
            reason,
        } => {
            check_text("reason", reason, 2000)?;
            if !(1..=60).contains(working_days) {
                return Err(DispatchError::Invalid(crate::msg!(
                    "an extension is 1 to 60 working days",
                    "延期为 1 到 60 个工作日"
                )));
            }
            if case.extension_request.is_some() {
                return Err(DispatchError::Invalid(crate::msg!(
                    "case {case_id} already has an extension request waiting",
                    "案件 {case_id} 已有一个待审核的延期申请"
                )));
            }
            note = Some(reason.clone());
            detail = json!({"working_days": working_days});
            next.extension_request = Some(json!({
                "working_days": working_days,
                "reason": reason,
                "by": actor.principal.name,
                "at": now,
            }));
        }
        Command::DecideExtension { approve, note: n } => {
            let Some(request) = &case.extension_request else {
                return Err(DispatchError::Invalid(crate::msg!(
                    "case {case_id} has no extension request to decide",
                    "案件 {case_id} 没有待审核的延期申请"
                )));
            };
            note = n.clone();
            let days = request
                .get("working_days")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            next.extension_request = None;
            if *approve {
                let calendar = calendar(store).await?;
                let from = case.deadline.unwrap_or(now);
                let deadline = calendar.add_working_days(from, days);
                next.deadline = Some(deadline);
                next.extensions += 1;
                next.due_soon_noticed = false;
                next.overdue_noticed = deadline <= now;
                detail = json!({"approve": true, "working_days": days, "deadline": deadline});
            } else {
                detail = json!({"approve": false, "working_days": days});
            }
            notify = case.department_code.clone();
        }
        Command::Handle { feedback } => {
            check_text("feedback", feedback, 4000)?;
            note = Some(feedback.clone());
            let on_time = case.deadline.is_none_or(|d| now <= d);
            let handling_ms = case
                .assigned_at
                .map(|a| (now - a).num_milliseconds())
                .unwrap_or(0);
            detail =
                json!({"on_time": on_time, "handling_ms": handling_ms, "deadline": case.deadline});
        }
        Command::Verify { ok, note: n } => {
            note = n.clone();
            if !ok {
                next.verification_failures += 1;
                notify = case.department_code.clone();
            }
        }
        Command::Close { note: n } => {
            note = n.clone();
            next.closed_at = Some(now);
        }
        Command::Reopen { reason } => {
            check_text("reason", reason, 2000)?;
            note = Some(reason.clone());
            next.closed_at = None;
            next.department_code = None;
            next.deadline = None;
            next.assigned_at = None;
        }
        Command::EscalateUp { reason } => {
            check_text("reason", reason, 2000)?;
            note = Some(reason.clone());
            escalate_centre(&mut next)?;
            detail = json!({"centre": next.centre_code});
            notify = case.department_code.clone();
        }
        Command::Supervise { note: n } => {
            check_text("note", n, 2000)?;
            note = Some(n.clone());
            next.supervisions += 1;
            notify = case.department_code.clone();
        }
        Command::Merge { into, note: n } => {
            if *into == case_id {
                return Err(DispatchError::Invalid(crate::msg!(
                    "a case cannot be merged into itself",
                    "案件不能合并到自身"
                )));
            }
            // A case outside the caller's reach is answered as if it did not exist.
            let unknown = || {
                DispatchError::Invalid(crate::msg!(
                    "no case {into} to merge into",
                    "没有可合并到的案件 {into}"
                ))
            };
            let target = match store.case(*into).await {
                Ok(t) => t,
                Err(StoreError::NotFound { .. }) => return Err(unknown()),
                Err(e) => return Err(e.into()),
            };
            if !may_take(&actor, step, &target) {
                return Err(unknown());
            }
            if target.state == CaseState::Merged {
                return Err(DispatchError::Invalid(crate::msg!(
                    "case {into} is itself merged into {}",
                    "案件 {into} 本身已合并到 {}",
                    target.merged_into.unwrap_or_default()
                )));
            }
            note = n.clone();
            next.merged_into = Some(*into);
            next.closed_at = Some(now);
            next.deadline = None;
            detail = json!({"into": into});
        }
    }
    let event = NewCaseEvent {
        at: now,
        actor: actor.principal.name.clone(),
        kind: step.as_str().into(),
        from_state: Some(case.state),
        note,
        detail: with_context(detail, &case),
    };
    // The step's audit row is written with the step itself: under the case's grid, so
    // the auditors of its area see every step taken on it.
    let audit = crate::store::NewAuditEntry {
        actor: actor.principal.name.clone(),
        action: format!("case_{}", step.as_str()),
        resource: format!("cases/{case_id}"),
        scope_code: crate::workflow::audit::case_scope(&next).to_string(),
        detail: json!({"state": next.state, "version": next.version + 1,
            "department": next.department_code}),
    };
    Ok(store
        .update_case(&next, &event, notify.as_deref(), Some(&audit))
        .await?)
}

/// Every event carries the grid and the department the case had when it happened, so
/// assessments fold events without joining cases.
fn with_context(mut detail: Value, case: &CaseRecord) -> Value {
    if let Value::Object(map) = &mut detail {
        map.entry("grid").or_insert(json!(case.grid_code));
        map.entry("township").or_insert(json!(case.township_code));
        if let Some(d) = &case.department_code {
            map.entry("department").or_insert(json!(d));
        }
    }
    detail
}

/// A county's list applies in that county only (Art. 10): `what` lies in `county`.
fn check_applies(m: &MatterVersion, county: &str, what: impl Fn() -> Msg) -> Result<()> {
    if m.matter.applies_in(county) {
        return Ok(());
    }
    let (code, list, what) = (&m.matter.code, &m.matter.region_code, what());
    let (what_en, what_zh) = (what.en(), what.zh());
    Err(DispatchError::Invalid(crate::msg!(
        "matter {code} is on the list of {list}, and {what_en} lies in {county}",
        "事项 {code} 在 {list} 的清单上，而{what_zh}位于 {county}"
    )))
}

async fn classify(
    store: &dyn Store,
    case: &mut CaseRecord,
    code: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let m = matter_in_force(store, code, crate::domain::date_in_china(now)).await?;
    check_applies(&m, &case.county_code, || {
        let id = case.id;
        msg!("case {id}", "案件 {id} ")
    })?;
    case.matter_code = Some(m.matter.code.clone());
    case.matter_version = Some(m.id);
    case.category = Some(m.matter.category);
    Ok(())
}

fn escalate_centre(case: &mut CaseRecord) -> Result<()> {
    let level = CentreLevel::of_code(&case.centre_code)
        .and_then(CentreLevel::up)
        .ok_or_else(|| {
            DispatchError::Invalid(crate::msg!(
                "case {} is at the city centre already",
                "案件 {} 已在市级中心",
                case.id
            ))
        })?;
    case.centre_code = match level {
        CentreLevel::County => case.county_code.clone(),
        CentreLevel::City => case.city_code.clone(),
        CentreLevel::Township => case.township_code.clone(),
    };
    case.escalations += 1;
    Ok(())
}

/// What the sweep does with due cases.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Notice a deadline this long before it passes.
    pub due_soon: Duration,
    /// Move an overdue case to the centre one level up.
    pub escalate_overdue: bool,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SweepReport {
    pub due_soon: u32,
    pub overdue: u32,
    pub escalated: u32,
}

/// Notices cases whose deadline is near (`due_soon`) or past (`overdue`, escalated one
/// level up when configured), once each, as events with webhooks to the department.
/// Safe to run on every replica: a case another sweep noticed first is skipped.
pub async fn sweep(
    store: &dyn Store,
    now: DateTime<Utc>,
    settings: SweepSettings,
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut after = None;
    loop {
        let batch = store
            .cases(&CaseQuery {
                states: CaseState::ON_THE_CLOCK.to_vec(),
                deadline_before: Some(now + settings.due_soon),
                after_id: after,
                limit: 500,
                ..CaseQuery::default()
            })
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        for case in batch {
            let Some(deadline) = case.deadline else {
                continue;
            };
            let overdue = deadline <= now;
            if (overdue && case.overdue_noticed) || (!overdue && case.due_soon_noticed) {
                continue;
            }
            // Accepting takes a dispatcher a moment; a window of hours would make every
            // new report "due soon" on arrival (and change its version under the
            // dispatcher's hands). Only its lateness is announced.
            if !overdue && !case.state.with_department() {
                continue;
            }
            let mut next = case.clone();
            let mut detail = json!({"deadline": deadline});
            let step = if overdue {
                next.overdue_noticed = true;
                next.due_soon_noticed = true;
                if settings.escalate_overdue && escalate_centre(&mut next).is_ok() {
                    detail["escalated_to"] = json!(next.centre_code);
                }
                Step::Overdue
            } else {
                next.due_soon_noticed = true;
                Step::DueSoon
            };
            let event = NewCaseEvent {
                at: now,
                actor: "system".into(),
                kind: step.as_str().into(),
                from_state: Some(case.state),
                note: None,
                detail: with_context(detail, &case),
            };
            match store
                .update_case(&next, &event, case.department_code.as_deref(), None)
                .await
            {
                Ok(_) => {
                    if overdue {
                        report.overdue += 1;
                        if next.escalations > case.escalations {
                            report.escalated += 1;
                        }
                    } else {
                        report.due_soon += 1;
                    }
                }
                // Someone acted on it meanwhile; the next sweep looks again.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}
