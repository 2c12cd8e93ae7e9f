//! Webhook deliveries from the outbox: each queued (event, department) pair is POSTed
//! to the department's URL as JSON until it answers 2xx, with growing pauses between
//! tries, each delivery on its own task (at most 16 at once). At least once: a
//! receiver deduplicates by `event.id` (also the `X-Wangge-Event-Id` header).
//!
//! A webhook cannot be aimed inward: a URL whose host is, or resolves to, a loopback,
//! private, link-local, shared, unspecified or multicast address is refused when the
//! department is saved and again before every delivery (DNS can change), unless the
//! host or address is listed in `webhook_allow_hosts`. Redirects are not followed.
//!
//! Each delivery is signed with the department's secret (made when its webhook URL is
//! set, shown once): `X-Wangge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>." + body>` (see [`crate::auth::sign_webhook`]).

use crate::domain::Msg;
use crate::msg;
use crate::store::{Store, StoreResult};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::net::IpAddr;

/// The pause before try `attempts + 1`: 10 s, 20 s, 40 s … at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let secs = 10i64.saturating_mul(1i64 << attempts.clamp(0, 12));
    Duration::seconds(secs.min(3600))
}

/// Where webhooks may go besides public addresses: host names, addresses or CIDR
/// blocks (a municipal network's department systems, typically).
#[derive(Debug, Clone, Default)]
pub struct WebhookPolicy {
    pub allow_hosts: Vec<String>,
    /// Plain `http://` allowed (setting `webhook_allow_http`).
    pub allow_http: bool,
    /// The address this service listens on, when it is a specific one: a webhook
    /// aimed there would call the service itself.
    pub own_address: Option<std::net::SocketAddr>,
}

impl WebhookPolicy {
    /// The policy the settings describe.
    pub fn from_settings(s: &crate::settings::Settings) -> WebhookPolicy {
        WebhookPolicy {
            allow_hosts: s.webhook_allow_hosts.clone(),
            allow_http: s.webhook_allow_http,
            own_address: (!s.listen.ip().is_unspecified()).then_some(s.listen),
        }
    }
}

