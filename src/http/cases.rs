//! Cases over HTTP: intake by grid members and dispatchers (and residents, in
//! `public_reports`), lists per jurisdiction, department and centre, a case with its
//! timeline and the steps the caller may take, the steps themselves (`If-Match` names
//! the version read), a Server-Sent Events stream per user, assessment and analysis.

use super::extract::Caller;
use super::{ApiError, AppState};
use crate::app::{AppError, CentreList, ListRequest, StreamStart};
use crate::auth::AuthError;
use crate::domain::CaseState;
use crate::store::{CaseEvent, CaseRecord, EventCursor, IdempotencyKey};
use crate::workflow::assessment::{self, Period};
use crate::workflow::dispatch::{Command, Report};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/cases", get(list).post(create))
        .route(
            "/v1/cases/stream",
            get(stream).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::stream_tickets::ticket_to_bearer,
            )),
        )
        .route("/v1/cases/stream-ticket", post(stream_ticket))
        .route("/v1/cases/{id}", get(show))
        .route("/v1/cases/{id}/events", get(events))
        .route("/v1/cases/{id}/actions", post(act))
        .route("/v1/centres/{code}/overdue", get(overdue))
        .route("/v1/centres/{code}/due-soon", get(due_soon))
        .route("/v1/assessment", get(assess))
        .route("/v1/analysis", get(analysis))
        .route("/v1/analysis/density", get(density))
}

pub use crate::app::CaseView;

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
            ApiError::bad_request(crate::msg!(
                "Idempotency-Key must be 8 to 200 visible ASCII characters",
                "Idempotency-Key 须为 8 到 200 个可见 ASCII 字符"
            ))
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
#[utoipa::path(post, path = "/v1/cases", tag = "cases", operation_id = "create_case", request_body = Report, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried submission return the same case")),
    responses((status = 201, body = CaseView), (status = 403), (status = 422, description = "no grid there, unknown matter")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(report): Json<Report>,
) -> Result<Response, ApiError> {
    let key = idempotency(&headers, &format!("user:{}", caller.0.name), &report)?;
    let (view, fresh) = state
        .app
        .report_case(&caller.0, &report, key.as_ref())
        .await?;
    Ok(created(format!("/v1/cases/{}", view.case.id), fresh, view))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Comma-separated states.
    pub state: Option<String>,
    /// Cases located under this region or grid code.
    pub under: Option<String>,
    pub matter: Option<String>,
    pub department: Option<String>,
    /// Only cases whose deadline has passed: new reports not accepted in time and
    /// assigned cases not handled in time.
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
                .map_err(|e| ApiError::bad_request(e).with("parameter", json!("state")))
        })
        .collect()
}

/// Cases the caller may read, oldest first (page with `after_id`).
#[utoipa::path(get, path = "/v1/cases", tag = "cases", operation_id = "list_cases", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = [CaseView])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    let request = ListRequest {
        states: q
            .state
            .as_deref()
            .map(parse_states)
            .transpose()?
            .unwrap_or_default(),
        under: q.under,
        matter: q.matter,
        department: q.department,
        overdue: q.overdue == Some(true),
        after_id: q.after_id,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(state.app.cases(&caller.0, request).await?))
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
    code: String,
    q: CentreQuery,
    before: DateTime<Utc>,
    not_before: Option<DateTime<Utc>>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    let request = CentreList {
        centre: code,
        department: q.department,
        before,
        not_before,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(state.app.centre_cases(&caller.0, request).await?))
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
    centre_list(&state, &caller, code, q, crate::domain::now(), None).await
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
    let now = crate::domain::now();
    let soon = now + Duration::hours(i64::from(state.settings.due_soon_hours));
    centre_list(&state, &caller, code, q, soon, Some(now)).await
}

/// One case, with the reporter's contact (unmasked only for roles that need it; such
/// reads are audited) and the steps the caller may take.
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases", operation_id = "show_case", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = CaseView), (status = 404, description = "no such case, or none the caller may read")))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let view = state.app.case(&caller.0, id).await?;
    let version = view.case.version;
    Ok(with_etag(Json(view).into_response(), version))
}

