//! Who is calling and what they may do (Art. 13), free of HTTP: principals with roles
//! granted over region subtrees, the permission rules, bearer tokens (random, stored
//! hashed, expiring, revocable), argon2 passwords, and the masking of personal data.

mod mask;
mod policy;
mod secrets;

pub use mask::{mask_name, mask_phone};
pub use policy::{Action, Principal};
pub use secrets::{IssuedToken, hash_password, hash_token, issue_token, verify_password};

use crate::store::{AccessStore, StoreError};
use chrono::{Duration, Utc};

/// Why a caller was not let in or not allowed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or ones that do not identify anyone.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller is known but may not do this here.
    #[error("{0}")]
    Forbidden(String),
    /// Name or password wrong (deliberately not saying which).
    #[error("wrong user name or password")]
    BadCredentials,
    /// A password could not be hashed.
    #[error("cannot hash the password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The principal a bearer token stands for, if the token is live.
pub async fn principal_for_token(
    store: &dyn AccessStore,
    token: &str,
) -> Result<Principal, AuthError> {
    let record = store
        .token(&hash_token(token))
        .await?
        .ok_or(AuthError::Unauthenticated("unknown token"))?;
    if record.revoked_at.is_some() {
        return Err(AuthError::Unauthenticated("the token was revoked"));
    }
    if record.expires_at <= Utc::now() {
        return Err(AuthError::Unauthenticated("the token has expired"));
    }
    let user = store
        .user(&record.user_name)
        .await?
        .ok_or(AuthError::Unauthenticated(
            "the token's user no longer exists",
        ))?;
    Ok(Principal::new(user.name, user.grants))
}

/// Checks a password and issues a token valid for `ttl`.
pub async fn login(
    store: &dyn AccessStore,
    name: &str,
    password: &str,
    ttl: Duration,
) -> Result<(IssuedToken, Principal), AuthError> {
    let user = store.user(name).await?.ok_or(AuthError::BadCredentials)?;
    let hash = user
        .password_hash
        .as_deref()
        .ok_or(AuthError::BadCredentials)?;
    if !verify_password(password, hash) {
        return Err(AuthError::BadCredentials);
    }
    let issued = issue_token(&user.name, "login", ttl);
    store.store_token(&issued.record).await?;
    Ok((issued, Principal::new(user.name, user.grants)))
}
