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
        .route("/tiles/{file}", get(tilejson))
        .layer(super::compression())
}

/// Tiles are cut at any zoom up to this; TileJSON advertises it so clients overzoom
/// beyond instead of asking for tiles no finer than the last.
const TILEJSON_MAX_ZOOM: u8 = 16;

/// A layer's TileJSON 3.0: where its tiles are, the bounds of its data, its zooms and
/// the fields of its features, so QGIS and MapLibre need only this address.
#[utoipa::path(get, path = "/tiles/{layer}.json", tag = "map", operation_id = "tilejson",
    params(("layer" = String, Path, description = "grids, communities, townships or counties")),
    responses((status = 200, description = "TileJSON 3.0.0", content_type = "application/json"),
        (status = 404, description = "no such layer")))]
pub async fn tilejson(
    State(state): State<AppState>,
    origin: super::extract::Origin,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let layer = file
        .strip_suffix(".json")
        .and_then(TileLayer::parse)
        .ok_or_else(|| {
            ApiError::not_found(crate::msg!("no TileJSON {file:?}: grids.json, communities.json, townships.json or counties.json", "没有 TileJSON {file:?}：可用 grids.json、communities.json、townships.json 或 counties.json"
            ))
        })?;
    let snapshot = state.live.snapshot();
    let bounds = match layer.level() {
        None => crate::spatial::geom::bounds_of(
            snapshot
                .locator
                .grids()
                .iter()
                .filter_map(|g| crate::spatial::geom::bounds(&g.boundary))
                .flat_map(|r| [r.min(), r.max()]),
        ),
        Some(level) => crate::spatial::geom::bounds_of(
            snapshot
                .regions
                .iter()
                .filter(|r| r.level == level)
                .filter_map(|r| r.boundary.as_ref().and_then(crate::spatial::geom::bounds))
                .flat_map(|r| [r.min(), r.max()]),
        ),
    };
    let bounds = bounds.map_or([-180.0, -85.051_128_78, 180.0, 85.051_128_78], |r| {
        [r.min().x, r.min().y, r.max().x, r.max().y]
    });
    let centre_zoom = if layer == TileLayer::Grids { 12 } else { 8 };
    let fields = match layer {
        TileLayer::Grids => serde_json::json!({
            "code": "String: the 15-digit grid code (also the feature id)",
            "name": "String: the grid's name",
            "layer": "String: comprehensive or dedicated",
            "community": "String: the community or village code",
            "households": "Number: households in the grid",
        }),
        _ => serde_json::json!({
            "code": "String: the region code (also the feature id)",
            "name": "String: the region's name",
        }),
    };
    let origin = origin.0;
    let name = layer.name();
    let body = serde_json::json!({
        "tilejson": "3.0.0",
        "name": format!("wangge {name}"),
        "description": format!("{name} of the social-governance grid service, current boundaries (add ?as_of=YYYY-MM-DD to the tile URL for a past date's grids)"),
        "version": "1.0.0",
        "attribution": "wangge · county boundaries: DataV.GeoAtlas; townships, communities and grids of the demo are synthetic",
        "scheme": "xyz",
        "tiles": [format!("{origin}/tiles/{name}/{{z}}/{{x}}/{{y}}.mvt")],
        "minzoom": 0,
        "maxzoom": TILEJSON_MAX_ZOOM,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0, centre_zoom],
        "vector_layers": [{
            "id": name,
            "description": format!("The {name}"),
            "minzoom": 0,
            "maxzoom": TILEJSON_MAX_ZOOM,
            "fields": fields,
        }],
    });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    // The tile template is built on the request's host (unless `public_url` is set).
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Host"));
    Ok(response)
}

/// Zoom levels below this have their tiles (today's and past dates') cached, gzipped.
const LOW_ZOOM: u32 = 12;

/// A cached tile: of this snapshot and region directory, today's or of a past date.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct TileKey {
    version: i64,
    directory_version: i64,
    as_of: Option<NaiveDate>,
    layer: TileLayer,
    z: u32,
    x: u32,
    y: u32,
}

/// A low-zoom tile as cut and as gzipped, once: a 263 KB tile compressed per request
/// cost 16 ms of CPU, which the tile limit let one address spend 3 000 times at once.
pub struct CachedTile {
    plain: Vec<u8>,
    gzip: Vec<u8>,
}

