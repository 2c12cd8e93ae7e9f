//! The HTTP service (axum): thin handlers that parse, authorise, call the workflow or the
//! snapshot, and map errors to problem responses. One file per resource.

mod access;
mod cases;
pub mod error;
pub mod extract;
pub mod lang;
mod locate;
mod matters;
mod ogc;
pub mod open311;
mod openapi;
mod ops;
mod plans;
mod public;
mod reports;
pub mod server;
mod stream_tickets;
mod tiles;
mod web;

use crate::domain::Msg;
use crate::settings::Settings;
use crate::store::Store;
use crate::workflow::live::LiveGrids;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use extract::TokenCache;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use cases::feed_events;
pub use error::ApiError;
pub use ops::describe_metrics;

/// What every handler can reach: one shared [`Shared`], so that the copy axum makes
/// for every request costs one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    /// Every use case; the only way to the store.
    pub app: Arc<crate::app::App>,
    pub live: Arc<LiveGrids>,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenCache>,
    pub public_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Residents' reports per client address.
    pub report_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Case events as the feeder reads them from the store, for the SSE streams.
    pub case_events: tokio::sync::broadcast::Sender<crate::app::SharedEvent>,
    /// Past dates' grids indexed for map tiles.
    pub past_tiles: Arc<tiles::PastTiles>,
    /// Current low-zoom tiles, cut once per snapshot.
    pub low_zoom_tiles: Arc<tiles::LowZoomTiles>,
    /// Renders `/metrics`; `None` when no recorder is installed (tests in-process).
    pub metrics: Option<PrometheusHandle>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<Vec<ipnet::IpNet>>,
    /// Failed logins per account and address.
    pub logins: Arc<crate::auth::LoginThrottle>,
    /// Open event streams per account.
    pub streams: Arc<StreamSlots>,
    /// Tickets that open an event stream without a header (for `EventSource`).
    pub stream_tickets: Arc<stream_tickets::StreamTickets>,
    /// Anonymous reads of past dates (each may rebuild a city's index) per address.
    pub historic_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Plan uploads read and checked at once: one, so that a large plan uses one core
    /// and leaves the others to every other request; later uploads wait their turn.
    pub plan_checks: Arc<tokio::sync::Semaphore>,
    /// OGC API requests per address (a page costs by its size).
    pub ogc_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Map tiles per address.
    pub tile_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Grid versions of past dates and intervals, as OGC API reads them.
    pub past_versions: Arc<ogc::PastVersions>,
}

/// Open event streams per account, so one token cannot hold hundreds.
#[derive(Default)]
pub struct StreamSlots {
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open stream; its account's count drops when it is dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    account: String,
}

impl StreamSlots {
    /// A slot for `account`, unless it already holds `max`.
    pub fn open(self: &Arc<Self>, account: &str, max: usize) -> Option<StreamSlot> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(account.to_string()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            account: account.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock()
            && let Some(count) = open.get_mut(&self.account)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.account);
            }
        }
    }
}

/// Whose budget a request is charged to (see [`crate::auth::client_network`]).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    crate::auth::client_network(ip)
}

/// What a rate limit counts, named in its 429.
#[derive(Debug, Clone, Copy)]
pub enum Limited {
    OgcRequests,
    OgcFeatures,
    Tiles,
    PastReads,
}

impl Limited {
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Limited::OgcRequests => ("OGC API requests", "OGC API 请求"),
            Limited::OgcFeatures => ("OGC API features", "OGC API 要素读取"),
            Limited::Tiles => ("map tiles", "地图瓦片请求"),
            Limited::PastReads => ("reads of past dates", "历史日期查询"),
        }
    }
}

/// Charges `cost` units of `limiter` to the client, or the 429 to answer.
pub fn charge(
    limiter: &DefaultKeyedRateLimiter<IpAddr>,
    client: IpAddr,
    cost: u32,
    what: Limited,
) -> Result<(), ApiError> {
    let (what, what_zh) = what.words();
    let refused = |wait: Duration| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            crate::msg!(
                "too many {what} from one address; try again later",
                "来自同一地址的{what_zh}过多；请稍后再试"
            ),
        )
        .retry_after(wait)
    };
    match limiter.check_key_n(
        &limit_key(client),
        NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN),
    ) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(refused(wait_time(&not_until))),
        Err(_) => Err(refused(Duration::from_secs(60))),
    }
}

/// Charges one request to `limiter` before the handler runs.
async fn gate(
    limiter: &DefaultKeyedRateLimiter<IpAddr>,
    what: Limited,
    client: extract::ClientAddr,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match charge(limiter, client.0, 1, what) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn ogc_gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    client: extract::ClientAddr,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    gate(
        &state.ogc_limiter,
        Limited::OgcRequests,
        client,
        request,
        next,
    )
    .await
}

async fn tile_gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    client: extract::ClientAddr,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    gate(&state.tile_limiter, Limited::Tiles, client, request, next).await
}

