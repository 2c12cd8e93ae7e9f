//! Cases: intake by staff, lists per jurisdiction, department and centre, one case with
//! its timeline and the steps the caller may take, the steps themselves, the event
//! stream's reads, assessment and analysis. A case the caller may not read is answered
//! as a missing one.

use super::{App, AppError, AppResult, require};
use crate::auth::{Action, Principal, mask_name, mask_phone};
use crate::domain::{CaseState, UserRole};
use crate::store::{CaseEvent, CaseQuery, CaseRecord, EventCursor, IdempotencyKey, StoreError};
use crate::workflow::assessment::{self, Assessment};
use crate::workflow::dispatch::{self, Actor, Command, Report, Reporter, may_read};
use crate::workflow::state::Step;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// A case as a caller sees it: the reporter's contact masked unless the caller's role
/// needs it, and the steps the caller may take now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    #[serde(flatten)]
    pub case: CaseRecord,
    /// Whether the reporter's contact is shown unmasked.
    pub personal_data: bool,
    pub allowed_actions: Vec<Step>,
    /// The name of the case's grid, if it is a current grid with a name: a dispatcher
    /// reads names, not 15-digit codes.
    pub grid_name: Option<String>,
}

/// What a case list asks for, before it is cut to what the caller may read.
#[derive(Debug, Default)]
pub struct ListRequest {
    pub states: Vec<CaseState>,
    pub under: Option<String>,
    pub matter: Option<String>,
    pub department: Option<String>,
    pub overdue: bool,
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// A centre's deadline list: cases due before `before` (and not before `not_before`).
#[derive(Debug)]
pub struct CentreList {
    pub centre: String,
    pub department: Option<String>,
    pub before: DateTime<Utc>,
    pub not_before: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// An open event stream's reader: who reads, and which departments they act for.
#[derive(Debug, Clone)]
pub struct StreamStart {
    pub principal: Principal,
    pub departments: Vec<String>,
    /// Where the stream starts in commit order.
    pub position: EventCursor,
}

impl StreamStart {
    /// The event as this reader may see it, or `None` when it is not theirs to see.
    pub fn see(&self, e: &CaseEvent) -> Option<CaseEvent> {
        let grid = e.detail.get("grid").and_then(Value::as_str).unwrap_or("");
        let department = e.detail.get("department").and_then(Value::as_str);
        let visible = (!grid.is_empty()
            && self
                .principal
                .may_except(Action::ReadCases, grid, UserRole::DepartmentHandler))
            || department.is_some_and(|d| self.departments.iter().any(|x| x == d));
        visible.then(|| {
            let mut e = e.clone();
            let grid = grid.to_string();
            mask_event_for(&self.principal, &grid, &mut e);
            e
        })
    }
}

/// The member on duty is named in full only to those who may read personal data of
/// the case's grid, as on the case itself; timelines and streams alike.
pub fn mask_event_for(p: &Principal, grid: &str, e: &mut CaseEvent) {
    if p.may(Action::ReadPersonal, grid) {
        return;
    }
    if let Some(name) = e.detail.get("member_on_duty").and_then(Value::as_str) {
        e.detail["member_on_duty"] = json!(mask_name(name));
    }
}

fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((user, domain)) => format!("{}@{domain}", mask_name(user)),
        None => mask_name(email),
    }
}

fn mask_contact(case: &mut CaseRecord) {
    case.reporter_name = case.reporter_name.as_deref().map(mask_name);
    case.reporter_phone = case.reporter_phone.as_deref().map(mask_phone);
    case.reporter_email = case.reporter_email.as_deref().map(mask_email);
}

/// The steps the case's state allows and the caller may take.
fn allowed_actions(p: &Principal, departments: &[String], case: &CaseRecord) -> Vec<Step> {
    let actor = Actor {
        principal: p,
        departments,
    };
    crate::workflow::state::allowed(case.state)
        .unwrap_or_default()
        .into_iter()
        .filter(|&s| dispatch::may_take(&actor, s, case))
        .collect()
}

