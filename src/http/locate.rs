//! `GET /v1/locate` (one point, everything a dispatcher needs) and `POST /v1/locate`
//! (batches of up to `max_batch_points`, answered in input order).

use super::extract::Caller;
use super::{ApiError, AppState};
use crate::auth::{Action, mask_name, mask_phone};
use crate::domain::{Layer, Level, RegionRef};
use crate::spatial::LocateOptions;
use crate::spatial::crs::CoordSys;
use crate::store::Member;
use crate::workflow::live::{Snapshot, ancestors_of};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use geo_types::Coord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/locate", get(locate_one).post(locate_batch))
}

/// Where a point is asked for.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LocateQuery {
    /// Longitude.
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
    /// `wgs84` (default), `cgcs2000`, `gcj02` (Amap, Tencent) or `bd09` (Baidu).
    pub coord_sys: Option<String>,
    /// A past date (YYYY-MM-DD): the grid that covered the point then.
    pub as_of: Option<NaiveDate>,
}

/// A grid in an answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GridSummary {
    /// 15-digit grid code.
    pub code: String,
    pub name: Option<String>,
    pub layer: Layer,
}

/// A community/village, township or county.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ancestor {
    pub level: Level,
    pub code: String,
    pub name: Option<String>,
}

/// The member to call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberContact {
    pub name: String,
    pub role: String,
    pub phone: Option<String>,
}

/// The nearest other grid, for points near a boundary.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NeighbourGrid {
    pub grid: GridSummary,
    pub distance_m: f64,
}

/// Which boundaries answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoundariesUsed {
    /// Grows with every activated plan.
    pub version: i64,
    /// The date asked for, when not today.
    pub as_of: Option<NaiveDate>,
    pub loaded_at: DateTime<Utc>,
}

/// The answer for one point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocateAnswer {
    /// The point in CGCS2000/WGS84 lon/lat.
    pub point: [f64; 2],
    /// The comprehensive grid containing the point (the nearest one when `outside`).
    pub grid: Option<GridSummary>,
    /// Community/village, township, county; nearest first.
    pub ancestors: Vec<Ancestor>,
    pub member_on_duty: Option<MemberContact>,
    pub supervision_phone: Option<String>,
    /// Within the near-boundary distance of another grid: a dispatcher should confirm.
    pub near_boundary: bool,
    pub boundary_distance_m: Option<f64>,
    pub neighbour: Option<NeighbourGrid>,
    /// In no grid; `grid` is the nearest within the limit, if any.
    pub outside: bool,
    /// Dedicated grids (parks, schools, markets…) that also contain the point.
    pub dedicated: Vec<GridSummary>,
    pub boundaries: BoundariesUsed,
}

pub fn coord_sys(name: Option<&str>) -> Result<CoordSys, ApiError> {
    match name {
        None => Ok(CoordSys::Wgs84),
        Some(s) => s
            .parse()
            .map_err(|e: crate::spatial::crs::UnknownCoordSys| {
                ApiError::bad_request(crate::domain::Msg::of(&e))
                    .with("parameter", "coord_sys".into())
            }),
    }
}

pub fn check_point(lon: f64, lat: f64) -> Result<(), ApiError> {
    if !(lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-90.0..=90.0).contains(&lat))
    {
        return Err(ApiError::bad_request(crate::msg!(
            "({lon}, {lat}) is not a longitude/latitude pair",
            "({lon}, {lat}) 不是经纬度"
        )));
    }
    Ok(())
}

pub fn summary(code: &str, name: Option<&str>, layer: Layer) -> GridSummary {
    GridSummary {
        code: code.to_string(),
        name: name.map(str::to_string),
        layer,
    }
}

pub fn ancestors(refs: &[RegionRef]) -> Vec<Ancestor> {
    refs.iter()
        .map(|r| Ancestor {
            level: r.level,
            code: r.code.clone(),
            name: r.name.clone(),
        })
        .collect()
}

/// A member's contact as published on the grid card: masked on request of the settings
/// or for callers who may not read personal data.
pub fn contact(m: &Member, mask: bool) -> MemberContact {
    MemberContact {
        name: if mask {
            mask_name(&m.name)
        } else {
            m.name.clone()
        },
        role: m.role.as_str().to_string(),
        phone: m
            .phone
            .as_deref()
            .map(|p| if mask { mask_phone(p) } else { p.to_string() }),
    }
}

