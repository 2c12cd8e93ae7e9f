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
}

pub(super) fn limit(state: &AppState, client: &ClientAddr) -> Result<(), ApiError> {
    state.public_limiter.check_key(&client.0).map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!(
                "at most {} requests a minute from one address on the public endpoints",
                state.settings.public_rate_per_minute
            ),
        )
    })
}

fn card_of(state: &AppState, snapshot: &Snapshot, code: &str) -> Result<GridCard, ApiError> {
    let g = snapshot
        .grid(code)
        .ok_or_else(|| ApiError::not_found(format!("no current grid {code}")))?;
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
        .ok_or_else(|| ApiError::not_found("the point lies in no grid"))?;
    Ok(Json(card_of(&state, &snapshot, &code)?))
}
