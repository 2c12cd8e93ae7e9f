//! Who is calling: the bearer token's principal (cached briefly, so the hot locate path
//! does not hit the store on every request) and the client's address.

use super::AppState;
use super::error::ApiError;
use crate::auth::{self, Action, AuthError, Principal};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a checked token is trusted without asking the store again: a revocation
/// takes effect within this time on every replica.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Recently checked tokens, by hash.
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, (Principal, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let (p, at) = entries.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| p.clone())
    }

    fn put(&self, hash: String, p: Principal) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() > 10_000 {
                entries.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
            }
            entries.insert(hash, (p, Instant::now()));
        }
    }

    /// Forgets a token at once (logout on this replica).
    pub fn forget(&self, hash: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(hash);
        }
    }
}

/// An authenticated caller (401 without a live bearer token).
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses with 403 unless the caller may take `action` on data of `code`.
    pub fn require(&self, action: Action, code: &str) -> Result<(), ApiError> {
        if self.0.may(action, code) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "{} may not {} in {code}",
                self.0.name,
                serde_json::to_value(action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
                    .replace('_', " ")
            ))
            .into())
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthenticated("this endpoint needs an Authorization: Bearer token")
        })?;
        let hash = auth::hash_token(token);
        if let Some(p) = state.tokens.get(&hash) {
            return Ok(Caller(p));
        }
        let p = auth::principal_for_token(state.store.as_ref(), token).await?;
        state.tokens.put(hash, p.clone());
        Ok(Caller(p))
    }
}

/// The client's address: the peer, or the first `X-Forwarded-For` entry when the
/// settings say a trusted proxy sets it.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.settings.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
            if let Some(ip) = forwarded {
                return Ok(ClientAddr(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::internal("the server was started without peer addresses"))?;
        Ok(ClientAddr(peer))
    }
}
