//! Cases over HTTP: intake by grid members and dispatchers (and residents, in
//! `public_reports`), lists per jurisdiction, department and centre, a case with its
//! timeline and the steps the caller may take, the steps themselves (`If-Match` names
//! the version read), a Server-Sent Events stream per user, assessment and analysis.

use super::access::record;
use super::extract::Caller;
use super::{ApiError, AppState};
use crate::auth::{Action, Principal, mask_name, mask_phone};
use crate::domain::{CaseState, UserRole};
use crate::store::{CaseEvent, CaseQuery, CaseRecord, EventCursor, IdempotencyKey};
use crate::workflow::assessment::{self, Period};
use crate::workflow::dispatch::{self, Actor, Command, Report, Reporter};
use crate::workflow::state::Step;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cases", get(list).post(create))
        .route("/v1/cases/stream", get(stream))
        .route("/v1/cases/{id}", get(show))
        .route("/v1/cases/{id}/events", get(events))
        .route("/v1/cases/{id}/actions", post(act))
        .route("/v1/centres/{code}/overdue", get(overdue))
        .route("/v1/centres/{code}/due-soon", get(due_soon))
        .route("/v1/assessment", get(assess))
        .route("/v1/analysis", get(analysis))
        .route("/v1/analysis/density", get(density))
}

/// A case as a caller sees it: the reporter's contact masked unless the caller's role
/// needs it, and the steps the caller may take now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    #[serde(flatten)]
    pub case: CaseRecord,
    /// Whether the reporter's contact is shown unmasked.
    pub personal_data: bool,
    pub allowed_actions: Vec<Step>,
}

fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((user, domain)) => format!("{}@{domain}", mask_name(user)),
        None => mask_name(email),
    }
}

/// The caller's departments (for department handlers).
pub async fn departments_of(state: &AppState, p: &Principal) -> Result<Vec<String>, ApiError> {
    if p.may_somewhere(Action::HandleCase) {
        Ok(state.store.staff_departments(&p.name).await?)
    } else {
        Ok(Vec::new())
    }
}

use crate::workflow::dispatch::may_read;

async fn view(
    state: &AppState,
    p: &Principal,
    departments: &[String],
    case: CaseRecord,
) -> Result<CaseView, ApiError> {
    let allowed_actions = allowed_actions(p, departments, &case);
    let personal = p.may(Action::ReadPersonal, &case.grid_code);
    let has_contact = case.reporter_name.is_some()
        || case.reporter_phone.is_some()
        || case.reporter_email.is_some();
    let mut case = case;
    if personal && has_contact {
        record(
            state,
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
        case,
        personal_data: personal,
        allowed_actions,
    })
}

/// The idempotency key of a request, scoped to who sends it, with a hash of the body.
pub fn idempotency(
    headers: &HeaderMap,
    scope: &str,
    body: &impl Serialize,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (8..=200).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 8 to 200 visible ASCII characters")
                .with("parameter", json!("Idempotency-Key"))
        })?;
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Ok(Some(IdempotencyKey {
        key: format!("{scope}:{key}"),
        request_hash: hex::encode(Sha256::digest(&canonical)),
    }))
}

/// A 201 with `Location`; a replayed idempotent submission says so.
pub fn created(location: String, created: bool, body: impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if !created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Files a case: a grid member's upload or a dispatcher's hotline record. Stored
/// durably before the 201; with `Idempotency-Key`, a retry returns the same case.
#[utoipa::path(post, path = "/v1/cases", tag = "cases", request_body = Report, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried submission return the same case")),
    responses((status = 201, body = CaseView), (status = 403), (status = 422, description = "no grid there, unknown matter")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(report): Json<Report>,
) -> Result<Response, ApiError> {
    let key = idempotency(&headers, &format!("user:{}", caller.0.name), &report)?;
    let snapshot = state.live.snapshot();
    let (case, fresh) = dispatch::intake(
        state.store.as_ref(),
        &state.matters,
        &snapshot,
        &super::locate::locate_options(&state),
        &report,
        Reporter::Account(&caller.0),
        Utc::now(),
        key.as_ref(),
    )
    .await?;
    if fresh {
        metrics::counter!("wangge_cases_reported_total", "source" => case.source.as_str())
            .increment(1);
        record(
            &state,
            &caller.0.name,
            "case_report",
            format!("cases/{}", case.id),
            crate::workflow::audit::case_scope(&case),
            json!({"source": case.source, "matter": case.matter_code, "centre": case.centre_code}),
        )
        .await?;
    }
    let departments = departments_of(&state, &caller.0).await?;
    let id = case.id;
    let body = view(&state, &caller.0, &departments, case).await?;
    Ok(created(format!("/v1/cases/{id}"), fresh, body))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Comma-separated states.
    pub state: Option<String>,
    /// Cases located under this region or grid code.
    pub under: Option<String>,
    pub matter: Option<String>,
    pub department: Option<String>,
    /// Only cases with a department whose deadline has passed.
    pub overdue: Option<bool>,
    /// Cases with a larger id (paging).
    pub after_id: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

fn parse_states(s: &str) -> Result<Vec<CaseState>, ApiError> {
    s.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e: String| ApiError::bad_request(e).with("parameter", json!("state")))
        })
        .collect()
}

