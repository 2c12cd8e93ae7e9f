//! Logins and logouts, members (personal data masked unless the caller's role needs
//! it, every unmasked read audited) and the audit log.

use super::{App, AppError, AppResult, require};
use crate::auth::{self, Action, Principal, mask_name, mask_phone};
use crate::store::{AuditEntry, AuditQuery, NewMember, Role};
use crate::workflow::audit;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::IpAddr;
use utoipa::{IntoParams, ToSchema};

/// How a login ended.
pub enum LoginOutcome {
    /// A token was issued.
    Issued(auth::IssuedToken, Principal),
    /// Too many failures for this account or from this address: wait this long.
    Throttled(std::time::Duration),
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

impl App {
    /// The area an account's own events are audited under: its broadest grant, or the
    /// city for names that are no account (so the city's auditor sees guessing).
    fn login_scope(&self, principal: Option<&Principal>) -> String {
        let grants = principal.map_or(&[][..], |p| &p.grants[..]);
        audit::account_scope(grants, &self.city())
    }

    /// Exchanges a name and password for a token. Failures are counted per account and
    /// address by `throttle`; logins, failures and throttled attempts are audited.
    pub async fn login(
        &self,
        throttle: &auth::LoginThrottle,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> AppResult<LoginOutcome> {
        let now = std::time::Instant::now();
        // The name as the audit log keeps it: whatever was sent, cut to 64 characters.
        let shown_name: String = name.chars().take(64).collect();
        // Attempts count per network (an IPv6 /64), not per address; the audit log
        // keeps the address itself.
        let network = auth::client_network(client);
        if let Err(wait) = throttle.begin(name, network, now) {
            if throttle.report_refusal(name, network, now) {
                self.audit(
                    &shown_name,
                    "login_throttled",
                    format!("users/{shown_name}"),
                    &self.login_scope(None),
                    json!({"client": client.to_string(), "wait_secs": wait.as_secs()}),
                )
                .await?;
            }
            return Ok(LoginOutcome::Throttled(wait));
        }
        let ttl = chrono::Duration::hours(self.settings.login_token_hours.into());
        match auth::login(self.store.as_ref(), name, password, ttl).await {
            Ok((issued, user)) => {
                throttle.succeeded(name, network);
                self.audit(
                    &user.name,
                    "login",
                    format!("users/{}", user.name),
                    &self.login_scope(Some(&user)),
                    json!({"client": client.to_string(), "expires_at": issued.record.expires_at}),
                )
                .await?;
                Ok(LoginOutcome::Issued(issued, user))
            }
            Err(auth::AuthError::BadCredentials) => {
                let known = self.store.user(name).await.ok().flatten();
                let principal = known.map(|u| Principal::new(u.name, u.grants));
                self.audit(
                    &shown_name,
                    "login_failed",
                    format!("users/{shown_name}"),
                    &self.login_scope(principal.as_ref()),
                    json!({"client": client.to_string(), "known_account": principal.is_some()}),
                )
                .await?;
                Err(auth::AuthError::BadCredentials.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes the caller's token (by its hash); audited.
    pub async fn logout(&self, p: &Principal, token_hash: &str, client: IpAddr) -> AppResult<()> {
        self.store.revoke_token(token_hash).await?;
        self.audit(
            &p.name,
            "logout",
            format!("users/{}", p.name),
            &self.login_scope(Some(p)),
            json!({"client": client.to_string()}),
        )
        .await
    }

    /// Members of a grid or region: unmasked (and audited) for roles that need
    /// personal data, masked for others, refused outside the caller's jurisdiction.
    pub async fn members(&self, p: &Principal, scope: &str) -> AppResult<Vec<MemberView>> {
        require(p, Action::ReadMembers, scope)?;
        let unmasked = p.may(Action::ReadPersonal, scope);
        let members = self.store.members(scope).await?;
        if unmasked && !members.is_empty() {
            let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
            self.audit(
                &p.name,
                "read_personal",
                format!("members/{scope}"),
                scope,
                json!({"member_ids": ids}),
            )
            .await?;
        }
        Ok(members
            .into_iter()
            .map(|m| MemberView {
                id: m.id,
                scope_code: m.scope_code,
                role: m.role.as_str().to_string(),
                name: if unmasked { m.name } else { mask_name(&m.name) },
                phone: m
                    .phone
                    .map(|ph| if unmasked { ph } else { mask_phone(&ph) }),
                duty_schedule: m.duty_schedule,
                masked: !unmasked,
            })
            .collect())
    }

    /// Adds a member where the caller may write members; audited; the snapshot then
    /// knows them. Returns the member's id.
    pub async fn add_member(&self, p: &Principal, req: NewMemberRequest) -> AppResult<i64> {
        require(p, Action::WriteMembers, &req.scope_code)?;
        let snapshot = self.live.snapshot();
        if snapshot.grid(&req.scope_code).is_none() && snapshot.region(&req.scope_code).is_none() {
            return Err(AppError::invalid_parameter(
                "scope_code",
                crate::msg!(
                    "no grid or region {} is loaded",
                    "未加载网格或区划 {}",
                    crate::io::upload::quote(&req.scope_code)
                ),
            ));
        }
        let role: Role = req.role.parse().map_err(AppError::invalid)?;
        crate::domain::text::check_text(
            "name",
            &req.name,
            50,
            false,
            crate::domain::text::TextKind::Name,
        )
        .map_err(|why| AppError::invalid_parameter("name", why))?;
        if req
            .phone
            .as_deref()
            .is_some_and(|ph| !crate::domain::text::is_phone(ph))
        {
            return Err(AppError::invalid_parameter(
                "phone",
                crate::msg!(
                    "a phone number is up to 32 of digits, '+', '-' and spaces, with a digit",
                    "电话号码最多 32 个字符，只能包含数字、'+'、'-' 和空格，且至少有一个数字"
                ),
            ));
        }
        let member = NewMember {
            scope_code: req.scope_code,
            role,
            name: req.name,
            phone: req.phone,
            duty_schedule: if req.duty_schedule.is_null() {
                json!({})
            } else {
                req.duty_schedule
            },
        };
        let audit = crate::store::NewAuditEntry {
            actor: p.name.clone(),
            action: "member_add".into(),
            resource: "members/{id}".into(),
            scope_code: member.scope_code.clone(),
            detail: json!({"role": member.role.as_str()}),
        };
        let id = self.store.add_member(&member, Some(&audit)).await?;
        self.live.refresh(self.store.as_ref(), true).await?;
        Ok(id)
    }

    /// The audit log of the caller's jurisdiction (auditors only), by id.
    pub async fn audit_log(&self, p: &Principal, q: AuditParams) -> AppResult<Vec<AuditEntry>> {
        let scopes = p.scopes_for(Action::ReadAudit);
        let under = match q.under {
            Some(u) => {
                require(p, Action::ReadAudit, &u)?;
                vec![u]
            }
            None if !scopes.is_empty() => scopes.into_iter().map(str::to_string).collect(),
            None => {
                return Err(AppError::forbidden(crate::msg!(
                    "{} may not read the audit log",
                    "{} 无权查看审计日志",
                    p.name
                )));
            }
        };
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        let mut out = Vec::new();
        for u in under {
            out.extend(
                self.store
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
        Ok(out)
    }
}
