//! The HTTP service (axum): thin handlers that parse, authorise, call the workflow or the
//! snapshot, and map errors to problem responses. One file per resource.

mod access;
mod cases;
pub mod error;
pub mod extract;
mod locate;
mod matters;
mod ogc;
mod openapi;
mod ops;
mod plans;
mod public;
mod reports;
mod tiles;
mod web;

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

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub live: Arc<LiveGrids>,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenCache>,
    pub public_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Residents' reports per client address.
    pub report_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Case events as the feeder reads them from the store, for the SSE streams.
    pub case_events: tokio::sync::broadcast::Sender<cases::SharedEvent>,
    /// The matters list, cached briefly for intake.
    pub matters: Arc<crate::workflow::dispatch::MatterCatalog>,
    /// Past dates' grids indexed for map tiles.
    pub past_tiles: Arc<tiles::PastTiles>,
    /// Renders `/metrics`; `None` when no recorder is installed (tests in-process).
    pub metrics: Option<PrometheusHandle>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<Vec<ipnet::IpNet>>,
    /// Failed logins per account and address.
    pub logins: Arc<crate::auth::LoginThrottle>,
    /// Open event streams per account.
    pub streams: Arc<StreamSlots>,
    /// Anonymous reads of past dates (each may rebuild a city's index) per address.
    pub historic_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
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

    /// Streams `account` holds now.
    pub fn count(&self, account: &str) -> usize {
        self.open
            .lock()
            .ok()
            .and_then(|o| o.get(account).copied())
            .unwrap_or(0)
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

/// How long a rate-limited caller should wait.
pub fn wait_time(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    use governor::clock::Clock;
    not_until.wait_time_from(governor::clock::DefaultClock::default().now())
}

/// Bodies of requests that carry no file: forms, JSON commands, reports.
const SMALL_BODY: usize = 64 << 10;
/// Bodies of staff commands (case steps, matters, departments).
const COMMAND_BODY: usize = 1 << 20;

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
        AppState {
            report_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(reports_per_minute))),
            case_events,
            matters: Arc::default(),
            past_tiles: Arc::default(),
            store,
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
            historic_limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(settings.historic_reads_per_minute).unwrap_or(NonZeroU32::MIN),
            ))),
            settings: Arc::new(settings),
            metrics,
        }
    }

    /// Forgets rate-limit and login counts nobody needs any more (call now and then).
    pub fn prune_limits(&self) {
        self.public_limiter.retain_recent();
        self.report_limiter.retain_recent();
        self.historic_limiter.retain_recent();
        self.public_limiter.shrink_to_fit();
        self.report_limiter.shrink_to_fit();
        self.historic_limiter.shrink_to_fit();
        self.logins.prune(std::time::Instant::now());
    }
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
    Router::new()
        .merge(ops::routes().layer(small))
        .merge(locate::routes().layer(DefaultBodyLimit::max(locate_limit)))
        .merge(public::routes().layer(small))
        .merge(access::routes().layer(small))
        .merge(plans::routes().layer(DefaultBodyLimit::max(body_limit)))
        .merge(cases::routes().layer(DefaultBodyLimit::max(COMMAND_BODY)))
        .merge(matters::routes().layer(DefaultBodyLimit::max(COMMAND_BODY)))
        .merge(reports::routes(&state).layer(small))
        .merge(tiles::routes().layer(small))
        .nest("/ogc", ogc::routes().layer(small))
        .merge(openapi::routes().layer(small))
        .merge(web::routes().layer(small))
        .route_layer(axum::middleware::from_fn(ops::track))
        // One span per request at DEBUG (RUST_LOG=tower_http=debug shows them); free
        // when disabled, which matters at tens of thousands of lookups a second.
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .with_state(state)
}
