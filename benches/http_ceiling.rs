//! The HTTP ceiling that `scripts/http-perf` measures `GET /v1/locate` against: a bare
//! handler for the same path and query on the same stack (a default multi-threaded
//! tokio runtime, axum, hyper), answering a small fixed JSON body with no lookup, no
//! token and no middleware. It serves until killed and prints its URL on stdout.
//!
//! `HTTP_CEILING=axum` (the default) serves it with `axum::serve`; `HTTP_CEILING=wangge`
//! with wangge's own accept loop (`http::server::serve`, the default connection limits
//! and timeouts of `wangge serve`), so the two show what that loop costs.
//! `HTTP_CEILING_LISTEN` sets the address (default 127.0.0.1:0).

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;
use wangge::http::server::{ConnectionLimits, serve};
use wangge::settings::Settings;

#[derive(serde::Deserialize)]
struct At {
    lon: f64,
    lat: f64,
}

#[derive(serde::Serialize)]
struct Answer {
    lon: f64,
    lat: f64,
    grid: Option<&'static str>,
}

async fn bare(Query(at): Query<At>) -> Json<Answer> {
    Json(Answer {
        lon: at.lon,
        lat: at.lat,
        grid: None,
    })
}

fn main() -> std::io::Result<()> {
    // `cargo bench` passes `--bench`; this binary takes no arguments.
    let listen = std::env::var("HTTP_CEILING_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let own_loop = std::env::var("HTTP_CEILING").is_ok_and(|v| v == "wangge");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let app = Router::new().route("/v1/locate", get(bare));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("http://{}", listener.local_addr()?);
        if own_loop {
            let settings = Settings::default();
            let limits = ConnectionLimits {
                per_address: settings.max_connections_per_address,
                total: settings.max_connections,
                header_read: Duration::from_secs(settings.header_read_timeout_secs),
                write_stall: Duration::from_secs(settings.write_stall_timeout_secs),
                exempt: Vec::new(),
            };
            serve(listener, app, limits, std::future::pending()).await;
            Ok(())
        } else {
            axum::serve(listener, app).await
        }
    })
}
