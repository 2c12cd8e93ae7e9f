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
}

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
            settings: Arc::new(settings),
            metrics,
        }
    }
}

/// The whole service.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    let body_limit = state.settings.body_limit_bytes;
    Router::new()
        .merge(ops::routes())
        .merge(locate::routes())
        .merge(public::routes())
        .merge(access::routes())
        .merge(plans::routes())
        .merge(cases::routes())
        .merge(matters::routes())
        .merge(reports::routes())
        .merge(tiles::routes())
        .nest("/ogc", ogc::routes())
        .merge(openapi::routes())
        .merge(web::routes())
        .route_layer(axum::middleware::from_fn(ops::track))
        .layer(DefaultBodyLimit::max(body_limit))
        // One span per request at DEBUG (RUST_LOG=tower_http=debug shows them); free
        // when disabled, which matters at tens of thousands of lookups a second.
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .with_state(state)
}
