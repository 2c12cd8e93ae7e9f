//! The matters list (Art. 10) and what routing needs: the public list in force on a
//! date, proposals by departments and their admission by the grid institution,
//! departments with their staff and webhooks, and the working-day calendar.

use super::access::record;
use super::extract::Caller;
use super::{ApiError, AppState};
use crate::auth::Action;
use crate::domain::DayKind;
use crate::domain::{Category, Level, RegionCode};
use crate::store::{Department, MatterVersion, NewMatter};
use crate::workflow::dispatch;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
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
    let matters = dispatch::matters_on(state.store.as_ref(), date).await?;
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
    if !caller.0.may_somewhere(Action::ReadCases) {
        return Err(ApiError::forbidden(format!(
            "{} may not read the matters list's versions",
            caller.0.name
        )));
    }
    Ok(Json(state.store.matter_versions(None).await?))
}

/// A department's (or a centre's) proposal: a new matter or a new version of one.
/// It enters the list only when admitted.
#[utoipa::path(post, path = "/v1/matters", tag = "matters", request_body = NewMatter, security(("bearer" = [])),
    responses((status = 201, body = MatterVersion), (status = 403)))]
pub async fn propose(
    State(state): State<AppState>,
    caller: Caller,
    Json(mut matter): Json<NewMatter>,
) -> Result<(StatusCode, Json<MatterVersion>), ApiError> {
    if !caller.0.may_somewhere(Action::ProposeMatter) {
        return Err(ApiError::forbidden(format!(
            "{} may not propose matters",
            caller.0.name
        )));
    }
    if matter.code.trim().is_empty() || matter.name.trim().is_empty() {
        return Err(ApiError::bad_request("a matter needs a code and a name"));
    }
    if matter.time_limit.amount == 0 {
        return Err(ApiError::bad_request("a time limit is at least 1"));
    }
    if matter.valid_to.is_some_and(|end| end <= matter.valid_from) {
        return Err(ApiError::bad_request("valid_to must be after valid_from"));
    }
    matter.proposed_by = caller.0.name.clone();
    let stored = state.store.propose_matter(&matter).await?;
    record(
        &state,
        &caller.0.name,
        "matter_propose",
        format!("matters/{}", stored.id),
        &super::access::city_scope(&state),
        json!({"code": stored.matter.code, "version": stored.version}),
    )
    .await?;
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
            return Err(ApiError::not_found(format!(
                "no decision {other:?}: admit or refuse"
            )));
        }
    };
    // The matters list is the city's (Art. 10): admitted by those who manage matters
    // for the whole city, and never by the one who proposed the version.
    let city = super::access::city_scope(&state);
    caller.require(Action::ManageMatters, &city)?;
    let proposal = state.store.matter_version(id).await?;
    if state.settings.four_eyes && proposal.matter.proposed_by == caller.0.name {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "four-eyes",
            "A second person must decide",
            format!(
                "{} proposed matter version {id}; another person must admit or refuse it \
                 (four-eyes rule)",
                caller.0.name
            ),
        ));
    }
    let decided = state
        .store
        .decide_matter(id, admit, &caller.0.name, Utc::now())
        .await?;
    state.matters.invalidate();
    record(
        &state,
        &caller.0.name,
        if admit {
            "matter_admit"
        } else {
            "matter_refuse"
        },
        format!("matters/{id}"),
        &city,
        json!({"code": decided.matter.code, "version": decided.version}),
    )
    .await?;
    Ok(Json(decided))
}

/// Every department.
#[utoipa::path(get, path = "/v1/departments", tag = "matters", security(("bearer" = [])),
    responses((status = 200, body = [Department])))]
pub async fn departments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Department>>, ApiError> {
    let mut all = state.store.departments().await?;
    // Where a department's notices go is for those who manage it.
    for d in &mut all {
        if !caller.0.may(Action::ManageMatters, &d.region_code) {
            d.webhook_url = None;
        }
    }
    Ok(Json(all))
}

/// A department as written: the department, and whether to replace its webhook secret.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DepartmentRequest {
    #[serde(flatten)]
    pub department: Department,
    /// Make a new signing secret even though the webhook URL is unchanged (the old one
    /// stops working at once).
    #[serde(default)]
    pub rotate_webhook_secret: bool,
}