/// The query restricted to what the caller may read: their jurisdictions, or for
/// department handlers their departments' cases.
async fn scoped(
    state: &AppState,
    p: &Principal,
    mut q: CaseQuery,
    under: Option<&str>,
) -> Result<(CaseQuery, Vec<String>), ApiError> {
    let departments = departments_of(state, p).await?;
    let scopes: Vec<String> = p
        .grants
        .iter()
        .filter(|g| p.may_except(Action::ReadCases, &g.scope, UserRole::DepartmentHandler))
        .filter(|g| g.role != UserRole::DepartmentHandler)
        .map(|g| g.scope.clone())
        .collect();
    match under {
        Some(code) if p.may_except(Action::ReadCases, code, UserRole::DepartmentHandler) => {
            q.under = vec![code.to_string()]
        }
        Some(code) if scopes.is_empty() && !departments.is_empty() => {
            q.under = vec![code.to_string()];
            q.departments = departments.clone();
        }
        Some(code) => {
            return Err(ApiError::forbidden(format!(
                "{} may not read cases in {code}",
                p.name
            )));
        }
        None if !scopes.is_empty() => q.under = scopes,
        None if !departments.is_empty() => q.departments = departments.clone(),
        None => {
            return Err(ApiError::forbidden(format!(
                "{} may not read cases",
                p.name
            )));
        }
    }
    Ok((q, departments))
}

/// Cases the caller may read, oldest first (page with `after_id`).
#[utoipa::path(get, path = "/v1/cases", tag = "cases", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = [CaseView])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    let mut query = CaseQuery {
        states: q
            .state
            .as_deref()
            .map(parse_states)
            .transpose()?
            .unwrap_or_default(),
        matter: q.matter.clone(),
        after_id: q.after_id,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..CaseQuery::default()
    };
    if q.overdue == Some(true) {
        query.deadline_before = Some(Utc::now());
        if query.states.is_empty() {
            query.states = vec![CaseState::Assigned, CaseState::Acknowledged];
        }
    }
    let (mut query, departments) = scoped(&state, &caller.0, query, q.under.as_deref()).await?;
    if let Some(d) = &q.department {
        if !query.departments.is_empty() && !query.departments.contains(d) {
            return Err(ApiError::forbidden(format!(
                "{} does not act for {d}",
                caller.0.name
            )));
        }
        query.departments = vec![d.clone()];
    }
    let cases = state.store.cases(&query).await?;
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        out.push(masked_view(&caller.0, &departments, c));
    }
    Ok(Json(out))
}

/// Lists never unmask: personal data is read one case at a time, audited.
fn masked_view(p: &Principal, departments: &[String], mut case: CaseRecord) -> CaseView {
    let allowed_actions = allowed_actions(p, departments, &case);
    mask_contact(&mut case);
    CaseView {
        case,
        personal_data: false,
        allowed_actions,
    }
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

fn mask_contact(case: &mut CaseRecord) {
    case.reporter_name = case.reporter_name.as_deref().map(mask_name);
    case.reporter_phone = case.reporter_phone.as_deref().map(mask_phone);
    case.reporter_email = case.reporter_email.as_deref().map(mask_email);
}

/// The case's version as its `ETag` (what `If-Match` names).
fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CentreQuery {
    /// Cases of this department only.
    pub department: Option<String>,
    pub limit: Option<i64>,
}

async fn centre_list(
    state: &AppState,
    caller: &Caller,
    code: &str,
    q: &CentreQuery,
    before: DateTime<Utc>,
    not_before: Option<DateTime<Utc>>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    caller.require(Action::ReadCases, code)?;
    let departments = departments_of(state, &caller.0).await?;
    // A department handler sees only their departments' cases here, as everywhere.
    let wanted: Vec<String> =
        if caller
            .0
            .may_except(Action::ReadCases, code, UserRole::DepartmentHandler)
        {
            q.department.iter().cloned().collect()
        } else {
            match &q.department {
                Some(d) if departments.contains(d) => vec![d.clone()],
                Some(_) => return Ok(Json(Vec::new())),
                None if departments.is_empty() => return Ok(Json(Vec::new())),
                None => departments.clone(),
            }
        };
    let query = CaseQuery {
        under: vec![code.to_string()],
        states: vec![CaseState::Assigned, CaseState::Acknowledged],
        departments: wanted,
        deadline_before: Some(before),
        by_deadline: true,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..CaseQuery::default()
    };
    let cases = state.store.cases(&query).await?;
    Ok(Json(
        cases
            .into_iter()
            .filter(|c| not_before.is_none_or(|t| c.deadline.is_some_and(|d| d >= t)))
            .map(|c| masked_view(&caller.0, &departments, c))
            .collect(),
    ))
}

/// Cases under a centre's area past their deadline, most overdue first.
#[utoipa::path(get, path = "/v1/centres/{code}/overdue", tag = "cases", params(("code" = String, Path), CentreQuery), security(("bearer" = [])),
    responses((status = 200, body = [CaseView])))]