/// The CA certificates of a PEM file (at least one).
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Resolves webhook hosts for the client, refusing inward addresses as the policy does:
/// the connection goes to exactly the addresses checked, so a name that resolves to a
/// public address for the check and to an internal one for the request (DNS rebinding)
/// gets nowhere.
struct PolicyResolver(WebhookPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !policy.allows_host(&host)
                && let Some(ip) = addresses
                    .iter()
                    .map(|a| a.ip())
                    .find(|ip| inward(*ip) && !policy.allows_ip(*ip))
            {
                return Err(format!(
                    "webhook host {host} now resolves to {ip}, an internal address"
                )
                .into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The client deliveries are sent with: https with the system's CAs and `ca_file`'s,
/// host names resolved under `policy`, a 10 s limit, and no redirects (a redirect
/// would take a delivery past the destination check).
pub fn client(
    policy: &WebhookPolicy,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .dns_resolver(PolicyResolver(policy.clone()))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(file) = ca_file {
        for cert in read_ca_file(file)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Addresses no webhook goes to unless allowed by name: loopback, private, link-local,
/// shared (CGNAT), benchmark, reserved, unspecified, multicast; in IPv6 also unique-
/// and site-local, and every form that carries an IPv4 address (mapped, compatible,
/// NAT64, 6to4) judged by that address, Teredo always.
fn inward(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0)
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [h1, h2] = hi.to_be_bytes();
                let [l1, l2] = lo.to_be_bytes();
                inward(IpAddr::V4(std::net::Ipv4Addr::new(h1, h2, l1, l2)))
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                || v6.to_ipv4_mapped().is_some_and(|v4| inward(IpAddr::V4(v4)))
                // IPv4-translated (::ffff:0:a.b.c.d)
                || (seg[..6] == [0, 0, 0, 0, 0xffff, 0] && embedded(seg[6], seg[7]))
                // IPv4-compatible (::a.b.c.d)
                || (seg[..6].iter().all(|s| *s == 0) && embedded(seg[6], seg[7]))
                // NAT64: the well-known prefix judged by its IPv4, local-use ones always
                || (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(seg[6], seg[7]))
                || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1)
                // 6to4 and Teredo tunnel to an IPv4 address
                || (seg[0] == 0x2002 && embedded(seg[1], seg[2]))
                || (seg[0] == 0x2001 && seg[1] == 0)
        }
    }
}

impl WebhookPolicy {
    fn allows_host(&self, host: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allow_hosts
            .iter()
            .any(|h| crate::settings::parse_proxy(h).is_some_and(|net| net.contains(&ip)))
    }

    /// A webhook URL as it is stored: checked, and written the way the delivery
    /// client parses it (so `https://8.8.8.8\@127.0.0.1/` is kept as the host it
    /// means, not as other parsers might read it).
    pub async fn normalise(&self, url: &str) -> Result<String, Msg> {
        self.check(url).await?;
        reqwest::Url::parse(url)
            .map(|u| u.to_string())
            .map_err(|e| {
                msg!(
                    "webhook URL is not a URL ({e})",
                    "webhook 地址不是 URL（{e}）"
                )
            })
    }

    /// Checks a webhook URL and where its host resolves now. `Err` says why not.
    pub async fn check(&self, url: &str) -> Result<(), Msg> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            msg!(
                "webhook URL is not a URL ({e})",
                "webhook 地址不是 URL（{e}）"
            )
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(msg!(
                    "webhook URLs are https:// (plain http:// only where the setting \
                     webhook_allow_http allows it, inside a trusted network)",
                    "webhook 地址须为 https://（只有在可信网络内、设置 webhook_allow_http \
                     允许时才可用 http://）"
                ));
            }
            other => {
                return Err(msg!(
                    "webhook URLs are https://, not {other}://",
                    "webhook 地址须为 https://，而不是 {other}://"
                ));
            }
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(msg!(
                "webhook URLs carry no user name or password",
                "webhook 地址中不能含用户名或密码"
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| msg!("webhook URL has no host", "webhook 地址没有主机名"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        if self.allows_host(&host) {
            return Ok(());
        }
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| {
                    msg!(
                        "webhook host {host} does not resolve ({e})",
                        "webhook 主机 {host} 无法解析（{e}）"
                    )
                })?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(msg!(
                "webhook host {host} has no address",
                "webhook 主机 {host} 没有地址"
            ));
        }
        if let Some(own) = self.own_address
            && addresses.iter().any(|ip| *ip == own.ip())
            && port == own.port()
        {
            return Err(msg!(
                "webhook URL {host}:{port} is this service itself",
                "webhook 地址 {host}:{port} 就是本服务自己"
            ));
        }
        match addresses
            .iter()
            .find(|ip| inward(**ip) && !self.allows_ip(**ip))
        {
            Some(ip) => Err(msg!(
                "webhook host {host} is {ip}, an internal address: list it in \
                 webhook_allow_hosts to send there",
                "webhook 主机 {host} 是内部地址 {ip}：要发送到该地址，请把它列入 webhook_allow_hosts"
            )),
            None => Ok(()),
        }
    }
}

/// An error and its causes (reqwest's own message hides why, e.g. an untrusted
/// certificate).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The request with its `X-Wangge-Signature`, when the department has a secret.
fn signed(
    request: reqwest::RequestBuilder,
    secret: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> reqwest::RequestBuilder {
    match secret {
        Some(secret) => request.header(
            "x-wangge-signature",
            crate::auth::sign_webhook(secret, now.timestamp(), body),
        ),
        None => request,
    }
}

/// Deliveries under way at once: a receiver that never answers holds one slot for
/// its timeout, not the others.
const CONCURRENT_DELIVERIES: usize = 16;

/// Sends webhook deliveries as they fall due, each on its own task: a slow or silent
/// receiver delays its own deliveries only, never another department's (nor the next
/// round's).
pub struct Deliverer {
    store: std::sync::Arc<dyn Store>,
    client: reqwest::Client,
    policy: WebhookPolicy,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// (event, department) pairs being sent now, so a round does not start them twice.
    in_flight: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<(i64, String)>>>,
}

impl Deliverer {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        client: reqwest::Client,
        policy: WebhookPolicy,
    ) -> Self {
        Deliverer {
            store,
            client,
            policy,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DELIVERIES)),
            in_flight: std::sync::Arc::default(),
        }
    }

    /// Starts every delivery due at `now` (at most `limit`) that is not already under
    /// way, and returns how many it started; each records its own outcome.
    pub async fn start_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<usize> {
        let mut started = 0;
        for d in self.store.due_deliveries(now, limit).await? {
            let key = (d.event_id, d.department_code.clone());
            let fresh = match self.in_flight.lock() {
                Ok(mut set) => set.insert(key.clone()),
                Err(_) => false,
            };
            if !fresh {
                continue;
            }
            started += 1;
            let (store, client, policy) =
                (self.store.clone(), self.client.clone(), self.policy.clone());
            let (slots, in_flight) = (self.slots.clone(), self.in_flight.clone());
            tokio::spawn(async move {
                // Closed only when the deliverer is dropped: then nothing is sent.
                if let Ok(_slot) = slots.acquire_owned().await
                    && let Err(e) = deliver_one(store.as_ref(), &client, &policy, now, d).await
                {
                    tracing::warn!(error = %e, "recording a webhook delivery failed");
                }
                if let Ok(mut set) = in_flight.lock() {
                    set.remove(&key);
                }
            });
        }
        Ok(started)
    }
}