impl CachedTile {
    fn of(plain: Vec<u8>) -> CachedTile {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing into a Vec cannot fail; if it somehow did, the tile goes out plain.
        let gzip = gz
            .write_all(&plain)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        CachedTile { plain, gzip }
    }
}

/// Rendered low-zoom tiles of the current snapshot (bounded; emptied when full).
#[derive(Default)]
pub struct LowZoomTiles(std::sync::Mutex<std::collections::HashMap<TileKey, Arc<CachedTile>>>);

impl LowZoomTiles {
    fn get(&self, key: &TileKey) -> Option<Arc<CachedTile>> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: TileKey, bytes: Arc<CachedTile>) {
        if let Ok(mut kept) = self.0.lock() {
            // Tiles of an older snapshot, or too many: start again.
            if kept.len() >= 4096
                || kept.keys().next().is_some_and(|k| {
                    (k.version, k.directory_version) != (key.version, key.directory_version)
                })
            {
                kept.clear();
            }
            kept.insert(key, bytes);
        }
    }
}

/// Past dates' grids, newest use last. The list is locked only to find a date's slot;
/// a date loads inside its own slot, so a slow load holds up only the requests for
/// that same date (which then share it), never the other dates or today's tiles.
#[derive(Default)]
pub struct PastTiles(std::sync::Mutex<Vec<(NaiveDate, PastSlot)>>);

type PastSlot = Arc<tokio::sync::OnceCell<Arc<PastGrids>>>;

impl PastTiles {
    /// The date's slot, and whether it was already there (a load may still be running).
    fn slot(&self, date: NaiveDate) -> Result<(PastSlot, bool), ApiError> {
        let mut kept = self.0.lock().map_err(|_| {
            ApiError::internal(crate::msg!(
                "the past-tiles cache is poisoned",
                "历史瓦片缓存已损坏"
            ))
        })?;
        if let Some(i) = kept.iter().position(|(d, _)| *d == date) {
            let hit = kept.remove(i);
            let slot = hit.1.clone();
            kept.push(hit);
            return Ok((slot, true));
        }
        if kept.len() >= PAST_DATES_KEPT {
            kept.remove(0);
        }
        let slot = PastSlot::default();
        kept.push((date, slot.clone()));
        Ok((slot, false))
    }

    async fn get(
        &self,
        state: &AppState,
        client: &super::extract::ClientAddr,
        date: NaiveDate,
    ) -> Result<Arc<PastGrids>, ApiError> {
        let (slot, known) = self.slot(date)?;
        if let Some(loaded) = slot.get() {
            return Ok(loaded.clone());
        }
        // A new date rebuilds an index from every grid version: counted per address.
        if !known {
            historic_limit(state, client)?;
        }
        let loaded = slot
            .get_or_try_init(|| async { state.app.past_grids(date).await.map(Arc::new) })
            .await?;
        Ok(loaded.clone())
    }
}

/// Refuses a client that asks for more past dates than the limit allows.
pub(super) fn historic_limit(
    state: &AppState,
    client: &super::extract::ClientAddr,
) -> Result<(), ApiError> {
    super::charge(
        &state.historic_limiter,
        client.0,
        1,
        super::Limited::PastReads,
    )
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TileQuery {
    /// Grids valid on this date (YYYY-MM-DD) instead of the current ones. Regions are
    /// always today's.
    pub as_of: Option<NaiveDate>,
}

/// One Mapbox Vector Tile (protobuf) with one source-layer named like `layer`: `grids`
/// (code, name, layer, community, households), `communities`, `townships`, `counties`
/// (code, name). Feature ids are the numeric codes. `.pbf` is the same tile.
#[utoipa::path(get, path = "/tiles/{layer}/{z}/{x}/{y}.mvt", tag = "map", operation_id = "tile",
    params(("layer" = String, Path, description = "grids, communities, townships or counties"),
        ("z" = u32, Path), ("x" = u32, Path), ("y" = u32, Path, description = "tile row from the north"),
        TileQuery),
    responses((status = 200, description = "the tile", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 304, description = "unchanged since the ETag sent"),
        (status = 404, description = "no such layer or tile")))]
