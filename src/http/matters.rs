//! The matters list (Art. 10) and what routing needs: the public list in force on a
//! date, proposals by departments and their admission by the grid institution,
//! departments with their staff and webhooks, and the working-day calendar.

use super::extract::Caller;
use super::{ApiError, AppState};
use crate::domain::Category;
use crate::domain::DayKind;
use crate::store::{Department, MatterVersion, NewMatter};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/public/matters", get(public_list))
        .route("/v1/matters", get(all_versions).post(propose))
        .route("/v1/matters/versions/{id}/{decision}", post(decide))
        .route("/v1/departments", get(departments))
        .route("/v1/departments/{code}", put(put_department))
        .route("/v1/departments/{code}/staff", post(add_staff))
        .route("/v1/calendar", get(calendar))
        .route("/v1/calendar/{date}", put(put_day).delete(delete_day))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DateQuery {
    /// The list in force on this date (China time; default today).
    pub date: Option<NaiveDate>,
    /// Only what applies in this county: the city's list and the county's own
    /// (default: every list).
    pub county: Option<String>,
}

/// A matter as the public list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicMatter {
    pub code: String,
    pub version: i32,
    pub name: String,
    pub description: String,
    pub category: Category,
    pub time_limit: String,
    /// Whether residents may report it.
    pub public: bool,
    pub valid_from: NaiveDate,
    /// Temporary matters end before this date.
    pub valid_to: Option<NaiveDate>,
    /// The list it is on: the city's code, or the county's whose own list it is
    /// (Art. 10); empty for matters listed before county lists existed (the city's).
    pub region_code: String,
}

/// The public matters list, page-friendly: by category, in code order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicList {
    pub date: NaiveDate,
    pub count: usize,
    pub categories: Vec<CategoryGroup>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryGroup {
    pub category: Category,
    pub matters: Vec<PublicMatter>,
}

/// The matters list in force on a date (Art. 10: published), grouped by category.
#[utoipa::path(get, path = "/v1/public/matters", tag = "matters", params(DateQuery),
    responses((status = 200, body = PublicList)))]
pub async fn public_list(
    State(state): State<AppState>,
    Query(q): Query<DateQuery>,
) -> Result<Json<PublicList>, ApiError> {
    let date = q.date.unwrap_or_else(crate::domain::today_in_china);
    let matters = state.app.matters_on(date, q.county.as_deref()).await?;
    let count = matters.len();
    let mut groups: BTreeMap<Category, Vec<PublicMatter>> = BTreeMap::new();
    for m in matters {
        groups
            .entry(m.matter.category)
            .or_default()
            .push(PublicMatter {
                code: m.matter.code,
                version: m.version,
                name: m.matter.name,
                description: m.matter.description,
                category: m.matter.category,
                time_limit: m.matter.time_limit.to_string(),
                public: m.matter.public,
                valid_from: m.matter.valid_from,
                valid_to: m.matter.valid_to,
                region_code: m.matter.region_code,
            });
    }
    Ok(Json(PublicList {
        date,
        count,
        categories: groups
            .into_iter()
            .map(|(category, matters)| CategoryGroup { category, matters })
            .collect(),
    }))
}

/// Every version of every matter, proposed and refused ones included.
#[utoipa::path(get, path = "/v1/matters", tag = "matters", security(("bearer" = [])),
    responses((status = 200, body = [MatterVersion])))]
pub async fn all_versions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<MatterVersion>>, ApiError> {
    Ok(Json(state.app.matter_versions(&caller.0).await?))
}

/// A department's (or a centre's) proposal: a new matter or a new version of one.
/// It enters the list only when admitted.
#[utoipa::path(post, path = "/v1/matters", tag = "matters", request_body = NewMatter, security(("bearer" = [])),
    responses((status = 201, body = MatterVersion), (status = 403)))]
