//! Residents' reports (Art. 8–9): a public form endpoint and Open311 GeoReport v2
//! (`/open311/v2`), no account needed, rate-limited per client address. Both store the
//! case durably before answering; an `Idempotency-Key` makes a retry return the same
//! case. Open311 clients get the spec's shapes (arrays, `[{code, description}]`
//! errors) rather than problem documents.

use super::cases::{created, idempotency};
use super::extract::ClientAddr;
use super::{ApiError, AppState};
use crate::app::{PublicQuery, PublicRecord};
use crate::domain::{CaseState, TimeLimit};
use crate::store::CaseEvent;
use crate::workflow::dispatch::{Contact, Report};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/public/reports", post(public_report))
        .route("/v1/public/reports/{id}", get(public_status))
        .route("/open311/v2/discovery", get(discovery))
        .route("/open311/v2/discovery.json", get(discovery))
        .route("/open311/v2/discovery.xml", get(discovery))
        .route("/open311/v2/services", get(services))
        .route("/open311/v2/services.json", get(services))
        .route("/open311/v2/services.xml", get(services))
        .route("/open311/v2/services/{code}", get(service))
        .route("/open311/v2/requests", get(requests).post(post_request))
        .route(
            "/open311/v2/requests.json",
            get(requests).post(post_request),
        )
        .route("/open311/v2/requests.xml", get(requests).post(post_request))
        .route("/open311/v2/requests/{id}", get(request))
        // Before the body is read: a flood of large reports costs a map lookup each.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            report_gate,
        ))
}

/// Residents' submissions are counted and refused per client address before their
/// bodies are read.
async fn report_gate(
    State(state): State<AppState>,
    client: ClientAddr,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::POST
        && let Err(e) = from_elsewhere(request.headers(), &state.settings.public_url)
            .and_then(|()| limit(&state, &client))
    {
        return if request.uri().path().starts_with("/open311") {
            from_api(e)
        } else {
            e.into_response()
        };
    }
    next.run(request).await
}

/// Whose an anonymous submission's idempotency key is: its channel and client network,
/// so one resident's key neither collides with nor reveals another's (a replay answers
/// with the report's resident view).
fn anonymous_scope(channel: &str, client: &ClientAddr) -> String {
    format!("{channel}@{}", crate::auth::client_network(client.0))
}

/// Refuses a submission a browser sends from another site's page: a form or `text/plain`
/// post needs no CORS consent, so a hostile page could file reports from each of its
/// visitors' addresses, around the per-address limit. Browsers say where a request
/// comes from (`Sec-Fetch-Site`; older ones only `Origin`); apps and servers send
/// neither and are not affected.
fn from_elsewhere(headers: &HeaderMap, public_url: &str) -> Result<(), ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let authority = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        rest.split('/').next().unwrap_or(rest).to_ascii_lowercase()
    };
    // `Origin` must name this service as the request or `public_url` does.
    let foreign_origin = || {
        text(header::ORIGIN).is_some_and(|origin| {
            let from = authority(origin);
            text(header::HOST).is_none_or(|host| from != host.to_ascii_lowercase())
                && (public_url.is_empty() || from != authority(public_url))
        })
    };
    let cross_site = match text(header::HeaderName::from_static("sec-fetch-site")) {
        Some(site) if site.trim().eq_ignore_ascii_case("cross-site") => true,
        // Another port or subdomain of the same site is another origin too.
        Some(site) if site.trim().eq_ignore_ascii_case("same-site") => foreign_origin(),
        Some(_) => false,
        // Only `Origin` (older browsers).
        None => foreign_origin(),
    };
    if cross_site {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site",
            "Submitted from another site",
            crate::msg!(
                "reports are not accepted from another site's page: file it on this service's own page, or from an app or server (which send no Sec-Fetch-Site)",
                "不接受从其他网站页面提交的反映：请在本服务自己的页面上提交，或通过应用、服务器提交"
            ),
        ));
    }
    Ok(())
}