pub async fn overdue(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(q): Query<CentreQuery>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    centre_list(&state, &caller, &code, &q, Utc::now(), None).await
}

/// Cases under a centre's area due within `due_soon_hours`, soonest first.
#[utoipa::path(get, path = "/v1/centres/{code}/due-soon", tag = "cases", params(("code" = String, Path), CentreQuery), security(("bearer" = [])),
    responses((status = 200, body = [CaseView])))]
pub async fn due_soon(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Query(q): Query<CentreQuery>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    let now = Utc::now();
    let soon = now + Duration::hours(i64::from(state.settings.due_soon_hours));
    centre_list(&state, &caller, &code, &q, soon, Some(now)).await
}

async fn readable(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<(CaseRecord, Vec<String>), ApiError> {
    let case = state.store.case(id).await?;
    let departments = departments_of(state, &caller.0).await?;
    if !may_read(&caller.0, &departments, &case) {
        // Answered as a missing case: ids are sequential, and a 403 would tell which
        // exist elsewhere.
        return Err(crate::store::StoreError::NotFound {
            what: "case",
            id: id.to_string(),
        }
        .into());
    }
    Ok((case, departments))
}

/// One case, with the reporter's contact (unmasked only for roles that need it; such
/// reads are audited) and the steps the caller may take.
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = CaseView), (status = 404, description = "no such case, or none the caller may read")))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (case, departments) = readable(&state, &caller, id).await?;
    let version = case.version;
    let body = view(&state, &caller.0, &departments, case).await?;
    Ok(with_etag(Json(body).into_response(), version))
}

/// A case's timeline, oldest first.
#[utoipa::path(get, path = "/v1/cases/{id}/events", tag = "cases", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = [CaseEvent])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<CaseEvent>>, ApiError> {
    let (case, _) = readable(&state, &caller, id).await?;
    let mut events = state.store.case_events(id).await?;
    for e in &mut events {
        mask_event_for(&caller.0, &case.grid_code, e);
    }
    Ok(Json(events))
}

/// The member on duty is named in full only to those who may read personal data of
/// the case's grid, as on the case itself; timelines and streams alike.
fn mask_event_for(p: &Principal, grid: &str, e: &mut CaseEvent) {
    if p.may(Action::ReadPersonal, grid) {
        return;
    }
    if let Some(name) = e.detail.get("member_on_duty").and_then(Value::as_str) {
        e.detail["member_on_duty"] = json!(mask_name(name));
    }
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("If-Match must be the case's version (its ETag)")
                .with("parameter", json!("If-Match"))
        })
}

/// Takes one step (`{"action": "assign", …}`). With `If-Match: "<version>"` the step
/// applies only to the version read; two handlers acting at once: one wins, the other
/// gets 409.
#[utoipa::path(post, path = "/v1/cases/{id}/actions", tag = "cases", params(("id" = i64, Path)), request_body = Command, security(("bearer" = [])),
    responses((status = 200, body = CaseView), (status = 403), (status = 409, description = "invalid transition or changed meanwhile"), (status = 422)))]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(command): Json<Command>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let departments = departments_of(&state, &caller.0).await?;
    let case = dispatch::act(
        state.store.as_ref(),
        id,
        Actor {
            principal: &caller.0,
            departments: &departments,
        },
        &command,
        expected,
        Utc::now(),
    )
    .await?;
    metrics::counter!("wangge_case_steps_total", "step" => command.step().as_str()).increment(1);
    // Under the case's grid, so the auditors of its area see every step taken on it.
    record(
        &state,
        &caller.0.name,
        &format!("case_{}", command.step().as_str()),
        format!("cases/{id}"),
        crate::workflow::audit::case_scope(&case),
        json!({"state": case.state, "version": case.version, "department": case.department_code}),
    )
    .await?;
    let version = case.version;
    Ok(with_etag(
        Json(masked_view(&caller.0, &departments, case)).into_response(),
        version,
    ))
}

