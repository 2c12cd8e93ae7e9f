//! Who is calling and what they may do (Art. 13), free of HTTP: principals with roles
//! granted over region subtrees, the permission rules, bearer tokens (random, stored
//! hashed, expiring, revocable), argon2 passwords, and the masking of personal data.

mod mask;
mod policy;
mod secrets;
mod throttle;

pub use mask::{mask_name, mask_phone};
pub use policy::{Action, POLICY, Principal, Reach, reach};
pub use secrets::{
    IssuedToken, hash_password, hash_token, issue_token, sign_webhook, verify_password,
    webhook_secret,
};
pub use throttle::{LoginThrottle, client_network};

use crate::domain::{Localised, Msg};
use crate::store::{AccessStore, StoreError};
use chrono::{DateTime, Duration, Utc};

/// Why a caller was not let in or not allowed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or ones that do not identify anyone.
    #[error("{0}")]
    Unauthenticated(Msg),
    /// The caller is known but may not do this here.
    #[error("{0}")]
    Forbidden(Msg),
    /// Name or password wrong (deliberately not saying which).
    #[error("wrong user name or password")]
    BadCredentials,
    /// A password could not be hashed.
    #[error("cannot hash the password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Localised for AuthError {
    fn zh(&self) -> String {
        match self {
            AuthError::Unauthenticated(m) | AuthError::Forbidden(m) => m.zh().to_string(),
            AuthError::BadCredentials => "用户名或密码错误".to_string(),
            AuthError::Hashing(e) => format!("无法计算密码摘要：{e}"),
            AuthError::Store(e) => e.zh(),
        }
    }
}

/// The principal a bearer token stands for, if the token is live.
pub async fn principal_for_token(
    store: &dyn AccessStore,
    token: &str,
) -> Result<Principal, AuthError> {
    Ok(live_token(store, token).await?.0)
}

/// The principal of a live token and when the token expires (a cache must not trust
/// it beyond that).
pub async fn live_token(
    store: &dyn AccessStore,
    token: &str,
) -> Result<(Principal, DateTime<Utc>), AuthError> {
    let record = store
        .token(&hash_token(token))
        .await?
        .ok_or(AuthError::Unauthenticated(crate::msg!(
            "unknown token",
            "令牌无效"
        )))?;
    if record.revoked_at.is_some() {
        return Err(AuthError::Unauthenticated(crate::msg!(
            "the token was revoked",
            "令牌已被吊销"
        )));
    }
    if record.expires_at <= crate::domain::now() {
        return Err(AuthError::Unauthenticated(crate::msg!(
            "the token has expired",
            "令牌已过期"
        )));
    }
    let user = store
        .user(&record.user_name)
        .await?
        .ok_or(AuthError::Unauthenticated(crate::msg!(
            "the token's user no longer exists",
            "令牌对应的用户已不存在"
        )))?;
    Ok((Principal::new(user.name, user.grants), record.expires_at))
}

/// A hash to verify against when the account does not exist or has no password, so
/// that a wrong name costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = hex::encode(rand::random::<[u8; 16]>());
        hash_password(&random).unwrap_or_default()
    })
}

/// Checks a password and issues a token valid for `ttl`.
pub async fn login(
    store: &dyn AccessStore,
    name: &str,
    password: &str,
    ttl: Duration,
) -> Result<(IssuedToken, Principal), AuthError> {
    let user = store.user(name).await?;
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_string());
    // argon2 takes milliseconds of CPU: off the async workers.
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|u| matches && u.password_hash.is_some()) else {
        return Err(AuthError::BadCredentials);
    };
    let issued = issue_token(&user.name, "login", ttl);
    store.store_token(&issued.record).await?;
    Ok((issued, Principal::new(user.name, user.grants)))
}
