//! Public grid cards (Art. 6): what residents may see of a grid — name, scope, members'
//! names and contacts, the supervision phone — and nothing else. No token; rate-limited
//! per client address.

use super::extract::ClientAddr;
use super::locate::{
    Ancestor, GridSummary, MemberContact, ancestors, check_point, contact, coord_sys, summary,
};
use super::{ApiError, AppState};
use crate::io::geojson::geometry_json;
use crate::workflow::live::Snapshot;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use geo_types::Coord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/public/grids/{code}", get(card))
        .route("/v1/public/locate", get(locate))
        .route("/v1/public/search", get(search))
        .route("/v1/public/map-config", get(map_config))
}

/// A grid's public card.
#[derive(Debug, Serialize, ToSchema)]
pub struct GridCard {
    pub grid: GridSummary,
    pub ancestors: Vec<Ancestor>,
    /// The grid's scope, GeoJSON (CGCS2000 lon/lat).
    #[schema(value_type = Object)]
    pub scope: Value,
    pub members: Vec<MemberContact>,
    pub supervision_phone: Option<String>,
    /// `[lon, lat]` of a point inside the grid, which the lookup answers with this grid:
    /// where a report form's pin starts when the resident has not tapped the map.
    pub point: Option<[f64; 2]>,
}

pub(super) fn limit(state: &AppState, client: &ClientAddr) -> Result<(), ApiError> {
    state
        .public_limiter
        .check_key(&super::limit_key(client.0))
        .map_err(|not_until| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                crate::msg!(
                    "at most {} requests a minute from one address on the public endpoints",
                    "每个地址每分钟最多访问公开接口 {} 次",
                    state.settings.public_rate_per_minute
                ),
            )
            .retry_after(super::wait_time(&not_until))
        })
}

fn card_of(state: &AppState, snapshot: &Snapshot, code: &str) -> Result<GridCard, ApiError> {
    let g = snapshot.grid(code).ok_or_else(|| {
        let code = crate::io::upload::quote(code);
        ApiError::not_found(crate::msg!("no current grid {code}", "没有现行网格 {code}"))
    })?;
    let mask = state.settings.mask_public_phones;
    Ok(GridCard {
        grid: summary(&g.id, g.name.as_deref(), g.layer),
        ancestors: ancestors(&g.ancestors),
        scope: geometry_json(&geo_types::Geometry::MultiPolygon(g.boundary.clone())),
        members: snapshot
            .members(code)
            .iter()
            .map(|m| {
                let mut c = contact(m, false);
                if mask {
                    c.phone = m.phone.as_deref().map(crate::auth::mask_phone);
                }
                c
            })
            .collect(),
        supervision_phone: snapshot.supervision_phone(code).map(str::to_string),
        point: snapshot.point_inside(code).map(|p| [p.x, p.y]),
    })
}

/// The public card of a current grid.
#[utoipa::path(get, path = "/v1/public/grids/{code}", tag = "public",
    params(("code" = String, Path, description = "15-digit grid code")),
    responses((status = 200, body = GridCard), (status = 404, description = "no such grid"), (status = 429, description = "rate limited")))]
pub async fn card(
    State(state): State<AppState>,
    client: ClientAddr,
    Path(code): Path<String>,
) -> Result<Json<GridCard>, ApiError> {
    limit(&state, &client)?;
    let snapshot = state.live.snapshot();
    Ok(Json(card_of(&state, &snapshot, &code)?))
}

/// A point to find the card of.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PublicLocateQuery {
    pub lon: f64,
    pub lat: f64,
    /// `wgs84` (default), `cgcs2000`, `gcj02` or `bd09`.
    pub coord_sys: Option<String>,
}

/// The public card of the grid containing a point.
#[utoipa::path(get, path = "/v1/public/locate", tag = "public", params(PublicLocateQuery),
    responses((status = 200, body = GridCard), (status = 404, description = "the point is in no grid"), (status = 429, description = "rate limited")))]
pub async fn locate(
    State(state): State<AppState>,
    client: ClientAddr,
    Query(q): Query<PublicLocateQuery>,
) -> Result<Json<GridCard>, ApiError> {
    limit(&state, &client)?;
    check_point(q.lon, q.lat)?;
    let cs = coord_sys(q.coord_sys.as_deref())?;
    let snapshot = state.live.snapshot();
    let p = cs.to_wgs84(Coord { x: q.lon, y: q.lat });
    let code = snapshot
        .locator
        .grid_indices(&[p])
        .first()
        .copied()
        .flatten()
        .and_then(|i| snapshot.locator.grids().get(i as usize))
        .map(|g| g.id.clone())
        .ok_or_else(|| {
            ApiError::not_found(crate::msg!(
                "the point lies in no grid",
                "该位置不在任何网格内"
            ))
        })?;
    Ok(Json(card_of(&state, &snapshot, &code)?))
}

/// Text to look for.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    /// A code (or its beginning) or part of a name.
    pub q: String,
    /// At most this many answers (default 20, at most 100).
    pub limit: Option<usize>,
}