/// axum's own rejections (a path segment that is no number, a query that does not
/// parse, a body that is no JSON) come as text/plain, and its 405 with no body at all:
/// every error answer is a problem document instead, with the same status (and
/// `Retry-After`). Open311 routes then get theirs as Open311 errors
/// (`open311::open311_answers`).
async fn problem_for_plain_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = request.method().clone();
    let response = next.run(request).await;
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let bare = content_type.is_none_or(|v| v.starts_with("text/plain"));
    let failed = response.status().is_client_error() || response.status().is_server_error();
    if !(bare && failed) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let status = parts.status;
    let (slug, title, zh) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "The request is too large", "请求过大"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "Unsupported media type",
            "不支持的内容类型",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "Method not allowed",
            "此地址不接受该请求方法（Allow 头列出可用的方法）",
        ),
        StatusCode::NOT_FOUND => ("not-found", "Not found", "未找到"),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "unprocessable",
            "The request cannot be processed",
            "请求无法处理",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "timeout",
            "The request took too long",
            "请求处理超时，请稍后重试",
        ),
        s if s.is_server_error() => ("internal", "Internal error", "服务器内部错误"),
        _ => ("bad-request", "Bad request", "请求有误"),
    };
    let detail = match (text.trim().is_empty(), status) {
        // axum adds the `Allow` header after this middleware: point to it.
        (true, StatusCode::METHOD_NOT_ALLOWED) => Msg::new(
            format!(
                "this endpoint does not take {method}: the Allow header lists the methods it \
                 takes"
            ),
            zh,
        ),
        // axum's words (or the status's) name the field and the parse error: kept after
        // the Chinese.
        (empty, _) => {
            let words = if empty {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            };
            Msg::new(words.clone(), format!("{zh}：{words}"))
        }
    };
    let mut e = ApiError::new(status, slug, title, detail);
    if let Some(wait) = parts.headers.get(axum::http::header::RETRY_AFTER)
        && let Some(secs) = wait.to_str().ok().and_then(|v| v.parse().ok())
    {
        e = e.retry_after(Duration::from_secs(secs));
    }
    e.into_response()
}

/// Marks an answer whose links were built on the request's `Host`.
pub(crate) async fn vary_by_host(
    mut response: axum::response::Response,
) -> axum::response::Response {
    response.headers_mut().append(
        axum::http::header::VARY,
        axum::http::HeaderValue::from_static("Host"),
    );
    response
}

/// gzip for answers that succeeded and are worth it; an error stays plain, so the
/// middleware that rewrites errors reads text, never compressed bytes.
pub(crate) fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::Predicate;
    use tower_http::compression::predicate::DefaultPredicate;
    tower_http::compression::CompressionLayer::new().compress_when(DefaultPredicate::new().and(
        |status: StatusCode,
         _: axum::http::Version,
         _: &axum::http::HeaderMap,
         _: &axum::http::Extensions| status.is_success(),
    ))
}

/// A path with a trailing slash is the path without it (`/ogc/`, `/v1/cases/`): OWSLib
/// and hand-typed URLs add one. The router tries the path as given first.
async fn without_trailing_slash(
    inner: Router,
    mut request: axum::extract::Request,
) -> Result<axum::response::Response, std::convert::Infallible> {
    use tower::ServiceExt;
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        let rewritten = match request.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = rewritten.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    inner.oneshot(request).await
}

/// A handler's panic as a problem 500; what it said goes to the log, not to the caller.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "a request handler panicked");
    ApiError::internal(crate::msg!(
        "the service failed while answering; the failure is logged",
        "服务在应答时出错；错误已记录"
    ))
    .into_response()
}

/// How long a rate-limited caller should wait.
pub fn wait_time(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    use governor::clock::Clock;
    not_until.wait_time_from(governor::clock::DefaultClock::default().now())
}

/// Bodies of requests that carry no file: forms, JSON commands, reports.
const SMALL_BODY: usize = 64 << 10;
/// Bodies of staff commands (case steps, matters, departments).
pub(crate) const COMMAND_BODY: usize = 1 << 20;