fn limit(state: &AppState, client: &ClientAddr) -> Result<(), ApiError> {
    state
        .report_limiter
        .check_key(&super::limit_key(client.0))
        .map_err(|not_until| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many reports",
                crate::msg!(
                    "at most {} reports a minute from one address",
                    "每个地址每分钟最多提交 {} 条反映",
                    state.settings.public_reports_per_minute
                ),
            )
            .retry_after(super::wait_time(&not_until))
        })
}

/// What a resident sees of their report.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCase {
    pub id: i64,
    pub state: CaseState,
    /// `open` or `closed` (Open311's two states).
    pub status: &'static str,
    pub matter_code: Option<String>,
    pub grid_code: String,
    pub grid_name: Option<String>,
    /// The matter's name, once the report has one.
    pub matter_name: Option<String>,
    /// The matter's time limit: how long handling may take once it is assigned.
    pub time_limit: Option<TimeLimit>,
    /// When the current step is due, if it has a deadline.
    pub deadline: Option<DateTime<Utc>>,
    pub reported_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest result, feedback or explanation, if any.
    pub status_notes: Option<String>,
}

/// A resident's own view of their report, opened by the report's follow-up key: what
/// everyone sees, plus what they wrote and every step it has taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowedReport {
    #[serde(flatten)]
    pub report: PublicCase,
    pub description: String,
    pub address: Option<String>,
    /// The report's steps, oldest first: each change of state, with the notes residents
    /// may read (results and feedback; internal returns and supervision stay inside).
    pub steps: Vec<PublicStep>,
    /// Only in the answer to the report itself: with the number, it opens this view
    /// again (`GET /v1/public/reports/{id}?key=…`). Kept nowhere else the resident can
    /// find it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up_key: Option<String>,
}

/// One step of a report as its reporter sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicStep {
    pub at: DateTime<Utc>,
    /// `reported`, `accept`, `assign`, `handle`, `close`, …
    pub step: String,
    /// The state the step left the report in.
    pub state: CaseState,
    pub note: Option<String>,
}

/// A public report by id, or the same "no public report" for an internal case and for
/// none at all.
async fn public_case_by_id(state: &AppState, id: i64) -> Result<PublicRecord, ApiError> {
    state.app.public_report(id).await?.ok_or_else(|| {
        ApiError::not_found(crate::msg!("no public report {id}", "没有公开的反映 {id}"))
    })
}

fn status_of(state: CaseState) -> &'static str {
    if state.is_final() { "closed" } else { "open" }
}

fn public_case(state: &AppState, r: &PublicRecord) -> PublicCase {
    let (c, events) = (&r.case, &r.events);
    let snapshot = state.live.snapshot();
    PublicCase {
        id: c.id,
        state: c.state,
        status: status_of(c.state),
        matter_code: c.matter_code.clone(),
        grid_code: c.grid_code.clone(),
        grid_name: snapshot.grid(&c.grid_code).and_then(|g| g.name.clone()),
        matter_name: r.matter_name.clone(),
        time_limit: r.time_limit,
        deadline: c.deadline,
        reported_at: c.reported_at,
        updated_at: c.updated_at,
        status_notes: status_notes(events),
    }
}

/// Whether residents may read an event's note: results and feedback, not internal
/// returns or supervision.
fn public_note(e: &CaseEvent) -> bool {
    matches!(
        e.kind.as_str(),
        "resolve_on_site" | "handle" | "close" | "merge"
    )
}

/// The latest note residents may see.
fn status_notes(events: &[CaseEvent]) -> Option<String> {
    events
        .iter()
        .rev()
        .find(|e| public_note(e))
        .and_then(|e| e.note.clone())
}