/// Everything about one point from the current snapshot.
pub fn answer(
    snapshot: &Snapshot,
    p: Coord<f64>,
    cs: CoordSys,
    options: &LocateOptions,
    mask: impl Fn(&str) -> bool,
) -> LocateAnswer {
    let located = snapshot.locator.locate(p, cs, options);
    let wgs = cs.to_wgs84(p);
    let code = located.grid.as_ref().map(|g| g.id.clone());
    LocateAnswer {
        point: [wgs.x, wgs.y],
        grid: located
            .grid
            .as_ref()
            .map(|g| summary(&g.id, g.name.as_deref(), g.layer)),
        ancestors: ancestors(&located.ancestors),
        member_on_duty: code.as_deref().and_then(|c| {
            snapshot
                .on_duty(c, crate::domain::now())
                .map(|m| contact(m, mask(c)))
        }),
        supervision_phone: code
            .as_deref()
            .and_then(|c| snapshot.supervision_phone(c).map(str::to_string)),
        near_boundary: located.near_boundary,
        boundary_distance_m: located.boundary_distance_m,
        neighbour: located.neighbour.map(|n| NeighbourGrid {
            grid: summary(&n.grid.id, n.grid.name.as_deref(), n.grid.layer),
            distance_m: n.distance_m,
        }),
        outside: located.outside,
        dedicated: located
            .dedicated
            .iter()
            .map(|g| summary(&g.id, g.name.as_deref(), g.layer))
            .collect(),
        boundaries: BoundariesUsed {
            version: snapshot.version,
            as_of: None,
            loaded_at: snapshot.loaded_at,
        },
    }
}

pub fn locate_options(state: &AppState) -> LocateOptions {
    state.app.locate_options()
}

/// The grid, its ancestors, the member on duty and the supervision phone of one point.
#[utoipa::path(get, path = "/v1/locate", tag = "locate", params(LocateQuery),
    security(("bearer" = [])),
    responses((status = 200, body = LocateAnswer), (status = 400, description = "bad point or coord_sys"), (status = 401, description = "no token")))]
pub async fn locate_one(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LocateQuery>,
) -> Result<Json<LocateAnswer>, ApiError> {
    if !caller.0.may_somewhere(Action::Locate) {
        return Err(ApiError::forbidden(crate::msg!(
            "{} may not locate",
            "{} 无权查询位置",
            caller.0.name
        )));
    }
    check_point(q.lon, q.lat)?;
    let cs = coord_sys(q.coord_sys.as_deref())?;
    let snapshot = state.live.snapshot();
    let p = Coord { x: q.lon, y: q.lat };
    let mask = |code: &str| !caller.0.may(Action::ReadPersonal, code);
    match q.as_of {
        Some(date) if date < crate::domain::today_in_china() => {
            Ok(Json(historic(&state, &snapshot, p, cs, date).await?))
        }
        _ => Ok(Json(answer(
            &snapshot,
            p,
            cs,
            &locate_options(&state),
            mask,
        ))),
    }
}

/// The answer from the stored versions valid on `date` (no proximity flags or members:
/// those describe today).
async fn historic(
    state: &AppState,
    snapshot: &Snapshot,
    p: Coord<f64>,
    cs: CoordSys,
    date: NaiveDate,
) -> Result<LocateAnswer, ApiError> {
    let wgs = cs.to_wgs84(p);
    let version = state.app.grid_on(wgs, date, Layer::Comprehensive).await?;
    let ancestors = version
        .as_ref()
        .map(|v| {
            ancestors(&ancestors_of(&v.code, |c| {
                snapshot.region(c).map(|r| r.name.clone())
            }))
        })
        .unwrap_or_default();
    Ok(LocateAnswer {
        point: [wgs.x, wgs.y],
        grid: version
            .as_ref()
            .map(|v| summary(&v.code, v.name.as_deref(), v.layer)),
        ancestors,
        member_on_duty: None,
        supervision_phone: None,
        near_boundary: false,
        boundary_distance_m: None,
        neighbour: None,
        outside: version.is_none(),
        dedicated: Vec::new(),
        boundaries: BoundariesUsed {
            version: snapshot.version,
            as_of: Some(date),
            loaded_at: snapshot.loaded_at,
        },
    })
}

/// Options of a batch.
#[derive(Debug, Deserialize, IntoParams)]
pub struct BatchQuery {
    /// Coordinate system of every point.
    pub coord_sys: Option<String>,
}

/// One point of a batch answer; false flags are left out.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem<'a> {
    /// Grid code (its first 12 digits are the community's), or null when the point is
    /// in no grid and none is near.
    pub grid: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub near_boundary: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outside: bool,
}

/// A batch answer, in input order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer<'a> {
    pub count: usize,
    pub boundaries_version: i64,
    pub results: Vec<BatchItem<'a>>,
}

