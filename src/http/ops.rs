//! Operations: liveness, readiness, Prometheus metrics, and the middleware that counts
//! and times every request by route.

use super::{ApiError, AppState};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Instant;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The store answers and grids are loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready"), (status = 503, description = "store unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let version = state.app.ready().await?;
    let snapshot = state.live.snapshot();
    Ok(Json(json!({
        "status": "ready",
        "backend": state.app.backend(),
        "grids": snapshot.locator.grids().len(),
        "boundaries_version": snapshot.version,
        "store_version": version,
    })))
}

/// Prometheus text exposition, to the addresses `metrics_allow` names (loopback by
/// default).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain"),
    (status = 403, description = "the client is not in `metrics_allow`")))]
pub async fn metrics(
    State(state): State<AppState>,
    client: super::extract::ClientAddr,
) -> Response {
    let allowed = state
        .settings
        .metrics_allow
        .iter()
        .filter_map(|a| crate::settings::parse_proxy(a))
        .any(|net| net.contains(&client.0));
    if !allowed {
        return ApiError::forbidden(crate::msg!(
            "metrics are served to the addresses in metrics_allow only",
            "指标仅提供给 metrics_allow 所列地址"
        ))
        .into_response();
    }
    let snapshot = state.live.snapshot();
    metrics::gauge!("wangge_partition_grids").set(snapshot.locator.grids().len() as f64);
    metrics::gauge!("wangge_partition_generation").set(snapshot.version as f64);
    metrics::gauge!("wangge_partition_index_bytes").set(snapshot.locator.index_bytes() as f64);
    match &state.metrics {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found(crate::msg!(
            "metrics are not recorded in this process",
            "本进程不记录指标"
        ))
        .into_response(),
    }
}

/// Gives every metric family its `# HELP` line (call once, after the recorder is
/// installed).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "wangge_http_requests_total",
        "HTTP requests answered, by route template (`unmatched` for paths no route or file answers), method and status"
    );
    describe_histogram!(
        "wangge_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template"
    );
    describe_counter!(
        "wangge_cases_reported_total",
        "Cases reported, by source (staff, public web form, Open311)"
    );
    describe_counter!(
        "wangge_case_steps_total",
        "Workflow steps taken on cases, by step"
    );
    describe_counter!("wangge_plans_activated_total", "Boundary plans activated");
    describe_gauge!(
        "wangge_partition_grids",
        "Grids in the snapshot that answers lookups"
    );
    describe_gauge!(
        "wangge_partition_generation",
        "Version of the boundaries the snapshot was built from"
    );
    describe_gauge!(
        "wangge_partition_index_bytes",
        Unit::Bytes,
        "Memory held by the snapshot's spatial index"
    );
}

/// Counts and times requests per route template (never per raw path: bounded labels).
/// What no route matched is counted as `unmatched` when nothing answered it (a
/// misrouted client shows), and as `web app` when the app's files did.
pub async fn track(request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    // A fixed set: any other token a client sends as a method is `other`, so no
    // request can add a series (each would be kept for good).
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let route = matched.unwrap_or_else(|| {
        if response.status() == axum::http::StatusCode::NOT_FOUND
            || response.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED
        {
            "unmatched".into()
        } else {
            "web app".into()
        }
    });
    let status = response.status().as_u16().to_string();
    metrics::counter!("wangge_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("wangge_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