/// The reporter's view of a report; `key` is handed back only in the answer to the
/// report itself.
fn followed(state: &AppState, r: &PublicRecord, key: Option<String>) -> FollowedReport {
    FollowedReport {
        report: public_case(state, r),
        description: r.case.description.clone(),
        address: r.case.address.clone(),
        steps: r
            .events
            .iter()
            .filter(|e| e.from_state != Some(e.to_state))
            .map(|e| PublicStep {
                at: e.at,
                step: e.kind.clone(),
                state: e.to_state,
                note: e.note.clone().filter(|_| public_note(e)),
            })
            .collect(),
        follow_up_key: key,
    }
}

/// Whether `given` is the report's key, read as people type it: any case, with spaces
/// or dashes, O for 0 and I or L for 1 (Crockford's rules). Compared in constant time.
fn opens(stored: Option<&str>, given: &str) -> bool {
    // Room for a key written with separators, and no more.
    if given.len() > 32 {
        return false;
    }
    let typed: Vec<u8> = given
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'-'))
        .map(|b| match b.to_ascii_uppercase() {
            b'O' => b'0',
            b'I' | b'L' => b'1',
            other => other,
        })
        .collect();
    let Some(stored) = stored else { return false };
    stored.len() == typed.len()
        && stored
            .bytes()
            .zip(typed)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A resident's report from the public form: a matter of the public list, a place and
/// a description; contact optional (personal data, masked for most staff). With
/// `grid`, the report is refused (409 `grid-mismatch`) if the point lies in another
/// grid. The answer carries the report's follow-up key, once.
#[utoipa::path(post, path = "/v1/public/reports", tag = "public", request_body = Report,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = FollowedReport), (status = 409, description = "the point lies in another grid than `grid`"), (status = 422), (status = 429)))]
pub async fn public_report(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Json(report): Json<Report>,
) -> Result<Response, ApiError> {
    let key = idempotency(&headers, &anonymous_scope("public", &client), &report)?;
    let (case, fresh) = state
        .app
        .report_publicly(&report, false, key.as_ref())
        .await?;
    let record = public_case_by_id(&state, case.id).await?;
    // A replay does not hand the key out again: whoever holds the Idempotency-Key and
    // the body is not necessarily the resident who sent them.
    let key = record.case.follow_up_key.clone().filter(|_| fresh);
    let body = followed(&state, &record, key);
    Ok(private(created(
        format!("/v1/public/reports/{}", case.id),
        fresh,
        body,
    )))
}

/// Opens a report's whole view.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FollowUpQuery {
    /// The follow-up key from the answer to the report (8 characters). The
    /// `Follow-Up-Key` header does the same and stays out of access logs.
    pub key: Option<String>,
}

/// An answer no cache may keep (it carries or opens a follow-up key).
fn private(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The status of a report by its number: what Open311 shows everyone; with the report's
/// follow-up key, also its description and every step (a wrong key is answered as a
/// missing report).
#[utoipa::path(get, path = "/v1/public/reports/{id}", tag = "public",
    params(("id" = i64, Path), FollowUpQuery, ("Follow-Up-Key" = Option<String>, Header)),
    responses((status = 200, body = FollowedReport, description = "with `key`; without, the fields of PublicCase only"), (status = 404), (status = 429)))]
pub async fn public_status(
    State(state): State<AppState>,
    client: ClientAddr,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(q): Query<FollowUpQuery>,
) -> Result<Response, ApiError> {
    super::public::limit(&state, &client)?;
    let record = public_case_by_id(&state, id).await?;
    let header_key = headers
        .get("follow-up-key")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    match header_key.or(q.key).as_deref() {
        None => Ok(Json(public_case(&state, &record)).into_response()),
        Some(key) if opens(record.case.follow_up_key.as_deref(), key) => Ok(private(
            Json(followed(&state, &record, None)).into_response(),
        )),
        Some(_) => Err(ApiError::not_found(crate::msg!(
            "no public report {id} with that follow-up key",
            "没有编号为 {id} 且查询码相符的公开反映"
        ))),
    }
}

// ---- Open311 GeoReport v2 ----