/// Whether a stream subscriber sees an event.
fn visible(p: &Principal, departments: &[String], e: &CaseEvent) -> bool {
    let grid = e.detail.get("grid").and_then(Value::as_str).unwrap_or("");
    let department = e.detail.get("department").and_then(Value::as_str);
    (!grid.is_empty() && p.may_except(Action::ReadCases, grid, UserRole::DepartmentHandler))
        || department.is_some_and(|d| departments.iter().any(|x| x == d))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// Resume after this event id (also `Last-Event-ID`).
    pub after: Option<i64>,
}

/// Server-Sent Events: every case event the caller may see (assignments, deadlines,
/// supervision…) as it happens, `id` = event id; reconnecting with `Last-Event-ID`
/// resumes without loss.
#[utoipa::path(get, path = "/v1/cases/stream", tag = "cases", params(StreamQuery), security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of CaseEvent", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let departments = departments_of(&state, &caller.0).await?;
    if !caller.0.may_somewhere(Action::ReadCases) {
        return Err(ApiError::forbidden(format!(
            "{} may not read cases",
            caller.0.name
        )));
    }
    let token = super::extract::bearer(&headers)
        .map(str::to_string)
        .unwrap_or_default();
    let slot = state
        .streams
        .open(&caller.0.name, state.settings.max_streams_per_account)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many open streams",
                format!(
                    "{} already has {} event streams open; close one first",
                    caller.0.name, state.settings.max_streams_per_account
                ),
            )
            .retry_after(std::time::Duration::from_secs(5))
        })?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(q.after);
    // Subscribe before finding the start, so nothing falls between the two.
    let mut live = state.case_events.subscribe();
    // Events are delivered in commit order (`events_committed_after`), the feeder's
    // order too; a position is the place in that order, so an event is sent exactly
    // when it lies past the last one sent, whichever path brought it.
    let mut position = match resume {
        Some(id) => state.store.event_position(id).await?,
        None => state.store.event_feed_start().await?,
    };
    let store = state.store.clone();
    let principal = caller.0.clone();
    let events = async_stream(move |tx| async move {
        // The stream counts against the account until this task ends.
        let _slot = slot;
        let send = |e: &CaseEvent| {
            let event = visible(&principal, &departments, e).then(|| {
                let mut e = e.clone();
                let grid = e
                    .detail
                    .get("grid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                mask_event_for(&principal, &grid, &mut e);
                sse_event(&e)
            });
            let tx = &tx;
            async move {
                match event {
                    Some(event) => tx.send(event).await.is_ok(),
                    None => true,
                }
            }
        };
        // Catch up from the store: resumed streams read what they missed, and events
        // the feeder broadcast before this stream subscribed are read here.
        let catch_up = |mut position: EventCursor| {
            let store = store.clone();
            let send = &send;
            async move {
                loop {
                    let Ok(page) = store.events_committed_after(position, 500).await else {
                        return None;
                    };
                    for (at, e) in &page {
                        position = *at;
                        if !send(e).await {
                            return None;
                        }
                    }
                    if page.len() < 500 {
                        return Some(position);
                    }
                }
            }
        };
        let Some(caught_up) = catch_up(position).await else {
            return;
        };
        position = caught_up;
        // A logged-out, revoked or expired token ends its streams within the token
        // cache's lifetime, as it ends every other request.
        let mut recheck = tokio::time::interval(super::extract::TOKEN_CACHE_TTL);
        recheck.tick().await;
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                // The client went away: stop waiting for events it will never read.
                _ = tx.closed() => return,
                _ = recheck.tick() => {
                    match crate::auth::live_token(store.as_ref(), &token).await {
                        Err(crate::auth::AuthError::Store(_)) | Ok(_) => continue,
                        Err(_) => return,
                    }
                }
            };
            match received {
                Ok(fed) if fed.position > position => {
                    position = fed.position;
                    if !send(&fed.event).await {
                        return;
                    }
                }
                Ok(_) => {}
                // Fell behind: read the gap from the store.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let Some(caught_up) = catch_up(position).await else {
                        return;
                    };
                    position = caught_up;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn sse_event(e: &CaseEvent) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.clone())
        .json_data(e)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// A stream fed by a task through a channel (no extra crate for generators).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PeriodQuery {
    /// Start of the period (RFC 3339), inclusive.
    pub from: DateTime<Utc>,
    /// End of the period (RFC 3339), exclusive.
    pub to: DateTime<Utc>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// For analysis: day, week (default) or month.
    pub period: Option<Period>,
    /// For the density map: how many grids (default 50).
    pub top: Option<usize>,
}

