//! Who is calling: the bearer token's principal (cached briefly, so the hot locate path
//! does not hit the store on every request) and the client's address.

use super::AppState;
use super::error::ApiError;
use crate::auth::{self, Principal};
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

/// Recently checked tokens, by hash, each trusted until the cache lifetime or the
/// token's own expiry, whichever comes first.
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, (Principal, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let (p, until) = entries.get(hash)?;
        (Instant::now() < *until).then(|| p.clone())
    }

    fn put(&self, hash: String, p: Principal, expires_at: chrono::DateTime<chrono::Utc>) {
        let left = (expires_at - crate::domain::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let until = Instant::now() + left.min(TOKEN_CACHE_TTL);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() > 10_000 {
                let now = Instant::now();
                entries.retain(|_, (_, until)| *until > now);
            }
            entries.insert(hash, (p, until));
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
            ApiError::unauthenticated(crate::msg!(
                "this endpoint needs an Authorization: Bearer token",
                "此接口需要 Authorization: Bearer 令牌"
            ))
        })?;
        let hash = auth::hash_token(token);
        if let Some(p) = state.tokens.get(&hash) {
            return Ok(Caller(p));
        }
        let (p, expires_at) = state.app.token_holder(token).await?;
        state.tokens.put(hash, p.clone(), expires_at);
        Ok(Caller(p))
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy (entries to
/// its left are whatever the client chose to send).
pub struct ClientAddr(pub IpAddr);

/// [`ClientAddr`]'s rule, apart from HTTP.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], proxies: &[ipnet::IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.iter().flat_map(|h| h.split(',')).rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage in the chain: stop at the last address we can vouch for.
            Err(_) => return client,
        }
    }
    client
}

/// `scheme://host[:port]` of the service as its clients reach it, for absolute links:
/// `public_url` when set; otherwise the `Host` header when it is a plain host name or
/// address (else the listen address), and `https` only when the peer is a trusted
/// proxy that says so. A forged `Host` can thus put no markup in a link, and a forged
/// `X-Forwarded-Proto` no scheme.
pub struct Origin(pub String);

/// [`Origin`]'s rule, apart from HTTP.
pub fn origin(
    public_url: &str,
    host: Option<&str>,
    forwarded_proto: Option<&str>,
    listen: SocketAddr,
) -> String {
    if !public_url.is_empty() {
        return public_url.trim_end_matches('/').to_string();
    }
    let plain = |h: &&str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    };
    let host = host
        .filter(plain)
        .map_or_else(|| listen.to_string(), str::to_string);
    let scheme = match forwarded_proto.map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let from_proxy = peer.is_some_and(|ip| state.proxies.iter().any(|p| p.contains(&ip)));
        let proto = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .filter(|_| from_proxy);
        // An absolute-form target's authority wins over Host (RFC 9112 3.2.2); two
        // Host headers name no host at all.
        let mut hosts = parts.headers.get_all(axum::http::header::HOST).iter();
        let from_header = match (hosts.next(), hosts.next()) {
            (Some(h), None) => h.to_str().ok(),
            _ => None,
        };
        let authority = parts.uri.authority().map(|a| a.as_str());
        let host = authority.or(from_header);
        Ok(Origin(origin(
            &state.settings.public_url,
            host,
            proto,
            state.settings.listen,
        )))
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| {
                ApiError::internal(crate::msg!(
                    "the server was started without peer addresses",
                    "服务器启动时未提供对端地址"
                ))
            })?;
        if state.proxies.is_empty() {
            return Ok(ClientAddr(peer));
        }
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientAddr(client_address(peer, &forwarded, &state.proxies)))
    }
}

#[cfg(test)]
mod tests {
    use super::{client_address, origin};
    use std::net::SocketAddr;

    #[test]
    fn links_carry_only_a_plain_host_and_a_known_scheme() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            origin("", Some("grids.example:8443"), None, listen),
            "http://grids.example:8443"
        );
        assert_eq!(
            origin("", Some("evil.example\"><script>"), None, listen),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            origin("", Some("[::1]:80"), Some("https"), listen),
            "https://[::1]:80"
        );
        assert_eq!(
            origin("", Some("a.example"), Some("javascript"), listen),
            "http://a.example"
        );
        assert_eq!(
            origin(
                "https://wangge.example.gov.cn/",
                Some("evil.example"),
                None,
                listen
            ),
            "https://wangge.example.gov.cn"
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address() {
        let proxies = vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.1/32".parse().unwrap(),
        ];
        let ip = |s: &str| s.parse().unwrap();
        // Not from a proxy: the header is the client's own word and ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), &["1.2.3.4"], &proxies),
            ip("203.0.113.9")
        );
        // A forged left-most entry does not win.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["1.2.3.4, 198.51.100.7"], &proxies),
            ip("198.51.100.7")
        );
        // Two proxies in a row, headers split over lines.
        assert_eq!(
            client_address(ip("10.0.0.5"), &["198.51.100.7", "192.0.2.1"], &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &[], &proxies),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &["junk, 10.0.0.9"], &proxies),
            ip("10.0.0.9")
        );
    }
}