/// Lists never unmask: personal data is read one case at a time, audited.
fn masked_view(
    p: &Principal,
    departments: &[String],
    snapshot: &crate::workflow::live::Snapshot,
    mut case: CaseRecord,
) -> CaseView {
    let allowed_actions = allowed_actions(p, departments, &case);
    mask_contact(&mut case);
    CaseView {
        grid_name: grid_name(snapshot, &case),
        case,
        personal_data: false,
        allowed_actions,
    }
}

/// The current name of a case's grid.
fn grid_name(snapshot: &crate::workflow::live::Snapshot, case: &CaseRecord) -> Option<String> {
    snapshot.grid(&case.grid_code).and_then(|g| g.name.clone())
}

/// The regions whose cases `p` reads as a jurisdiction (not as a department's handler,
/// who reads through their departments).
fn area_scopes(p: &Principal) -> Vec<String> {
    p.grants
        .iter()
        .filter(|g| g.role != UserRole::DepartmentHandler)
        .filter(|g| p.may_except(Action::ReadCases, &g.scope, UserRole::DepartmentHandler))
        .map(|g| g.scope.clone())
        .collect()
}

impl App {
    /// The caller's departments (for department handlers).
    async fn departments_of(&self, p: &Principal) -> AppResult<Vec<String>> {
        if p.may_somewhere(Action::HandleCase) {
            Ok(self.store.staff_departments(&p.name).await?)
        } else {
            Ok(Vec::new())
        }
    }

    /// The case unmasked (and the read audited) for roles that need the reporter's
    /// contact, masked for others.
    async fn view(
        &self,
        p: &Principal,
        departments: &[String],
        mut case: CaseRecord,
    ) -> AppResult<CaseView> {
        let allowed_actions = allowed_actions(p, departments, &case);
        let personal = p.may(Action::ReadPersonal, &case.grid_code);
        let has_contact = case.reporter_name.is_some()
            || case.reporter_phone.is_some()
            || case.reporter_email.is_some();
        if personal && has_contact {
            self.audit(
                &p.name,
                "read_personal",
                format!("cases/{}", case.id),
                &case.grid_code,
                json!({"fields": ["reporter_name", "reporter_phone", "reporter_email"]}),
            )
            .await?;
        } else {
            mask_contact(&mut case);
        }
        Ok(CaseView {
            grid_name: grid_name(&self.live.snapshot(), &case),
            case,
            personal_data: personal,
            allowed_actions,
        })
    }

    /// Files a case as a grid member's upload or a dispatcher's hotline record, stored
    /// durably before it returns; with an idempotency key a retry returns the same case
    /// (and `false`). Audited under the case's grid.
    pub async fn report_case(
        &self,
        p: &Principal,
        report: &Report,
        key: Option<&IdempotencyKey>,
    ) -> AppResult<(CaseView, bool)> {
        let (case, fresh) = self.intake(report, Reporter::Account(p), key).await?;
        if fresh {
            self.audit(
                &p.name,
                "case_report",
                format!("cases/{}", case.id),
                crate::workflow::audit::case_scope(&case),
                json!({"source": case.source, "matter": case.matter_code, "centre": case.centre_code}),
            )
            .await?;
        }
        let departments = self.departments_of(p).await?;
        Ok((self.view(p, &departments, case).await?, fresh))
    }

    /// Files a report from `reporter` on the live grids, counted when it is new.
    pub(super) async fn intake(
        &self,
        report: &Report,
        reporter: Reporter<'_>,
        key: Option<&IdempotencyKey>,
    ) -> AppResult<(CaseRecord, bool)> {
        let snapshot = self.live.snapshot();
        let (case, fresh) = dispatch::intake(
            self.store.as_ref(),
            &self.matters,
            &snapshot,
            &self.locate_options(),
            report,
            reporter,
            crate::domain::now(),
            chrono::Duration::hours(i64::from(self.settings.accept_within_hours)),
            key,
        )
        .await?;
        if fresh {
            metrics::counter!("wangge_cases_reported_total", "source" => case.source.as_str())
                .increment(1);
        }
        Ok((case, fresh))
    }