/// A grid or region found by code or name.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub code: String,
    pub name: Option<String>,
    /// `grid`, `community`, `township`, `county` or `city`.
    pub kind: String,
    /// Names of the enclosing community, township and county, nearest first, for
    /// telling equal names apart.
    pub context: Vec<String>,
    /// `[min lon, min lat, max lon, max lat]`, to zoom the map to.
    pub bbox: Option<[f64; 4]>,
}

fn bbox_of(mp: &geo::MultiPolygon<f64>) -> Option<[f64; 4]> {
    use geo::BoundingRect;
    mp.bounding_rect()
        .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y])
}

/// Grids and regions whose code starts with `q` or whose name contains it: grids first,
/// then regions, each in code order.
#[utoipa::path(get, path = "/v1/public/search", tag = "public", params(SearchQuery),
    responses((status = 200, body = [SearchHit]), (status = 400, description = "empty query"), (status = 429, description = "rate limited")))]
pub async fn search(
    State(state): State<AppState>,
    client: ClientAddr,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Vec<SearchHit>>, ApiError> {
    limit(&state, &client)?;
    let needle = q.q.trim();
    if needle.is_empty() {
        return Err(ApiError::bad_request(crate::msg!(
            "say what to look for in `q`",
            "请在 `q` 中说明要查找的内容"
        ))
        .with("parameter", "q".into()));
    }
    if needle.chars().count() > 64 {
        return Err(ApiError::bad_request(crate::msg!(
            "`q` is longer than 64 characters",
            "`q` 超过 64 个字符"
        ))
        .with("parameter", "q".into()));
    }
    let max = q.limit.unwrap_or(20).clamp(1, 100);
    let snapshot = state.live.snapshot();
    let matches = |code: &str, name: Option<&str>| {
        code.starts_with(needle) || name.is_some_and(|n| n.contains(needle))
    };
    let context_of = |code: &str| -> Vec<String> {
        [
            crate::domain::Level::Community,
            crate::domain::Level::Township,
            crate::domain::Level::County,
        ]
        .iter()
        .filter_map(|l| code.get(..l.code_len()).filter(|c| *c != code))
        .filter_map(|c| snapshot.region(c).map(|r| r.name.clone()))
        .collect()
    };
    let mut hits: Vec<SearchHit> = snapshot
        .locator
        .grids()
        .iter()
        .filter(|g| matches(&g.id, g.name.as_deref()))
        .take(max)
        .map(|g| SearchHit {
            code: g.id.clone(),
            name: g.name.clone(),
            kind: "grid".into(),
            context: context_of(&g.id),
            bbox: bbox_of(&g.boundary),
        })
        .collect();
    let room = max - hits.len();
    hits.extend(
        snapshot
            .regions
            .iter()
            .filter(|r| matches(&r.code, Some(&r.name)))
            .take(room)
            .map(|r| SearchHit {
                code: r.code.clone(),
                name: Some(r.name.clone()),
                kind: r.level.as_str().to_string(),
                context: context_of(&r.code),
                bbox: r.boundary.as_ref().and_then(bbox_of),
            }),
    );
    Ok(Json(hits))
}

/// What a web map needs to start: the area to show and the basemap, if one is set.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapConfig {
    /// `[min lon, min lat, max lon, max lat]` of the regions (or of China when empty).
    pub bounds: [f64; 4],
    /// A raster XYZ basemap (`basemap_url`), or none: the regions are the context.
    #[schema(value_type = Option<Object>)]
    pub basemap: Option<Value>,
    /// Each tile layer's TileJSON (`/tiles/{layer}.json`), by layer name.
    pub tilejson: std::collections::BTreeMap<&'static str, String>,
}

/// The map's starting area and basemap.
#[utoipa::path(get, path = "/v1/public/map-config", tag = "public",
    responses((status = 200, body = MapConfig)))]
pub async fn map_config(State(state): State<AppState>) -> Json<MapConfig> {
    let snapshot = state.live.snapshot();
    let mut bounds = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for b in snapshot
        .regions
        .iter()
        .filter_map(|r| r.boundary.as_ref().and_then(bbox_of))
    {
        bounds = [
            bounds[0].min(b[0]),
            bounds[1].min(b[1]),
            bounds[2].max(b[2]),
            bounds[3].max(b[3]),
        ];
    }
    if bounds[0] > bounds[2] {
        bounds = [73.5, 18.0, 135.0, 53.5];
    }
    let s = &state.settings;
    let basemap = (!s.basemap_url.is_empty()).then(
        || serde_json::json!({"tiles": [s.basemap_url], "attribution": s.basemap_attribution}),
    );
    let tilejson = ["grids", "communities", "townships", "counties"]
        .into_iter()
        .map(|layer| (layer, format!("/tiles/{layer}.json")))
        .collect();
    Json(MapConfig {
        bounds,
        basemap,
        tilejson,
    })
}
