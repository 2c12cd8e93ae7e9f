//! Login and logout, the caller's own identity, members (personal data: masked unless
//! the caller's role needs it, every unmasked read audited) and the audit log.

use super::extract::{Caller, ClientAddr, bearer};
use super::{ApiError, AppState};
use crate::app::LoginOutcome;
use crate::auth::{self, Principal};
use crate::store::AuditEntry;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
        .route("/v1/members", get(members).post(add_member))
        .route("/v1/audit", get(audit))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: Principal,
}

fn throttled(wait: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login-throttled",
        "Too many failed logins",
        crate::msg!(
            "too many failed logins for this account or from this address; try again in {} s",
            "该账号或该地址登录失败次数过多；请 {} 秒后再试",
            wait.as_secs_f64().ceil() as u64
        ),
    )
    .retry_after(wait)
}

/// Exchanges a name and password for a bearer token. Failed attempts are counted per
/// account and per address: past `login_free_failures` each further attempt waits
/// (429 with `Retry-After`). Every login, failure and logout is audited.
#[utoipa::path(post, path = "/v1/auth/login", tag = "access", request_body = LoginRequest,
    responses((status = 200, body = LoginAnswer), (status = 401, description = "wrong name or password"),
        (status = 429, description = "too many failed attempts; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<
    (
        [(axum::http::HeaderName, &'static str); 1],
        Json<LoginAnswer>,
    ),
    ApiError,
> {
    match state
        .app
        .login(&state.logins, &req.name, &req.password, client.0)
        .await?
    {
        // The answer holds a token: no cache keeps it (the request carried none, so
        // the router's own no-store for signed-in requests does not apply).
        LoginOutcome::Issued(issued, user) => Ok((
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(LoginAnswer {
                token: issued.secret,
                expires_at: issued.record.expires_at,
                user,
            }),
        )),
        LoginOutcome::Throttled(wait) => Err(throttled(wait)),
    }
}

/// Revokes the token the request carries.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "access", security(("bearer" = [])),
    responses((status = 204, description = "revoked")))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientAddr,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = bearer(&headers) {
        let hash = auth::hash_token(token);
        state.app.logout(&caller.0, &hash, client.0).await?;
        state.tokens.forget(&hash);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to, with grants.
#[utoipa::path(get, path = "/v1/me", tag = "access", security(("bearer" = [])), responses((status = 200, body = Principal)))]
pub async fn me(caller: Caller) -> Json<Principal> {
    Json(caller.0)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct MembersQuery {
    /// A grid or region code: the members serving exactly it.
    pub scope: String,
}

pub use crate::app::{AuditParams, MemberView, NewMemberRequest};

/// Members of a grid or region: unmasked (and audited) for roles that need personal
/// data, masked for others, refused outside the caller's jurisdiction.
#[utoipa::path(get, path = "/v1/members", tag = "members", params(MembersQuery), security(("bearer" = [])),
    responses((status = 200, body = [MemberView]), (status = 403, description = "outside the caller's jurisdiction")))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<MembersQuery>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    Ok(Json(state.app.members(&caller.0, &q.scope).await?))
}

/// Adds a member (city admins of the jurisdiction); audited.
#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = NewMemberRequest, security(("bearer" = [])),
    responses((status = 201, description = "added"), (status = 403, description = "not allowed here")))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewMemberRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = state.app.add_member(&caller.0, req).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

/// The audit log of the caller's jurisdiction (auditors only).
#[utoipa::path(get, path = "/v1/audit", tag = "access", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = [AuditEntry]), (status = 403, description = "not an auditor here")))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    Ok(Json(state.app.audit_log(&caller.0, q).await?))
}
