//! Login and logout, the caller's own identity, members (personal data: masked unless
//! the caller's role needs it, every unmasked read audited) and the audit log.

use super::extract::{Caller, ClientAddr, bearer};
use super::{ApiError, AppState};
use crate::auth::{self, Action, Principal, mask_name, mask_phone};
use crate::store::{AuditEntry, AuditQuery, NewMember, Role};
use crate::workflow::audit;
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

/// Records an audited action; the request fails if the audit log cannot be written
/// (nothing personal leaves, nothing is written, without its trace).
pub async fn record(
    state: &AppState,
    actor: &str,
    action: &str,
    resource: String,
    scope_code: &str,
    detail: Value,
) -> Result<(), ApiError> {
    audit::record(
        state.store.as_ref(),
        actor,
        action,
        resource,
        scope_code,
        detail,
    )
    .await?;
    Ok(())
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

/// The area a login event is audited under: the broadest area the account serves, or
/// the city for names that are no account (so the city's auditor sees guessing).
fn login_scope(state: &AppState, principal: Option<&Principal>) -> String {
    let grants = principal.map_or(&[][..], |p| &p.grants[..]);
    audit::account_scope(grants, &city_scope(state))
}

/// The city's code: where city-wide things (the matters list, the calendar) are
/// authorised and audited.
pub fn city_scope(state: &AppState) -> String {
    let snapshot = state.live.snapshot();
    audit::city_of(snapshot.regions.iter().map(|r| r.code.as_str()))
}

fn throttled(wait: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login-throttled",
        "Too many failed logins",
        format!(
            "too many failed logins for this account or from this address; try again in {} s",
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
) -> Result<Json<LoginAnswer>, ApiError> {
    let now = std::time::Instant::now();
    // The name as the audit log keeps it: whatever was sent, cut to 64 characters.
    let shown_name: String = req.name.chars().take(64).collect();
    if let Err(wait) = state.logins.begin(&req.name, client.0, now) {
        if state.logins.report_refusal(&req.name, client.0, now) {
            record(
                &state,
                &shown_name,
                "login_throttled",
                format!("users/{shown_name}"),
                &login_scope(&state, None),
                json!({"client": client.0.to_string(), "wait_secs": wait.as_secs()}),
            )
            .await?;
        }
        return Err(throttled(wait));
    }
    let ttl = chrono::Duration::hours(state.settings.login_token_hours.into());
    match auth::login(state.store.as_ref(), &req.name, &req.password, ttl).await {
        Ok((issued, user)) => {
            state.logins.succeeded(&req.name, client.0);
            record(
                &state,
                &user.name,
                "login",
                format!("users/{}", user.name),
                &login_scope(&state, Some(&user)),
                json!({"client": client.0.to_string(), "expires_at": issued.record.expires_at}),
            )
            .await?;
            Ok(Json(LoginAnswer {
                token: issued.secret,
                expires_at: issued.record.expires_at,
                user,
            }))
        }
        Err(auth::AuthError::BadCredentials) => {
            let known = state.store.user(&req.name).await.ok().flatten();
            let principal = known.map(|u| Principal::new(u.name, u.grants));
            record(
                &state,
                &shown_name,
                "login_failed",
                format!("users/{shown_name}"),
                &login_scope(&state, principal.as_ref()),
                json!({"client": client.0.to_string(), "known_account": principal.is_some()}),
            )
            .await?;
            Err(auth::AuthError::BadCredentials.into())
        }
        Err(e) => Err(e.into()),
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
        state.store.revoke_token(&hash).await?;
        state.tokens.forget(&hash);
        record(
            &state,
            &caller.0.name,
            "logout",
            format!("users/{}", caller.0.name),
            &login_scope(&state, Some(&caller.0)),
            json!({"client": client.0.to_string()}),
        )
        .await?;
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

/// A member as the caller may see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub scope_code: String,
    pub role: String,
    pub name: String,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub duty_schedule: Value,
    /// True when names and phones are masked for this caller.
    pub masked: bool,
}

/// Members of a grid or region: unmasked (and audited) for roles that need personal
/// data, masked for others, refused outside the caller's jurisdiction.
#[utoipa::path(get, path = "/v1/members", tag = "members", params(MembersQuery), security(("bearer" = [])),
    responses((status = 200, body = [MemberView]), (status = 403, description = "outside the caller's jurisdiction")))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<MembersQuery>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    caller.require(Action::ReadMembers, &q.scope)?;
    let unmasked = caller.0.may(Action::ReadPersonal, &q.scope);
    let members = state.store.members(&q.scope).await?;
    if unmasked && !members.is_empty() {
        let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
        record(
            &state,
            &caller.0.name,
            "read_personal",
            format!("members/{}", q.scope),
            &q.scope,
            json!({"member_ids": ids}),
        )
        .await?;
    }
    Ok(Json(
        members
            .into_iter()
            .map(|m| MemberView {
                id: m.id,
                scope_code: m.scope_code,
                role: m.role.as_str().to_string(),
                name: if unmasked { m.name } else { mask_name(&m.name) },
                phone: m.phone.map(|p| if unmasked { p } else { mask_phone(&p) }),
                duty_schedule: m.duty_schedule,
                masked: !unmasked,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMemberRequest {
    pub scope_code: String,
    /// grid_leader, full_time, part_time, instructor or team_member.
    pub role: String,
    pub name: String,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    #[serde(default)]
    pub duty_schedule: Value,
}

/// Adds a member (city admins of the jurisdiction); audited.
#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = NewMemberRequest, security(("bearer" = [])),
    responses((status = 201, description = "added"), (status = 403, description = "not allowed here")))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewMemberRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Action::WriteMembers, &req.scope_code)?;
    let role: Role = req
        .role
        .parse()
        .map_err(|e: String| ApiError::bad_request(e))?;
    let member = NewMember {
        scope_code: req.scope_code.clone(),
        role,
        name: req.name,
        phone: req.phone,
        duty_schedule: if req.duty_schedule.is_null() {
            json!({})
        } else {
            req.duty_schedule
        },
    };
    let id = state.store.add_member(&member).await?;
    record(
        &state,
        &caller.0.name,
        "member_add",
        format!("members/{id}"),
        &member.scope_code,
        json!({"role": member.role.as_str()}),
    )
    .await?;
    state.live.refresh(state.store.as_ref(), true).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditParams {
    /// Entries of this region or grid and below (default: the caller's jurisdiction).
    pub under: Option<String>,
    pub actor: Option<String>,
    /// Entries after this id (paging).
    pub after_id: Option<i64>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<i64>,
}

/// The audit log of the caller's jurisdiction (auditors only).
#[utoipa::path(get, path = "/v1/audit", tag = "access", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = [AuditEntry]), (status = 403, description = "not an auditor here")))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let scopes = caller.0.scopes_for(Action::ReadAudit);
    let under = match q.under {
        Some(u) => {
            caller.require(Action::ReadAudit, &u)?;
            vec![u]
        }
        None if !scopes.is_empty() => scopes.into_iter().map(str::to_string).collect(),
        None => {
            return Err(ApiError::forbidden(format!(
                "{} may not read the audit log",
                caller.0.name
            )));
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut out = Vec::new();
    for u in under {
        out.extend(
            state
                .store
                .audit(&AuditQuery {
                    under: Some(u),
                    actor: q.actor.clone(),
                    after_id: q.after_id,
                    limit,
                })
                .await?,
        );
    }
    out.sort_by_key(|e| e.id);
    out.dedup_by_key(|e| e.id);
    out.truncate(limit as usize);
    Ok(Json(out))
}