/// A whole number; one too large for 64 bits counts as the largest there is.
fn saturating(value: Option<&str>, name: &str, default: i64) -> Result<i64, ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    match v.parse::<i64>() {
        Ok(n) => Ok(n),
        Err(_) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(i64::MAX),
        Err(_) => Err(ApiError::bad_request(crate::msg!(
            "{name} {} is not a whole number",
            "{name} {} 不是整数",
            crate::io::upload::quote(v)
        ))),
    }
}

/// Ids one `GET /requests` may ask for (after removing repeats).
const MAX_REQUEST_IDS: usize = 100;

/// An Open311 error answer: `[{"code": 400, "description": "…"}]`.
fn open311_error(status: StatusCode, description: &crate::domain::Msg) -> Response {
    let lang = super::lang::current();
    let mut response = (
        status,
        Json(json!([{"code": status.as_u16(), "description": description.get(lang)}])),
    )
        .into_response();
    super::lang::mark_language(response.headers_mut(), lang);
    response
}

fn from_api(e: ApiError) -> Response {
    let retry_after = e.retry_after;
    let mut response = open311_error(e.status, &e.detail);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    response
}

/// Service discovery. Every Open311 resource also answers at `NAME.json` and, as XML,
/// at `NAME.xml`; errors are `[{code, description}]` (`<errors><error>` in XML).
#[utoipa::path(get, path = "/open311/v2/discovery", tag = "open311", operation_id = "open311_discovery",
    responses((status = 200, description = "Open311 discovery document")))]
pub async fn discovery(origin: super::extract::Origin) -> impl IntoResponse {
    // The endpoint's address is built on the request's host (unless `public_url` is set).
    let vary = [(header::VARY, "Host")];
    (
        vary,
        Json(json!({
            "changeset": "2026-11-27T00:00:00Z",
            "contact": "the grid service management institution",
            "key_service": "no API key is needed; submissions are rate-limited per address",
            "endpoints": [{
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": format!("{}/open311/v2", origin.0),
                "changeset": "2026-11-27T00:00:00Z",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }],
        })),
    )
}

/// The public matters as Open311 services.
#[utoipa::path(get, path = "/open311/v2/services", tag = "open311", operation_id = "open311_services",
    responses((status = 200, description = "array of services")))]
pub async fn services(State(state): State<AppState>) -> Response {
    let today = crate::domain::today_in_china();
    match state.app.matters_on(today, None).await {
        Ok(matters) => Json(
            matters
                .into_iter()
                .filter(|m| m.matter.public)
                .map(|m| {
                    json!({
                        "service_code": m.matter.code,
                        "service_name": m.matter.name,
                        "description": m.matter.description,
                        "metadata": false,
                        "type": "realtime",
                        "keywords": m.matter.category.as_str(),
                        "group": m.matter.category.as_str(),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => from_api(e.into()),
    }
}

/// One service's definition (no extra attributes: `metadata` is false for all).
#[utoipa::path(get, path = "/open311/v2/services/{code}", tag = "open311", operation_id = "open311_service", params(("code" = String, Path, description = "service code, optionally with .json or .xml")),
    responses((status = 200, description = "service definition"), (status = 404)))]
pub async fn service(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let code = without_format(&code).to_string();
    let today = crate::domain::today_in_china();
    match state.app.matter_in_force(&code, today).await {
        Ok(m) if m.matter.public => {
            Json(json!({"service_code": m.matter.code, "attributes": []})).into_response()
        }
        _ => open311_error(
            StatusCode::NOT_FOUND,
            &crate::msg!("no public service {code:?}", "没有公开服务 {code:?}"),
        ),
    }
}

/// The fields of an Open311 POST (form-encoded or JSON).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Open311Post {
    pub service_code: Option<String>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    /// Extension: the coordinates' system (wgs84 by default).
    pub coord_sys: Option<String>,
    pub address_string: Option<String>,
    pub description: Option<String>,
    pub media_url: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub api_key: Option<String>,
    pub jurisdiction_id: Option<String>,
    pub device_id: Option<String>,
    pub account_id: Option<String>,
}

/// Creates a service request (`realtime`: the id comes back at once).
#[utoipa::path(post, path = "/open311/v2/requests", tag = "open311", operation_id = "open311_create_request",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "service_code, lat, long, description, media_url, email, first_name, last_name, phone, address_string (JSON also accepted)"),
    responses((status = 201, description = "[{service_request_id, service_notice}]"), (status = 400), (status = 429)))]