pub async fn tile(
    State(state): State<AppState>,
    client: super::extract::ClientAddr,
    Path((layer, z, x, y)): Path<(String, u32, u32, String)>,
    Query(q): Query<TileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let layer = TileLayer::parse(&layer).ok_or_else(|| {
        ApiError::not_found(crate::msg!(
            "no tile layer {layer:?}: grids, communities, townships or counties",
            "没有瓦片图层 {layer:?}：可用 grids、communities、townships 或 counties"
        ))
    })?;
    // `.pbf` is what many clients' templates say; the bytes are the same.
    let y: u32 = y
        .strip_suffix(".mvt")
        .or_else(|| y.strip_suffix(".pbf"))
        .and_then(|y| y.parse().ok())
        .ok_or_else(|| {
            ApiError::not_found(crate::msg!(
                "tiles end in {{y}}.mvt (or .pbf), not {}",
                "瓦片地址以 {{y}}.mvt（或 .pbf）结尾，而不是 {}",
                crate::io::upload::quote(&y)
            ))
        })?;
    let tile = TileId::new(z, x, y).map_err(|e| ApiError::not_found(crate::domain::Msg::of(&e)))?;

    let snapshot = state.live.snapshot();
    let today = crate::domain::today_in_china();
    let past = q.as_of.filter(|d| *d < today);
    // Weak: the gzipped and the plain bytes are the same tile.
    let etag = match past {
        Some(d) => format!("W/\"{}-{d}\"", snapshot.directory_version),
        None => format!("W/\"{}-{}\"", snapshot.version, snapshot.directory_version),
    };
    let caching = |h: &mut HeaderMap| {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag.trim_start_matches("W/"))
        })
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        caching(response.headers_mut());
        return Ok(response);
    }
    let mut gzipped = false;
    let bytes = if z < LOW_ZOOM {
        // Low-zoom tiles hold many grids and take the longest to cut: kept, gzipped, per
        // snapshot and date, so asking for one again costs nothing (a past date's too:
        // uncached, one address could have one cut 16 times a second).
        let key = TileKey {
            version: snapshot.version,
            directory_version: snapshot.directory_version,
            as_of: past,
            layer,
            z,
            x,
            y,
        };
        let cached = match state.low_zoom_tiles.get(&key) {
            Some(cached) => cached,
            None => {
                let plain = cut(&state, &client, past, snapshot, layer, tile).await?;
                let cached = tokio::task::spawn_blocking(move || Arc::new(CachedTile::of(plain)))
                    .await
                    .map_err(|e| {
                        ApiError::internal(crate::msg!(
                            "compressing the tile failed: {e}",
                            "瓦片压缩失败：{e}"
                        ))
                    })?;
                state.low_zoom_tiles.put(key, cached.clone());
                cached
            }
        };
        // Sent as gzipped once (the compression layer leaves an encoded answer be).
        gzipped = !cached.gzip.is_empty() && super::web::takes_gzip(&headers);
        if gzipped {
            cached.gzip.clone()
        } else {
            cached.plain.clone()
        }
    } else {
        cut(&state, &client, past, snapshot, layer, tile).await?
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
    );
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    caching(h);
    Ok(response)
}

/// A tile cut from today's grids, or from those valid on a past date (their index
/// loaded once per date).
async fn cut(
    state: &AppState,
    client: &super::extract::ClientAddr,
    past: Option<NaiveDate>,
    snapshot: Arc<crate::workflow::live::Snapshot>,
    layer: TileLayer,
    tile: TileId,
) -> Result<Vec<u8>, ApiError> {
    let Some(date) = past else {
        return spawn_render(move || snapshot.tile(layer, tile)).await;
    };
    let grids = state.past_tiles.get(state, client, date).await?;
    spawn_render(move || {
        grids
            .index
            .render(&grids.grids, &snapshot.regions, layer, tile)
    })
    .await
}

/// Cutting a low-zoom tile of many grids takes milliseconds: keep it off the reactor.
async fn spawn_render(
    render: impl FnOnce() -> Vec<u8> + Send + 'static,
) -> Result<Vec<u8>, ApiError> {
    tokio::task::spawn_blocking(render).await.map_err(|e| {
        ApiError::internal(crate::msg!(
            "rendering the tile failed: {e}",
            "瓦片绘制失败：{e}"
        ))
    })
}
