//! Vector tiles for maps: `GET /tiles/{layer}/{z}/{x}/{y}.mvt` from the current snapshot,
//! or `?as_of=YYYY-MM-DD` from the grids valid on a past date. Public, like the grids'
//! boundaries on the public map; cached by version (`ETag`), gzip when asked.

use super::{ApiError, AppState};
use crate::spatial::tiles::TileId;
use crate::workflow::tiles::{PastGrids, TileLayer};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

/// How many past dates keep their grids indexed.
const PAST_DATES_KEPT: usize = 4;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tiles/{layer}/{z}/{x}/{y}", get(tile))
        .layer(tower_http::compression::CompressionLayer::new())
}

/// Past dates' grids, newest use last.
#[derive(Default)]
pub struct PastTiles(tokio::sync::Mutex<Vec<Arc<PastGrids>>>);

impl PastTiles {
    async fn get(&self, state: &AppState, date: NaiveDate) -> Result<Arc<PastGrids>, ApiError> {
        // Held while loading, so a map asking for twenty tiles of a new date loads it once.
        let mut kept = self.0.lock().await;
        if let Some(i) = kept.iter().position(|p| p.date == date) {
            let hit = kept.remove(i);
            kept.push(hit.clone());
            return Ok(hit);
        }
        let loaded = Arc::new(PastGrids::load(state.store.as_ref(), date).await?);
        if kept.len() >= PAST_DATES_KEPT {
            kept.remove(0);
        }
        kept.push(loaded.clone());
        Ok(loaded)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TileQuery {
    /// Grids valid on this date (YYYY-MM-DD) instead of the current ones. Regions are
    /// always today's.
    pub as_of: Option<NaiveDate>,
}

/// One Mapbox Vector Tile (protobuf) with one source-layer named like `layer`: `grids`
/// (code, name, layer, community, households), `communities`, `townships`, `counties`
/// (code, name). Feature ids are the numeric codes.
#[utoipa::path(get, path = "/tiles/{layer}/{z}/{x}/{y}.mvt", tag = "map",
    params(("layer" = String, Path, description = "grids, communities, townships or counties"),
        ("z" = u32, Path), ("x" = u32, Path), ("y" = u32, Path, description = "tile row from the north"),
        TileQuery),
    responses((status = 200, description = "the tile", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 304, description = "unchanged since the ETag sent"),
        (status = 404, description = "no such layer or tile")))]
pub async fn tile(
    State(state): State<AppState>,
    Path((layer, z, x, y)): Path<(String, u32, u32, String)>,
    Query(q): Query<TileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let layer = TileLayer::parse(&layer).ok_or_else(|| {
        ApiError::not_found(format!(
            "no tile layer {layer:?}: grids, communities, townships or counties"
        ))
    })?;
    let y: u32 = y
        .strip_suffix(".mvt")
        .and_then(|y| y.parse().ok())
        .ok_or_else(|| ApiError::not_found(format!("tiles end in {{y}}.mvt, not {y:?}")))?;
    let tile = TileId::new(z, x, y).map_err(|e| ApiError::not_found(e.to_string()))?;
    let snapshot = state.live.snapshot();
    let today = crate::workflow::duty::today_in_china();
    let past = q.as_of.filter(|d| *d < today);
    let etag = match past {
        Some(d) => format!("\"{}-{d}\"", snapshot.directory_version),
        None => format!("\"{}-{}\"", snapshot.version, snapshot.directory_version),
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let bytes = match past {
        Some(date) => {
            let grids = state.past_tiles.get(&state, date).await?;
            let render = move || {
                grids
                    .index
                    .render(&grids.grids, &snapshot.regions, layer, tile)
            };
            spawn_render(render).await?
        }
        None => spawn_render(move || snapshot.tile(layer, tile)).await?,
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

/// Cutting a low-zoom tile of many grids takes milliseconds: keep it off the reactor.
async fn spawn_render(
    render: impl FnOnce() -> Vec<u8> + Send + 'static,
) -> Result<Vec<u8>, ApiError> {
    tokio::task::spawn_blocking(render)
        .await
        .map_err(|e| ApiError::internal(format!("rendering the tile failed: {e}")))
}