pub async fn post_request(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded")
        .chars()
        .take(100)
        .collect::<String>()
        .to_ascii_lowercase();
    let is_json = content_type.starts_with("application/json");
    // GeoReport v2 posts a form; JSON is taken too. Anything else (text/plain, which a
    // browser sends cross-site without asking) is refused.
    if !is_json && !content_type.starts_with("application/x-www-form-urlencoded") {
        return open311_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &crate::msg!(
                "send the request as application/x-www-form-urlencoded (or application/json), not {content_type:?}",
                "请以 application/x-www-form-urlencoded（或 application/json）提交，而不是 {content_type:?}"
            ),
        );
    }
    let form: Result<Open311Post, String> = if is_json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    let form = match form {
        Ok(f) => f,
        Err(e) => {
            return open311_error(
                StatusCode::BAD_REQUEST,
                &crate::msg!("unreadable request: {e}", "请求无法读取：{e}"),
            );
        }
    };
    let (Some(code), Some(lat), Some(lon)) = (form.service_code.clone(), form.lat, form.long)
    else {
        return open311_error(
            StatusCode::BAD_REQUEST,
            &crate::msg!(
                "service_code, lat and long are required",
                "service_code、lat 和 long 为必填项"
            ),
        );
    };
    let name = match (&form.last_name, &form.first_name) {
        (None, None) => None,
        (l, f) => Some(format!(
            "{}{}",
            l.clone().unwrap_or_default(),
            f.clone().unwrap_or_default()
        )),
    };
    let report = Report {
        lon,
        lat,
        coord_sys: form.coord_sys.clone(),
        matter: Some(code),
        description: form.description.clone().unwrap_or_default(),
        photos: form.media_url.iter().cloned().collect(),
        address: form.address_string.clone(),
        contact: Contact {
            name,
            phone: form.phone.clone(),
            email: form.email.clone(),
        },
        grid: None,
    };
    // Keys of Open311 clients and of the public form are apart: one kind of client's
    // key cannot replay the other's reports.
    let key = match idempotency(&headers, &anonymous_scope("open311", &client), &report) {
        Ok(k) => k,
        Err(e) => return from_api(e),
    };
    match state.app.report_publicly(&report, true, key.as_ref()).await {
        Ok((case, _)) => (
            StatusCode::CREATED,
            Json(json!([{
                "service_request_id": case.id.to_string(),
                "service_notice": format!("filed for grid {}", case.grid_code),
                "account_id": Value::Null,
            }])),
        )
            .into_response(),
        Err(e) => from_api(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RequestsQuery {
    /// Comma-separated ids (other filters are then ignored, as the spec says).
    pub service_request_id: Option<String>,
    /// One service code, or several separated by commas.
    pub service_code: Option<String>,
    /// ISO 8601: a date-time (`2026-12-01T08:00:00Z`, or China time without an offset)
    /// or a date (from its first moment, China time).
    pub start_date: Option<String>,
    /// As `start_date`; a date reaches to its last moment.
    pub end_date: Option<String>,
    /// `open` or `closed`; comma-separated for both.
    pub status: Option<String>,
    /// Paging extension: 1-based page of `page_size` (default 1000). Numbers beyond
    /// range saturate.
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// An id or code without the format suffix of its path (`7.xml`, `WG-001.json`).
fn without_format(segment: &str) -> &str {
    segment
        .strip_suffix(".json")
        .or_else(|| segment.strip_suffix(".xml"))
        .unwrap_or(segment)
}

/// An Open311 date parameter: RFC 3339, a date-time without an offset (China time),
/// or a date (its first moment, or with `end` its last).
fn open311_instant(s: &str, name: &str, end: bool) -> Result<DateTime<Utc>, ApiError> {
    use chrono::TimeZone;
    let china = crate::domain::china();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| {
                    if end {
                        d.succ_opt()?.and_hms_opt(0, 0, 0)
                    } else {
                        d.and_hms_opt(0, 0, 0)
                    }
                })
        });
    local
        .and_then(|t| china.from_local_datetime(&t).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(crate::msg!("{name} {}: use an ISO 8601 date (2026-12-01) or date-time (2026-12-01T08:00:00+08:00)", "{name} {}：请用 ISO 8601 日期（2026-12-01）或日期时间（2026-12-01T08:00:00+08:00）",
                crate::io::upload::quote(s)
            ))
        })
}