/// One delivery and its recorded outcome: delivered, failed, or nothing to send.
async fn deliver_one(
    store: &dyn Store,
    client: &reqwest::Client,
    policy: &WebhookPolicy,
    now: DateTime<Utc>,
    d: crate::store::Delivery,
) -> StoreResult<Option<bool>> {
    let event = store
        .events_after(d.event_id - 1, 1)
        .await?
        .into_iter()
        .find(|e| e.id == d.event_id);
    let Some(event) = event else { return Ok(None) };
    let case = store.case(event.case_id).await?;
    let body = json!({
        "department": d.department_code,
        "event": event,
        "case": {
            "id": case.id,
            "state": case.state,
            "matter_code": case.matter_code,
            "grid_code": case.grid_code,
            "department_code": case.department_code,
            "deadline": case.deadline,
            "description": case.description,
            "lon": case.lon,
            "lat": case.lat,
        },
    });
    let body = body.to_string().into_bytes();
    let outcome = match policy.check(&d.url).await {
        Err(refused) => Err(refused.to_string()),
        Ok(()) => match signed(
            client.post(&d.url),
            d.secret.as_deref(),
            &body,
            crate::domain::now(),
        )
        .header("x-wangge-event-id", d.event_id.to_string())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(with_causes(&e)),
        },
    };
    if let Err(e) = &outcome {
        tracing::warn!(url = %d.url, event = d.event_id, error = %e, "webhook delivery failed; will retry");
    }
    let delivered = outcome.is_ok();
    store
        .finish_delivery(
            d.event_id,
            &d.department_code,
            outcome,
            now + backoff(d.attempts),
        )
        .await?;
    Ok(Some(delivered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::seconds(10));
        assert_eq!(backoff(3), Duration::seconds(80));
        assert_eq!(backoff(30), Duration::seconds(3600));
    }

    #[tokio::test]
    async fn webhooks_cannot_be_aimed_inward_unless_allowed() {
        let none = WebhookPolicy::default();
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/x",
            "http://100.64.0.1/x",
            "https://127.0.0.1/x",
            "http://8.8.8.8/x",
            "https://user:pw@8.8.8.8/x",
            "file:///etc/passwd",
            "ftp://8.8.8.8/x",
            "https://[::127.0.0.1]/",
            "https://[::7f00:1]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[64:ff9b:1::1]/",
            "https://[2002:7f00:1::]/",
            "https://[2001:0:4136:e378::1]/",
            "https://[fec0::1]/",
            "https://198.18.0.1/",
            "https://240.0.0.1/",
            "https://192.0.0.8/",
            "https://[::ffff:0:7f00:1]/",
            "https://[::ffff:0:a00:1]/",
        ] {
            assert!(none.check(url).await.is_err(), "{url}");
        }
        assert!(none.check("https://8.8.8.8/hook").await.is_ok());
        assert!(none.check("https://[64:ff9b::808:808]/hook").await.is_ok());
        assert!(none.check("https://[2606:4700::1111]/hook").await.is_ok());
        // Stored as the delivery client reads it.
        assert_eq!(
            none.normalise("HTTPS://8.8.8.8\\@example.invalid/hook")
                .await
                .unwrap(),
            "https://8.8.8.8/@example.invalid/hook"
        );
        assert_eq!(
            none.normalise("HTTPS://8.8.8.8:443/a/../hook")
                .await
                .unwrap(),
            "https://8.8.8.8/hook"
        );
        let municipal = WebhookPolicy {
            allow_hosts: vec!["10.0.0.0/8".into(), "localhost".into()],
            allow_http: true,
            own_address: None,
        };
        assert!(municipal.check("http://10.1.2.3/x").await.is_ok());
        assert!(municipal.check("http://localhost:9/x").await.is_ok());
        assert!(municipal.check("http://192.168.1.1/x").await.is_err());
        // A public address the service itself listens on.
        let public = WebhookPolicy {
            own_address: Some("8.8.4.4:443".parse().unwrap()),
            ..WebhookPolicy::default()
        };
        assert!(public.check("https://8.8.4.4/x").await.is_err());
        assert!(public.check("https://8.8.4.4:8443/x").await.is_ok());
    }
}