/// A case's timeline, oldest first.
#[utoipa::path(get, path = "/v1/cases/{id}/events", tag = "cases", operation_id = "case_events", params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = [CaseEvent])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<CaseEvent>>, ApiError> {
    Ok(Json(state.app.case_events(&caller.0, id).await?))
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
            ApiError::bad_request(crate::msg!(
                "If-Match must be the case's version (its ETag)",
                "If-Match 须为案件的版本（其 ETag）"
            ))
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
    let view = state.app.act(&caller.0, id, &command, expected).await?;
    let version = view.case.version;
    Ok(with_etag(Json(view).into_response(), version))
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
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(q.after);
    // Subscribe before finding the start, so nothing falls between the two.
    let mut live = state.case_events.subscribe();
    let mut reader = state.app.open_stream(&caller.0, resume).await?;
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
                crate::msg!(
                    "{} already has {} event streams open; close one first",
                    "{} 已打开 {} 个事件流；请先关闭一个",
                    caller.0.name,
                    state.settings.max_streams_per_account
                ),
            )
            .retry_after(std::time::Duration::from_secs(5))
        })?;
    // Events are delivered in commit order (the feeder's order too); a position is the
    // place in that order, so an event is sent exactly when it lies past the last one
    // sent, whichever path brought it.
    let mut position = reader.position;
    let app = state.app.clone();
    let events = async_stream(move |tx| async move {
        // The stream counts against the account until this task ends.
        let _slot = slot;
        let send = |e: Option<CaseEvent>| {
            let tx = &tx;
            async move {
                match e {
                    Some(e) => tx.send(sse_event(&e)).await.is_ok(),
                    None => true,
                }
            }
        };
        // Catch up from the store: resumed streams read what they missed, and events
        // the feeder broadcast before this stream subscribed are read here.
        let catch_up = |reader: StreamStart, mut position: EventCursor| {
            let app = app.clone();
            let send = &send;
            async move {
                loop {
                    let Ok(page) = app.stream_page(&reader, position, 500).await else {
                        return None;
                    };
                    let n = page.len();
                    for (at, e) in page {
                        position = at;
                        if !send(e).await {
                            return None;
                        }
                    }
                    if n < 500 {
                        return Some(position);
                    }
                }
            }
        };
        let Some(caught_up) = catch_up(reader.clone(), position).await else {
            return;
        };
        position = caught_up;
        // A logged-out, revoked or expired token ends its streams within the token
        // cache's lifetime, as it ends every other request; a revoked grant or a
        // dismissal from a department narrows what the stream shows as soon.
        let mut recheck = tokio::time::interval(super::extract::TOKEN_CACHE_TTL);
        recheck.tick().await;
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                // The client went away: stop waiting for events it will never read.
                _ = tx.closed() => return,
                _ = recheck.tick() => {
                    match app.reread_reader(&token, &reader).await {
                        Ok(fresh) => reader = fresh,
                        Err(AppError::Auth(AuthError::Store(_)) | AppError::Store(_)) => {}
                        Err(_) => return,
                    }
                    continue;
                }
            };
            match received {
                Ok(fed) if fed.position > position => {
                    position = fed.position;
                    if !send(reader.see(&fed.event)).await {
                        return;
                    }
                }
                Ok(_) => {}
                // Fell behind: read the gap from the store.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let Some(caught_up) = catch_up(reader.clone(), position).await else {
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

/// A ticket for one event stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicket {
    /// Opens `GET /v1/cases/stream?ticket=…` once, within `expires_in` seconds.
    pub ticket: String,
    pub expires_in: u64,
    /// The stream's URL with the ticket.
    pub stream: String,
}

/// A ticket that opens one event stream without an `Authorization` header (which a
/// browser's `EventSource` cannot send): for whoever may read cases, standing for the
/// caller's token.
#[utoipa::path(post, path = "/v1/cases/stream-ticket", tag = "cases", security(("bearer" = [])),
    responses((status = 201, body = StreamTicket), (status = 401), (status = 403, description = "may read no cases"), (status = 429, description = "too many tickets waiting")))]
pub async fn stream_ticket(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<StreamTicket>), ApiError> {
    state.app.may_stream(&caller.0).await?;
    let token = super::extract::bearer(&headers).unwrap_or_default();
    let ticket = state
        .stream_tickets
        .issue(token, &caller.0.name, std::time::Instant::now())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many stream tickets",
                crate::msg!(
                    "too many stream tickets are waiting to be used; try again in a minute",
                    "等待使用的事件流票据过多；请一分钟后再试"
                ),
            )
            .retry_after(super::stream_tickets::TICKET_TTL)
        })?;
    Ok((
        StatusCode::CREATED,
        Json(StreamTicket {
            stream: format!("/v1/cases/stream?ticket={ticket}"),
            ticket,
            expires_in: super::stream_tickets::TICKET_TTL.as_secs(),
        }),
    ))
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
    /// With `format=csv`: `zh` or `en` for a CSV for people (column names in that
    /// language, names beside codes, a BOM for Excel); none: stable English names for
    /// programs.
    pub lang: Option<String>,
    /// For analysis: day, week (default) or month.
    #[param(inline)]
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
    let mut a = state.app.assessment(&caller.0, q.from, q.to).await?;
    let departments = state.app.departments(&caller.0).await?;
    let snapshot = state.live.snapshot();
    a.name(|kind, key| match kind {
        "department" => departments
            .iter()
            .find(|d| d.code == key)
            .map(|d| d.name.clone()),
        _ => snapshot.grid(key).and_then(|g| g.name.clone()),
    });
    if let Some(other) = q
        .format
        .as_deref()
        .filter(|f| !matches!(*f, "csv" | "json"))
    {
        return Err(ApiError::bad_request(crate::msg!(
            "format {} is not json or csv",
            "格式 {} 不是 json 或 csv",
            crate::io::upload::quote(other)
        ))
        .with("parameter", json!("format")));
    }
    if q.format.as_deref() == Some("csv") {
        let language = match q.lang.as_deref() {
            None => None,
            Some("zh") => Some(assessment::CsvLanguage::Chinese),
            Some("en") => Some(assessment::CsvLanguage::English),
            Some(other) => {
                return Err(ApiError::bad_request(crate::msg!(
                    "lang {} is not zh or en",
                    "语言 {} 不是 zh 或 en",
                    crate::io::upload::quote(other)
                ))
                .with("parameter", json!("lang")));
            }
        };
        let text = match language {
            None => assessment::to_csv(&a),
            Some(language) => assessment::to_csv_for_people(&a, language),
        };
        let mut response = text.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"assessment-{}-{}.csv\"",
            crate::domain::date_in_china(q.from),
            crate::domain::date_in_china(q.to)
        )) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(response);
    }
    Ok(Json(a).into_response())
}

async fn period_cases(
    state: &AppState,
    caller: &Caller,
    q: &PeriodQuery,
) -> Result<Vec<CaseRecord>, ApiError> {
    Ok(state.app.cases_reported(&caller.0, q.from, q.to).await?)
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

/// Reads newly committed case events and broadcasts them to the open streams (see
/// [`crate::app::App::feed_events`]).
pub async fn feed_events(state: AppState, every: std::time::Duration) {
    state
        .app
        .feed_events(state.case_events.clone(), every)
        .await;
}