impl AppState {
    /// State over an opened store and a loaded snapshot.
    pub fn new(
        store: Arc<dyn Store>,
        live: Arc<LiveGrids>,
        settings: Settings,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let per_minute =
            NonZeroU32::new(settings.public_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let reports_per_minute =
            NonZeroU32::new(settings.public_reports_per_minute).unwrap_or(NonZeroU32::MIN);
        let (case_events, _) = tokio::sync::broadcast::channel(1024);
        let settings = Arc::new(settings);
        AppState(Arc::new(Shared {
            app: Arc::new(crate::app::App::new(store, live.clone(), settings.clone())),
            report_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(reports_per_minute))),
            case_events,
            past_tiles: Arc::default(),
            past_versions: Arc::default(),
            low_zoom_tiles: Arc::default(),
            live,
            tokens: Arc::new(TokenCache::default()),
            public_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            proxies: Arc::new(
                settings
                    .trusted_proxies
                    .iter()
                    .filter_map(|p| crate::settings::parse_proxy(p))
                    .collect(),
            ),
            logins: Arc::new(crate::auth::LoginThrottle::new(
                settings.login_free_failures,
            )),
            streams: Arc::default(),
            stream_tickets: Arc::default(),
            plan_checks: Arc::new(tokio::sync::Semaphore::new(1)),
            ogc_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(settings.ogc_rate_per_minute).unwrap_or(NonZeroU32::MIN),
            ))),
            tile_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(settings.tile_rate_per_minute).unwrap_or(NonZeroU32::MIN),
            ))),
            historic_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(settings.historic_reads_per_minute).unwrap_or(NonZeroU32::MIN),
            ))),
            settings,
            metrics,
        }))
    }

    /// Forgets rate-limit and login counts nobody needs any more (call now and then).
    pub fn prune_limits(&self) {
        self.public_limiter.retain_recent();
        self.report_limiter.retain_recent();
        self.historic_limiter.retain_recent();
        self.ogc_limiter.retain_recent();
        self.tile_limiter.retain_recent();
        self.public_limiter.shrink_to_fit();
        self.report_limiter.shrink_to_fit();
        self.historic_limiter.shrink_to_fit();
        self.logins.prune(std::time::Instant::now());
    }
}

/// On every answer: never sniffed into another type, never framed; and an answer to a
/// request that carried a token is kept by no cache unless its handler says otherwise
/// (personal data, tickets, assessments).
async fn protective_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let signed_in = request.headers().contains_key(header::AUTHORIZATION);
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    if signed_in {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// The whole service. Each group of routes has the body limit its requests need,
/// checked before a byte is buffered: public forms 64 KiB, plan uploads
/// `body_limit_bytes` (streamed to disk), batch locate by `max_batch_points`.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    let body_limit = state.settings.body_limit_bytes;
    // A point is ~30 bytes as [lon,lat] and ~120 as a GeoJSON feature.
    let locate_limit = state.settings.max_batch_points.saturating_mul(160) + SMALL_BODY;
    let small = DefaultBodyLimit::max(SMALL_BODY);
    let service = Router::new()
        .merge(ops::routes().layer(small))
        .merge(locate::routes().layer(DefaultBodyLimit::max(locate_limit)))
        .merge(public::routes().layer(small))
        .merge(access::routes().layer(small))
        .merge(plans::routes().layer(DefaultBodyLimit::max(body_limit)))
        .merge(cases::routes(&state).layer(DefaultBodyLimit::max(COMMAND_BODY)))
        .merge(matters::routes().layer(DefaultBodyLimit::max(COMMAND_BODY)))
        .merge(reports::routes(&state).layer(small))
        .merge(
            tiles::routes()
                .layer(small)
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    tile_gate,
                )),
        )
        .nest(
            "/ogc",
            ogc::routes()
                .layer(small)
                // Every answer's links are built on the request's host (unless
                // `public_url` is set): a shared cache keeps one copy per host.
                .layer(axum::middleware::map_response(vary_by_host))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    ogc_gate,
                )),
        )
        .merge(openapi::routes().layer(small))
        .merge(web::routes().layer(small))
        // A handler that panics answers a problem 500 (and is counted), never a dropped
        // connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        // The timeout's own 503 has no body: inside the rewriting below, so that it
        // too leaves as a problem (or an Open311 error); and inside the counting, so
        // that timed-out requests are counted.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(axum::middleware::from_fn(problem_for_plain_rejections))
        .layer(axum::middleware::from_fn(open311::open311_answers))
        .layer(axum::middleware::from_fn(protective_headers))
        // Outermost of the layers that write words: every problem below it, the
        // rewritten rejections and Open311 errors included, speaks the caller's language.
        .layer(axum::middleware::from_fn(lang::with_caller_language))
        // One span per request at DEBUG (RUST_LOG=tower_http=debug shows them); free
        // when disabled, which matters at tens of thousands of lookups a second.
        // The span names the path, not the query: follow-up keys and search terms
        // stay out of logs.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            },
        ))
        .with_state(state);
    // What no route matches goes through once more without its trailing slash; the
    // inner router's own fallback (the web app, or a problem 404) answers the rest.
    let inner = service.clone();
    service.fallback_service(tower::service_fn(move |request| {
        without_trailing_slash(inner.clone(), request)
    }))
}

#[cfg(test)]
mod tests {
    use super::limit_key;
    use std::net::IpAddr;

    #[test]
    fn an_ipv6_network_shares_one_budget() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(limit_key(ip("64:ff9b::198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(limit_key(ip("2002:c633:6407::1")), ip("198.51.100.7"));
        assert_eq!(limit_key(ip("198.51.100.7")), ip("198.51.100.7"));
    }
}