/// Degrees rounded to 3 decimals: about 100 m, the grid rather than the doorstep.
fn coarse(degrees: f64) -> f64 {
    (degrees * 1000.0).round() / 1000.0
}

/// A report as an Open311 service request. Without `details` (the default; see
/// `open311_publish_details`) what the resident wrote, their address, photos and exact
/// place stay out: the listing is public, and the report's own follow-up key opens them.
fn as_request(record: &PublicRecord, with_notes: bool, details: bool) -> Value {
    let (c, events, matter_name) = (&record.case, &record.events, &record.matter_name);
    let shown = |v: Value| if details { v } else { Value::Null };
    let place = |d: f64| if details { d } else { coarse(d) };
    let mut r = json!({
        "service_request_id": c.id.to_string(),
        "status": status_of(c.state),
        "status_notes": status_notes(events),
        "service_name": matter_name,
        "service_code": c.matter_code,
        "description": shown(json!(c.description)),
        "agency_responsible": c.department_code,
        "service_notice": Value::Null,
        "requested_datetime": c.reported_at,
        "updated_datetime": c.updated_at,
        // When the request is expected to be fulfilled: the department's deadline. A new
        // report's deadline is the centre's for accepting it, which is not that.
        "expected_datetime": c.deadline.filter(|_| c.state.with_department()),
        "address": shown(json!(c.address)),
        "address_id": Value::Null,
        "zipcode": Value::Null,
        "lat": place(c.lat),
        "long": place(c.lon),
        "media_url": shown(json!(c.photos.first())),
        "wangge_state": c.state,
        "grid_code": c.grid_code,
    });
    if with_notes {
        let notes: Vec<Value> = events
            .iter()
            // The steps the reporter's own view shows: changes of state (supervision,
            // due and overdue notices stay inside).
            .filter(|e| e.from_state != Some(e.to_state))
            .map(|e| {
                json!({
                    "datetime": e.at,
                    "summary": e.kind,
                    "description": if public_note(e) { e.note.clone() } else { None },
                    "type": if e.kind == "reported" { "opened" } else if e.to_state.is_final() { "closed" } else { "follow_on" },
                    "status": status_of(e.to_state),
                })
            })
            .collect();
        r["notes"] = json!(notes);
    }
    r
}

/// Service requests (public information only; personal data never leaves here).
#[utoipa::path(get, path = "/open311/v2/requests", tag = "open311", operation_id = "open311_requests", params(RequestsQuery),
    responses((status = 200, description = "array of requests")))]