/// Reads `[[lon,lat],…]`, `[{"lon":…,"lat":…},…]` or a FeatureCollection of points.
pub fn parse_batch(body: &[u8], max: usize) -> Result<Vec<Coord<f64>>, ApiError> {
    if let Ok(pairs) = serde_json::from_slice::<Vec<[f64; 2]>>(body) {
        return check_batch(
            pairs.into_iter().map(|[x, y]| Coord { x, y }).collect(),
            max,
        );
    }
    #[derive(Deserialize)]
    struct LonLat {
        lon: f64,
        lat: f64,
    }
    if let Ok(objects) = serde_json::from_slice::<Vec<LonLat>>(body) {
        return check_batch(
            objects
                .into_iter()
                .map(|o| Coord { x: o.lon, y: o.lat })
                .collect(),
            max,
        );
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(crate::msg!(
            "the body is not JSON: {e}",
            "请求体不是 JSON：{e}"
        ))
    })?;
    let features = doc
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request(crate::msg!("expected an array of [lon, lat], of {{\"lon\", \"lat\"}} objects, or a GeoJSON FeatureCollection of points", "应为 [经度, 纬度] 数组、{{\"lon\", \"lat\"}} 对象数组，或由点组成的 GeoJSON FeatureCollection")))?;
    let mut points = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        let c = f
            .pointer("/geometry/coordinates")
            .and_then(Value::as_array)
            .filter(|_| f.pointer("/geometry/type").and_then(Value::as_str) == Some("Point"))
            .and_then(|c| {
                Some(Coord {
                    x: c.first()?.as_f64()?,
                    y: c.get(1)?.as_f64()?,
                })
            })
            .ok_or_else(|| {
                ApiError::bad_request(crate::msg!(
                    "feature #{i} is not a Point",
                    "要素 #{i} 不是点（Point）"
                ))
                .with(
                    "feature",
                    serde_json::json!({"index": i, "id": f.get("id")}),
                )
            })?;
        points.push(c);
    }
    check_batch(points, max)
}

fn check_batch(points: Vec<Coord<f64>>, max: usize) -> Result<Vec<Coord<f64>>, ApiError> {
    if points.len() > max {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Too many points",
            crate::msg!(
                "{} points; at most {max} per request",
                "{} 个点；每次请求最多 {max} 个",
                points.len()
            ),
        ));
    }
    for (i, p) in points.iter().enumerate() {
        check_point(p.x, p.y).map_err(|e| e.with("index", i.into()))?;
    }
    Ok(points)
}

/// Locates many points at once, answered in input order.
#[utoipa::path(post, path = "/v1/locate", tag = "locate", params(BatchQuery),
    security(("bearer" = [])),
    request_body(content = Value, description = "[[lon,lat],…], [{\"lon\":…,\"lat\":…},…] or a GeoJSON FeatureCollection of points"),
    responses((status = 200, body = BatchAnswer), (status = 400, description = "bad points"), (status = 413, description = "too many points")))]
pub async fn locate_batch(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<BatchQuery>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    if !caller.0.may_somewhere(Action::Locate) {
        return Err(ApiError::forbidden(crate::msg!(
            "{} may not locate",
            "{} 无权查询位置",
            caller.0.name
        )));
    }
    let cs = coord_sys(q.coord_sys.as_deref())?;
    let max = state.settings.max_batch_points;
    let options = LocateOptions {
        boundary_distance: false,
        ..locate_options(&state)
    };
    let snapshot = state.live.snapshot();
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let points = parse_batch(&body, max)?;
        let briefs = snapshot
            .locator
            .locate_many_brief_parallel(&points, cs, &options);
        let grids = snapshot.locator.grids();
        let answer = BatchAnswer {
            count: briefs.len(),
            boundaries_version: snapshot.version,
            results: briefs
                .iter()
                .map(|b| BatchItem {
                    grid: b
                        .grid
                        .and_then(|i| grids.get(i as usize))
                        .map(|g| g.id.as_str()),
                    near_boundary: b.near_boundary,
                    outside: b.outside,
                })
                .collect(),
        };
        serde_json::to_vec(&answer)
            .map_err(|e| ApiError::internal(crate::domain::Msg::verbatim(e.to_string())))
    })
    .await
    .map_err(|e| {
        // A panic's words are for the log, as with any handler's (see `panicked`).
        tracing::error!(error = %e, "a batch lookup panicked");
        ApiError::internal(crate::msg!(
            "the batch worker failed; the failure is logged",
            "批量查询的工作线程出错；错误已记录"
        ))
    })??;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