/// A department as stored, with its new signing secret when one was just made.
#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentAnswer {
    #[serde(flatten)]
    pub department: Department,
    /// The key deliveries are signed with (`X-Wangge-Signature`): shown this once, when
    /// a webhook URL is first set or changed, or on `rotate_webhook_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

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
    let mut d = req.department;
    // Authorised against what is stored, not only against what the request claims: a
    // department is changed by those who manage the region it serves now, and only the
    // city moves one to another county.
    let stored = state
        .store
        .departments()
        .await?
        .into_iter()
        .find(|x| x.code == code);
    caller.require(Action::ManageMatters, &d.region_code)?;
    if let Some(old) = &stored {
        caller.require(Action::ManageMatters, &old.region_code)?;
        let at = |c: &str, level: Level| c.parse::<RegionCode>().ok().and_then(|c| c.at(level));
        if at(&old.region_code, Level::County) != at(&d.region_code, Level::County) {
            let city = at(&old.region_code, Level::City)
                .map(|c| c.as_str().to_string())
                .unwrap_or_default();
            caller.require(Action::ManageMatters, &city)?;
        }
    }
    d.code = code;
    dispatch::check_department(&d, stored.is_none())?;
    if let Some(url) = &d.webhook_url {
        let policy = crate::workflow::webhooks::WebhookPolicy::from_settings(&state.settings);
        match policy.normalise(url).await {
            Ok(normal) => d.webhook_url = Some(normal),
            Err(why) => {
                return Err(ApiError::bad_request(why).with("parameter", json!("webhook_url")));
            }
        }
    }
    state.store.upsert_department(&d).await?;
    let url_changed =
        stored.as_ref().and_then(|o| o.webhook_url.as_ref()) != d.webhook_url.as_ref();
    let webhook_secret = match &d.webhook_url {
        None => {
            state.store.set_webhook_secret(&d.code, None).await?;
            None
        }
        Some(_)
            if url_changed
                || req.rotate_webhook_secret
                || !state.store.has_webhook_secret(&d.code).await? =>
        {
            let secret = crate::auth::webhook_secret();
            state
                .store
                .set_webhook_secret(&d.code, Some(&secret))
                .await?;
            Some(secret)
        }
        Some(_) => None,
    };
    // A move: staff who do not belong to the new area stop acting for it (they would
    // read the new area's cases), each audited where the department was; the move is
    // also audited where it goes, so the new area's auditors see it arrive.
    if let Some(old) = stored.as_ref().filter(|o| o.region_code != d.region_code) {
        let mut dismissed = Vec::new();
        for name in state.store.department_staff(&d.code).await? {
            let grants = state
                .store
                .user(&name)
                .await?
                .map(|u| u.grants)
                .unwrap_or_default();
            if !dispatch::fits_department(&grants, &d.region_code) {
                state.store.remove_staff(&name, &d.code).await?;
                record(
                    &state,
                    &caller.0.name,
                    "staff_remove",
                    format!("departments/{}/staff/{name}", d.code),
                    &old.region_code,
                    json!({"reason": "department moved", "region_code": d.region_code}),
                )
                .await?;
                dismissed.push(name);
            }
        }
        record(
            &state,
            &caller.0.name,
            "department_put",
            format!("departments/{}", d.code),
            &d.region_code,
            json!({"kind": d.kind, "region_code": d.region_code,
                "previous_region_code": old.region_code, "webhook_url": d.webhook_url,
                "staff_dismissed": dismissed}),
        )
        .await?;
    }
    // Audited where the department was, so that region's auditors see it leave.
    let audited_under = stored.as_ref().map_or(&d.region_code, |o| &o.region_code);
    record(
        &state,
        &caller.0.name,
        "department_put",
        format!("departments/{}", d.code),
        audited_under,
        json!({"kind": d.kind, "webhook": d.webhook_url.is_some(), "region_code": d.region_code,
            "previous_region_code": stored.as_ref().map(|o| &o.region_code),
            // Where case data will go, for the auditors who cannot list the URL.
            "webhook_url": d.webhook_url, "previous_webhook_url": stored.as_ref().map(|o| &o.webhook_url),
            "new_webhook_secret": webhook_secret.is_some()}),
    )
    .await?;
    Ok(Json(DepartmentAnswer {
        department: d,
        webhook_secret,
    }))
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
    let d = state
        .store
        .departments()
        .await?
        .into_iter()
        .find(|d| d.code == code)
        .ok_or_else(|| ApiError::not_found(format!("no department {code:?}")))?;
    caller.require(Action::ManageMatters, &d.region_code)?;
    // Staff come from the department's own area: a handler granted over its region, a
    // region under it, or a region above it. A county cannot enlist another county's
    // people (whose own auditors would never see the enlistment).
    let user = state
        .store
        .user(&req.user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {:?}", req.user)))?;
    if !dispatch::fits_department(&user.grants, &d.region_code) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-staff",
            "Not a handler of this department's area",
            format!(
                "{} holds no department_handler grant in or above {}: grant one first",
                user.name, d.region_code
            ),
        ));
    }
    state.store.add_staff(&req.user, &code).await?;
    record(
        &state,
        &caller.0.name,
        "staff_add",
        format!("departments/{code}/staff/{}", req.user),
        &d.region_code,
        json!({}),
    )
    .await?;
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
            .store
            .calendar_days()
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

/// The calendar is the city's: changed by those who manage matters for the whole
/// city. Returns the city's code, which the change is audited under.
fn require_calendar(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    let city = super::access::city_scope(state);
    caller.require(Action::ManageMatters, &city)?;
    Ok(city)
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
    let city = require_calendar(&state, &caller)?;
    state
        .store
        .set_calendar_day(date, Some(req.kind), &req.note)
        .await?;
    record(
        &state,
        &caller.0.name,
        "calendar_set",
        format!("calendar/{date}"),
        &city,
        json!({"kind": req.kind}),
    )
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
    let city = require_calendar(&state, &caller)?;
    state.store.set_calendar_day(date, None, "").await?;
    record(
        &state,
        &caller.0.name,
        "calendar_clear",
        format!("calendar/{date}"),
        &city,
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