    /// How points are located for intake and dispatch (the settings' tolerances).
    pub fn locate_options(&self) -> crate::spatial::LocateOptions {
        crate::spatial::LocateOptions {
            near_boundary_m: self.settings.near_boundary_m,
            max_outside_m: self.settings.max_outside_m,
            boundary_distance: true,
        }
    }

    /// The query restricted to what the caller may read: their jurisdictions, or for
    /// department handlers their departments' cases.
    async fn scoped(
        &self,
        p: &Principal,
        mut q: CaseQuery,
        under: Option<&str>,
    ) -> AppResult<(CaseQuery, Vec<String>)> {
        let departments = self.departments_of(p).await?;
        let scopes = area_scopes(p);
        match under {
            Some(code) if p.may_except(Action::ReadCases, code, UserRole::DepartmentHandler) => {
                q.under = vec![code.to_string()]
            }
            Some(code) if scopes.is_empty() && !departments.is_empty() => {
                q.under = vec![code.to_string()];
                q.departments = departments.clone();
            }
            Some(code) => {
                return Err(AppError::forbidden(crate::msg!(
                    "{} may not read cases in {code}",
                    "{} 无权查看 {code} 的案件",
                    p.name
                )));
            }
            None if !scopes.is_empty() => q.under = scopes,
            None if !departments.is_empty() => q.departments = departments.clone(),
            None => {
                return Err(AppError::forbidden(crate::msg!(
                    "{} may not read cases",
                    "{} 无权查看案件",
                    p.name
                )));
            }
        }
        Ok((q, departments))
    }

    /// Cases the caller may read, oldest first, masked.
    pub async fn cases(&self, p: &Principal, req: ListRequest) -> AppResult<Vec<CaseView>> {
        let mut query = CaseQuery {
            states: req.states,
            matter: req.matter,
            after_id: req.after_id,
            limit: req.limit.clamp(1, 1000),
            ..CaseQuery::default()
        };
        if req.overdue {
            query.deadline_before = Some(crate::domain::now());
            if query.states.is_empty() {
                query.states = CaseState::ON_THE_CLOCK.to_vec();
            }
        }
        let (mut query, departments) = self.scoped(p, query, req.under.as_deref()).await?;
        if let Some(d) = req.department {
            if !query.departments.is_empty() && !query.departments.contains(&d) {
                return Err(AppError::forbidden(crate::msg!(
                    "{} does not act for {d}",
                    "{} 不是部门 {d} 的办理人员",
                    p.name
                )));
            }
            query.departments = vec![d];
        }
        let cases = self.store.cases(&query).await?;
        let snapshot = self.live.snapshot();
        Ok(cases
            .into_iter()
            .map(|c| masked_view(p, &departments, &snapshot, c))
            .collect())
    }

    /// A centre's open cases by deadline; a department handler sees only their
    /// departments' cases here, as everywhere.
    pub async fn centre_cases(&self, p: &Principal, req: CentreList) -> AppResult<Vec<CaseView>> {
        require(p, Action::ReadCases, &req.centre)?;
        let departments = self.departments_of(p).await?;
        let wanted: Vec<String> =
            if p.may_except(Action::ReadCases, &req.centre, UserRole::DepartmentHandler) {
                req.department.iter().cloned().collect()
            } else {
                match &req.department {
                    Some(d) if departments.contains(d) => vec![d.clone()],
                    Some(_) => return Ok(Vec::new()),
                    None if departments.is_empty() => return Ok(Vec::new()),
                    None => departments.clone(),
                }
            };
        let query = CaseQuery {
            under: vec![req.centre.clone()],
            states: CaseState::ON_THE_CLOCK.to_vec(),
            departments: wanted,
            deadline_before: Some(req.before),
            by_deadline: true,
            limit: req.limit.clamp(1, 1000),
            ..CaseQuery::default()
        };
        let cases = self.store.cases(&query).await?;
        let snapshot = self.live.snapshot();
        Ok(cases
            .into_iter()
            .filter(|c| {
                req.not_before
                    .is_none_or(|t| c.deadline.is_some_and(|d| d >= t))
            })
            .map(|c| masked_view(p, &departments, &snapshot, c))
            .collect())
    }