/// Figures per department, grid and member for a period, in the caller's
/// jurisdiction; open overdue cases count against the on-time rate.
#[utoipa::path(get, path = "/v1/assessment", tag = "cases", params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, body = assessment::Assessment), (status = 200, description = "CSV", content_type = "text/csv")))]
pub async fn assess(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    if q.to <= q.from {
        return Err(ApiError::bad_request("`to` must be after `from`"));
    }
    let p = &caller.0;
    if !(p.may_somewhere(Action::DispatchCase) || p.may_somewhere(Action::ReadAudit)) {
        return Err(ApiError::forbidden(format!(
            "{} may not read assessments",
            p.name
        )));
    }
    let departments = state.store.departments().await?;
    let snapshot = state.live.snapshot();
    let keep = |key: &str| {
        if let Some(d) = departments.iter().find(|d| d.code == key) {
            return p.may(Action::ReadCases, &d.region_code);
        }
        (snapshot.grid(key).is_some() || key.len() == 15) && p.may(Action::ReadCases, key)
    };
    let a = assessment::assess(state.store.as_ref(), q.from, q.to, Utc::now(), keep).await?;
    if q.format.as_deref() == Some("csv") {
        let mut response = assessment::to_csv(&a).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(a).into_response())
}

async fn period_cases(
    state: &AppState,
    caller: &Caller,
    q: &PeriodQuery,
) -> Result<Vec<CaseRecord>, ApiError> {
    if q.to <= q.from {
        return Err(ApiError::bad_request("`to` must be after `from`"));
    }
    let query = CaseQuery {
        reported_from: Some(q.from),
        reported_to: Some(q.to),
        limit: 1_000_000,
        ..CaseQuery::default()
    };
    let (query, _) = scoped(state, &caller.0, query, None).await?;
    Ok(state.store.cases(&query).await?)
}

/// Counts of cases reported in a period by matter, category, grid and day/week/month.
#[utoipa::path(get, path = "/v1/analysis", tag = "cases", params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, body = assessment::Analysis)))]
pub async fn analysis(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<assessment::Analysis>, ApiError> {
    let cases = period_cases(&state, &caller, &q).await?;
    Ok(Json(assessment::analyse(
        &cases,
        q.period.unwrap_or(Period::Week),
    )))
}

/// The grids with the most cases per 1,000 households in a period, as GeoJSON.
#[utoipa::path(get, path = "/v1/analysis/density", tag = "cases", params(PeriodQuery), security(("bearer" = [])),
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json")))]
pub async fn density(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    let cases = period_cases(&state, &caller, &q).await?;
    let a = assessment::analyse(&cases, Period::Month);
    let snapshot = state.live.snapshot();
    let mut response = Json(assessment::density_geojson(
        &a,
        &snapshot,
        q.top.unwrap_or(50),
    ))
    .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    Ok(response)
}

/// What the event feeder broadcasts to streams: an event and its place in commit order.
pub type SharedEvent = Arc<FedEvent>;

/// A committed event as the feeder found it.
#[derive(Debug)]
pub struct FedEvent {
    pub position: EventCursor,
    pub event: CaseEvent,
}

/// Reads newly committed case events from the store and broadcasts them to the open
/// streams: events of every replica reach every stream, whichever process wrote them,
/// in commit order and each once (an event committed after a higher-numbered one is
/// not skipped: see `DispatchStore::events_committed_after`).
pub async fn feed_events(state: AppState, every: std::time::Duration) {
    let mut position = match state.store.event_feed_start().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read case events; streams get no live events");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if state.case_events.receiver_count() == 0 {
            // Nobody listens: skip the events (reading and decoding thousands a second
            // under load is wasted) but keep up, so a new stream starts from now, as it
            // would have; a stream opened meanwhile catches up from the store itself.
            match state.store.event_feed_start().await {
                Ok(p) => position = position.max(p),
                Err(e) => tracing::warn!(error = %e, "reading case events failed"),
            }
            continue;
        }
        loop {
            match state.store.events_committed_after(position, 1000).await {
                Ok(events) => {
                    let n = events.len();
                    for (at, event) in events {
                        position = at;
                        // No subscribers is not an error.
                        let _ = state.case_events.send(Arc::new(FedEvent {
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