pub async fn requests(
    State(state): State<AppState>,
    client: ClientAddr,
    Query(q): Query<RequestsQuery>,
) -> Response {
    if let Err(e) = super::public::limit(&state, &client) {
        return from_api(e);
    }
    let result: Result<Vec<Value>, ApiError> = async {
        let mut cases = Vec::new();
        if let Some(ids) = &q.service_request_id {
            let mut wanted: Vec<i64> = Vec::new();
            for id in ids.split(',').filter(|s| !s.trim().is_empty()) {
                let id: i64 = id.trim().parse().map_err(|_| {
                    ApiError::bad_request(crate::msg!(
                        "service_request_id {} is not a number",
                        "service_request_id {} 不是数字",
                        crate::io::upload::quote(id)
                    ))
                })?;
                if !wanted.contains(&id) {
                    wanted.push(id);
                }
                if wanted.len() > MAX_REQUEST_IDS {
                    return Err(ApiError::bad_request(crate::msg!(
                        "at most {MAX_REQUEST_IDS} service_request_id values at once",
                        "一次最多 {MAX_REQUEST_IDS} 个 service_request_id"
                    )));
                }
            }
            for id in wanted {
                match public_case_by_id(&state, id).await {
                    Ok(r) => cases.push(r),
                    Err(e) if e.status == StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
        } else {
            let now = crate::domain::now();
            let end = match q.end_date.as_deref() {
                Some(s) => open311_instant(s, "end_date", true)?,
                None => now,
            };
            let start = match q.start_date.as_deref() {
                Some(s) => open311_instant(s, "start_date", false)?,
                None => end - chrono::Duration::days(90),
            };
            if start > end {
                return Err(ApiError::bad_request(crate::msg!(
                    "start_date is after end_date",
                    "start_date 晚于 end_date"
                )));
            }
            let codes: Vec<String> = q
                .service_code
                .as_deref()
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let page_size = saturating(q.page_size.as_deref(), "page_size", 1000)?.clamp(1, 1000);
            let page = saturating(q.page.as_deref(), "page", 1)?.max(1);
            let skip = usize::try_from((page - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
            let wanted: Vec<&str> = q
                .status
                .as_deref()
                .map(|s| s.split(',').map(str::trim).collect())
                .unwrap_or_default();
            if let Some(bad) = wanted.iter().find(|s| !matches!(**s, "open" | "closed")) {
                return Err(ApiError::bad_request(crate::msg!(
                    "status {}: open, closed or both (open,closed)",
                    "状态 {}：应为 open、closed 或两者（open,closed）",
                    crate::io::upload::quote(bad)
                )));
            }
            cases = state
                .app
                .public_reports(
                    PublicQuery {
                        from: start,
                        to: end,
                        // One code is filtered by the store; several here.
                        matter: match codes.as_slice() {
                            [one] => Some(one.clone()),
                            _ => None,
                        },
                    },
                    |c| {
                        (wanted.is_empty() || wanted.contains(&status_of(c.state)))
                            && (codes.len() < 2
                                || c.matter_code.as_ref().is_some_and(|m| codes.contains(m)))
                    },
                    skip,
                    page_size as usize,
                )
                .await?;
        }
        let details = state.settings.open311_publish_details;
        Ok(cases
            .iter()
            .map(|r| as_request(r, false, details))
            .collect())
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => from_api(e),
    }
}

/// One service request with its `notes` (history extension).
#[utoipa::path(get, path = "/open311/v2/requests/{id}", tag = "open311", operation_id = "open311_request", params(("id" = String, Path, description = "service request id, optionally with .json or .xml")),
    responses((status = 200, description = "array of one request"), (status = 404)))]
pub async fn request(
    State(state): State<AppState>,
    client: ClientAddr,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = super::public::limit(&state, &client) {
        return from_api(e);
    }
    let Ok(id) = without_format(&id).parse::<i64>() else {
        return open311_error(
            StatusCode::NOT_FOUND,
            &crate::msg!("no service request {id:?}", "没有服务请求 {id:?}"),
        );
    };
    let result = async {
        let r = public_case_by_id(&state, id).await?;
        Ok::<_, ApiError>(as_request(&r, true, state.settings.open311_publish_details))
    }
    .await;
    match result {
        Ok(v) => Json(json!([v])).into_response(),
        Err(e) => from_api(e),
    }
}