    /// The case if the caller may read it; otherwise the same "no case" as for a
    /// missing one (ids are sequential: a 403 would tell which exist elsewhere).
    async fn readable(&self, p: &Principal, id: i64) -> AppResult<(CaseRecord, Vec<String>)> {
        let case = self.store.case(id).await?;
        let departments = self.departments_of(p).await?;
        if !may_read(p, &departments, &case) {
            return Err(StoreError::NotFound {
                what: "case",
                id: id.to_string(),
            }
            .into());
        }
        Ok((case, departments))
    }

    /// One case, with the reporter's contact unmasked (and audited) only for roles that
    /// need it, and the steps the caller may take.
    pub async fn case(&self, p: &Principal, id: i64) -> AppResult<CaseView> {
        let (case, departments) = self.readable(p, id).await?;
        self.view(p, &departments, case).await
    }

    /// A readable case's timeline, oldest first, names masked as on the case.
    pub async fn case_events(&self, p: &Principal, id: i64) -> AppResult<Vec<CaseEvent>> {
        let (case, _) = self.readable(p, id).await?;
        let mut events = self.store.case_events(id).await?;
        for e in &mut events {
            mask_event_for(p, &case.grid_code, e);
        }
        Ok(events)
    }

    /// Takes one step on case `id`; with `expected` only from that version. Who may
    /// take which step is judged on the stored case before the version is compared, so
    /// a conflict never tells an outsider a case's version. Audited under the case's
    /// grid, in the step's own transaction.
    pub async fn act(
        &self,
        p: &Principal,
        id: i64,
        command: &Command,
        expected: Option<i64>,
    ) -> AppResult<CaseView> {
        let departments = self.departments_of(p).await?;
        let case = dispatch::act(
            self.store.as_ref(),
            id,
            Actor {
                principal: p,
                departments: &departments,
            },
            command,
            expected,
            crate::domain::now(),
        )
        .await?;
        metrics::counter!("wangge_case_steps_total", "step" => command.step().as_str())
            .increment(1);
        Ok(masked_view(p, &departments, &self.live.snapshot(), case))
    }

    /// Opens an event stream for the caller: from just after event `resume`, or from
    /// now.
    pub async fn open_stream(&self, p: &Principal, resume: Option<i64>) -> AppResult<StreamStart> {
        let departments = self.stream_departments(p).await?;
        let position = match resume {
            Some(id) => self.store.event_position(id).await?,
            None => self.store.event_feed_start().await?,
        };
        Ok(StreamStart {
            principal: p.clone(),
            departments,
            position,
        })
    }

    /// Whether `p` may open an event stream (or ask for a ticket to open one): whoever
    /// may list cases — a jurisdiction's reader, or a handler who is staff of a
    /// department (a handler of none would only hold a stream slot that shows nothing).
    pub async fn may_stream(&self, p: &Principal) -> AppResult<()> {
        self.stream_departments(p).await.map(|_| ())
    }

    /// The departments a stream of `p` follows, once `p` is found to be a reader (see
    /// [`Self::may_stream`]): read once for both.
    async fn stream_departments(&self, p: &Principal) -> AppResult<Vec<String>> {
        let departments = self.departments_of(p).await?;
        if area_scopes(p).is_empty() && departments.is_empty() {
            return Err(AppError::forbidden(crate::msg!(
                "{} may not read cases",
                "{} 无权查看案件",
                p.name
            )));
        }
        Ok(departments)
    }

    /// The reader as the store knows them now: the token's holder with their current
    /// grants and departments. A stream re-reads it now and then, so a revoked grant or
    /// a dismissal narrows what it shows, and a dead token ends it (an error other than
    /// the store's).
    pub async fn reread_reader(&self, token: &str, reader: &StreamStart) -> AppResult<StreamStart> {
        let (principal, _) = self.token_holder(token).await?;
        let departments = self.departments_of(&principal).await?;
        Ok(StreamStart {
            principal,
            departments,
            position: reader.position,
        })
    }