pub async fn propose(
    State(state): State<AppState>,
    caller: Caller,
    Json(matter): Json<NewMatter>,
) -> Result<(StatusCode, Json<MatterVersion>), ApiError> {
    let stored = state.app.propose_matter(&caller.0, matter).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// Admission (`admit`) or refusal (`refuse`) of a proposed version by the grid
/// institution; an admitted version ends the one before it where it starts.
#[utoipa::path(post, path = "/v1/matters/versions/{id}/{decision}", tag = "matters", params(("id" = i64, Path), ("decision" = String, Path, description = "admit or refuse")), security(("bearer" = [])),
    responses((status = 200, body = MatterVersion), (status = 403), (status = 409)))]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, decision)): Path<(i64, String)>,
) -> Result<Json<MatterVersion>, ApiError> {
    let admit = match decision.as_str() {
        "admit" => true,
        "refuse" => false,
        other => {
            return Err(ApiError::not_found(crate::msg!(
                "no decision {other:?}: admit or refuse",
                "无效的决定 {other:?}：应为 admit（同意）或 refuse（驳回）"
            )));
        }
    };
    Ok(Json(state.app.decide_matter(&caller.0, id, admit).await?))
}

/// Every department.
#[utoipa::path(get, path = "/v1/departments", tag = "matters", security(("bearer" = [])),
    responses((status = 200, body = [Department])))]
pub async fn departments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Department>>, ApiError> {
    Ok(Json(state.app.departments(&caller.0).await?))
}

pub use crate::app::{DepartmentAnswer, DepartmentRequest};

/// Creates or replaces a department (its webhook URL included). Setting or changing
/// the webhook URL makes a new signing secret, answered once.
#[utoipa::path(put, path = "/v1/departments/{code}", tag = "matters", params(("code" = String, Path)), request_body = DepartmentRequest, security(("bearer" = [])),
    responses((status = 200, body = DepartmentAnswer), (status = 403)))]
pub async fn put_department(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Json(req): Json<DepartmentRequest>,
) -> Result<Json<DepartmentAnswer>, ApiError> {
    Ok(Json(state.app.put_department(&caller.0, code, req).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StaffRequest {
    pub user: String,
}

/// Makes a user staff of a department, so as a department handler they act on its cases.
#[utoipa::path(post, path = "/v1/departments/{code}/staff", tag = "matters", params(("code" = String, Path)), request_body = StaffRequest, security(("bearer" = [])),
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn add_staff(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Json(req): Json<StaffRequest>,
) -> Result<StatusCode, ApiError> {
    state.app.add_staff(&caller.0, &code, &req.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A calendar exception.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CalendarDay {
    pub date: NaiveDate,
    pub kind: DayKind,
    #[serde(default)]
    pub note: String,
}

/// Public holidays and make-up working days (weekends are off otherwise).
#[utoipa::path(get, path = "/v1/calendar", tag = "matters",
    responses((status = 200, body = [CalendarDay])))]
pub async fn calendar(State(state): State<AppState>) -> Result<Json<Vec<CalendarDay>>, ApiError> {
    Ok(Json(
        state
            .app
            .calendar()
            .await?
            .into_iter()
            .map(|(date, kind, note)| CalendarDay { date, kind, note })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DayRequest {
    pub kind: DayKind,
    #[serde(default)]
    pub note: String,
}

/// Sets a holiday or make-up working day (deadlines computed afterwards use it).
#[utoipa::path(put, path = "/v1/calendar/{date}", tag = "matters", params(("date" = NaiveDate, Path)), request_body = DayRequest, security(("bearer" = [])),
    responses((status = 204), (status = 403)))]
pub async fn put_day(
    State(state): State<AppState>,
    caller: Caller,
    Path(date): Path<NaiveDate>,
    Json(req): Json<DayRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .set_calendar_day(&caller.0, date, Some(req.kind), &req.note)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a calendar exception.
#[utoipa::path(delete, path = "/v1/calendar/{date}", tag = "matters", params(("date" = NaiveDate, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403)))]
pub async fn delete_day(
    State(state): State<AppState>,
    caller: Caller,
    Path(date): Path<NaiveDate>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .set_calendar_day(&caller.0, date, None, "")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