    /// The next events after `position` in commit order, each as `reader` may see it
    /// (`None`: not theirs), with its position.
    pub async fn stream_page(
        &self,
        reader: &StreamStart,
        position: EventCursor,
        limit: i64,
    ) -> AppResult<Vec<(EventCursor, Option<CaseEvent>)>> {
        Ok(self
            .store
            .events_committed_after(position, limit)
            .await?
            .into_iter()
            .map(|(at, e)| (at, reader.see(&e)))
            .collect())
    }

    /// Figures per department, grid and member for `[from, to)`, in the caller's
    /// jurisdiction (dispatchers and auditors).
    pub async fn assessment(
        &self,
        p: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> AppResult<Assessment> {
        if to <= from {
            return Err(AppError::invalid(crate::msg!(
                "`to` must be after `from`",
                "`to` 须晚于 `from`"
            )));
        }
        if !(p.may_somewhere(Action::DispatchCase) || p.may_somewhere(Action::ReadAudit)) {
            return Err(AppError::forbidden(crate::msg!(
                "{} may not read assessments",
                "{} 无权查看考核",
                p.name
            )));
        }
        let departments = self.store.departments().await?;
        let snapshot = self.live.snapshot();
        let keep = |key: &str| {
            if let Some(d) = departments.iter().find(|d| d.code == key) {
                return p.may(Action::ReadCases, &d.region_code);
            }
            let is_grid = key
                .parse::<crate::domain::RegionCode>()
                .is_ok_and(|c| c.level() == crate::domain::Level::Grid);
            (snapshot.grid(key).is_some() || is_grid) && p.may(Action::ReadCases, key)
        };
        Ok(assessment::assess(self.store.as_ref(), from, to, crate::domain::now(), keep).await?)
    }

    /// Cases reported in `[from, to)` that the caller may read (for analysis).
    pub async fn cases_reported(
        &self,
        p: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> AppResult<Vec<CaseRecord>> {
        if to <= from {
            return Err(AppError::invalid(crate::msg!(
                "`to` must be after `from`",
                "`to` 须晚于 `from`"
            )));
        }
        let query = CaseQuery {
            reported_from: Some(from),
            reported_to: Some(to),
            limit: 1_000_000,
            ..CaseQuery::default()
        };
        let (query, _) = self.scoped(p, query, None).await?;
        Ok(self.store.cases(&query).await?)
    }
}

/// What the event feeder broadcasts to streams: an event and its place in commit order.
/// Streams show it only through [`StreamStart::see`].
pub type SharedEvent = std::sync::Arc<FedEvent>;

/// A committed event as the feeder found it.
#[derive(Debug)]
pub struct FedEvent {
    pub position: EventCursor,
    pub event: CaseEvent,
}

impl App {
    /// Reads newly committed case events from the store and broadcasts them to the
    /// open streams: events of every replica reach every stream, whichever process
    /// wrote them, in commit order and each once (an event committed after a
    /// higher-numbered one is not skipped: see `DispatchStore::events_committed_after`).
    pub async fn feed_events(
        &self,
        streams: tokio::sync::broadcast::Sender<SharedEvent>,
        every: std::time::Duration,
    ) {
        let mut position = match self.store.event_feed_start().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read case events; streams get no live events");
                return;
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if streams.receiver_count() == 0 {
                // Nobody listens: skip the events (reading and decoding thousands a
                // second under load is wasted) but keep up, so a new stream starts from
                // now, as it would have; a stream opened meanwhile catches up itself.
                match self.store.event_feed_start().await {
                    Ok(p) => position = position.max(p),
                    Err(e) => tracing::warn!(error = %e, "reading case events failed"),
                }
                continue;
            }
            loop {
                match self.store.events_committed_after(position, 1000).await {
                    Ok(events) => {
                        let n = events.len();
                        for (at, event) in events {
                            position = at;
                            // No subscribers is not an error.
                            let _ = streams.send(std::sync::Arc::new(FedEvent {
                                position: at,
                                event,
                            }));
                        }
                        if n < 1000 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading case events failed");
                        break;
                    }
                }
            }
        }
    }
}
