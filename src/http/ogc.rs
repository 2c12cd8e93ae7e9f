//! OGC API – Features, Part 1 Core and Part 2 CRS, under `/ogc`: the boundary
//! collections (grids; communities/villages, townships, counties), public because Art. 6
//! publishes grid scopes, and carrying no personal data. Links have no format suffixes
//! (QGIS and GDAL follow them as they are).

use super::{ApiError, AppState};
use crate::domain::{Grid, Level};
use crate::io::geojson::geometry_json;
use crate::spatial::geom;
use crate::store::{GridVersion, RegionRecord};
use crate::workflow::live::Snapshot;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use geo_types::{Coord, MultiPolygon, Rect};
use serde::Deserialize;
use serde_json::{Value, json};

const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
const EPSG4490: &str = "http://www.opengis.net/def/crs/EPSG/0/4490";
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/conformance", get(conformance))
        .route("/collections", get(collections))
        .route("/collections/{id}", get(collection))
        .route("/collections/{id}/items", get(items))
        .route("/collections/{id}/items/{fid}", get(item))
}

/// The collections, and what each serves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Grids,
    Regions(Level),
}

const COLLECTIONS: [(&str, Kind, &str, &str); 4] = [
    (
        "grids",
        Kind::Grids,
        "Grids (网格)",
        "Social-governance grids, comprehensive and dedicated, with their 15-digit codes",
    ),
    (
        "communities",
        Kind::Regions(Level::Community),
        "Communities and villages (社区/村)",
        "The units grids tile",
    ),
    (
        "townships",
        Kind::Regions(Level::Township),
        "Townships and sub-districts (乡镇/街道)",
        "Township-level divisions",
    ),
    (
        "counties",
        Kind::Regions(Level::County),
        "Counties and districts (区/县)",
        "County-level divisions",
    ),
];

fn kind_of(id: &str) -> Result<(Kind, &'static str, &'static str), ApiError> {
    COLLECTIONS
        .iter()
        .find(|(cid, ..)| *cid == id)
        .map(|&(_, k, t, d)| (k, t, d))
        .ok_or_else(|| ApiError::not_found(format!("no collection {id:?}")))
}

/// The service's own address as the client used it (for absolute links).
fn base(headers: &HeaderMap, state: &AppState) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| state.settings.listen.to_string());
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|_| !state.proxies.is_empty())
        .unwrap_or("http");
    format!("{scheme}://{host}/ogc")
}

fn link(href: String, rel: &str, kind: &str, title: &str) -> Value {
    json!({"href": href, "rel": rel, "type": kind, "title": title})
}

/// The landing page: links to the API definition, conformance and the collections.
#[utoipa::path(get, path = "/ogc", tag = "ogc", responses((status = 200, description = "landing page")))]
pub async fn landing(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let b = base(&headers, &state);
    let root = b.trim_end_matches("/ogc");
    Json(json!({
        "title": "wangge — social-governance grids",
        "description": "Grid boundaries and the administrative divisions they tile (OGC API – Features)",
        "links": [
            link(b.clone(), "self", "application/json", "This document"),
            link(format!("{root}/openapi.json"), "service-desc", "application/vnd.oai.openapi+json;version=3.1", "The API definition"),
            link(format!("{root}/docs"), "service-doc", "text/html", "The API documentation"),
            link(format!("{b}/conformance"), "conformance", "application/json", "Conformance classes"),
            link(format!("{b}/collections"), "data", "application/json", "The collections"),
        ]
    }))
}

/// The conformance classes implemented.
#[utoipa::path(get, path = "/ogc/conformance", tag = "ogc", responses((status = 200, description = "conformsTo")))]
pub async fn conformance() -> Json<Value> {
    Json(json!({"conformsTo": [
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    ]}))
}

/// Bounds of the current features of a collection.
fn extent(state: &AppState, kind: Kind) -> Option<Rect<f64>> {
    let snapshot = state.live.snapshot();
    let rects: Vec<Rect<f64>> = match kind {
        Kind::Grids => snapshot
            .locator
            .grids()
            .iter()
            .filter_map(|g| geom::bounds(&g.boundary))
            .collect(),
        Kind::Regions(level) => snapshot
            .regions
            .iter()
            .filter(|r| r.level == level)
            .filter_map(|r| r.boundary.as_ref().and_then(geom::bounds))
            .collect(),
    };
    geom::bounds_of(rects.iter().flat_map(|r| [r.min(), r.max()]))
}

fn collection_doc(state: &AppState, b: &str, id: &str) -> Result<Value, ApiError> {
    let (kind, title, description) = kind_of(id)?;
    let bbox = extent(state, kind)
        .map(|r| json!([[r.min().x, r.min().y, r.max().x, r.max().y]]))
        .unwrap_or(json!([[-180.0, -90.0, 180.0, 90.0]]));
    let temporal = match kind {
        Kind::Grids => {
            json!({"interval": [[null, null]], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"})
        }
        Kind::Regions(_) => Value::Null,
    };
    let mut extent = json!({"spatial": {"bbox": bbox, "crs": CRS84}});
    if !temporal.is_null() {
        extent["temporal"] = temporal;
    }
    Ok(json!({
        "id": id,
        "title": title,
        "description": description,
        "itemType": "feature",
        "extent": extent,
        "crs": [CRS84, EPSG4490],
        "storageCrs": EPSG4490,
        "links": [
            link(format!("{b}/collections/{id}"), "self", "application/json", title),
            link(format!("{b}/collections/{id}/items"), "items", "application/geo+json", "The features"),
        ]
    }))
}

/// The boundary collections, with extents and CRSs.
#[utoipa::path(get, path = "/ogc/collections", tag = "ogc", responses((status = 200, description = "collections")))]
pub async fn collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let b = base(&headers, &state);
    let list: Result<Vec<Value>, ApiError> = COLLECTIONS
        .iter()
        .map(|(id, ..)| collection_doc(&state, &b, id))
        .collect();
    Ok(Json(json!({
        "links": [link(format!("{b}/collections"), "self", "application/json", "The collections")],
        "crs": [CRS84, EPSG4490],
        "collections": list?,
    })))
}

/// One collection.
#[utoipa::path(get, path = "/ogc/collections/{id}", tag = "ogc", params(("id" = String, Path, description = "grids, communities, townships or counties")), responses((status = 200, description = "collection"), (status = 404, description = "no such collection")))]
pub async fn collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(collection_doc(&state, &base(&headers, &state), &id)?))
}

#[derive(Debug, Deserialize)]
pub struct ItemsQuery {
    bbox: Option<String>,
    #[serde(rename = "bbox-crs")]
    bbox_crs: Option<String>,
    crs: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    datetime: Option<String>,
}

/// Output or bbox CRS: false for CRS84 (lon, lat), true for EPSG:4490 (lat, lon).
fn lat_first(crs: Option<&str>, parameter: &str) -> Result<bool, ApiError> {
    match crs {
        None | Some(CRS84) => Ok(false),
        Some(EPSG4490) => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{parameter} {other:?} is not supported: use {CRS84} or {EPSG4490}"
        ))
        .with("parameter", parameter.into())),
    }
}

fn parse_bbox(s: &str, lat_first: bool) -> Result<Rect<f64>, ApiError> {
    let v: Result<Vec<f64>, _> = s.split(',').map(|x| x.trim().parse::<f64>()).collect();
    let v = v.map_err(|_| ApiError::bad_request(format!("bbox {s:?} is not a list of numbers")))?;
    let (a, b, c, d) = match v.as_slice() {
        [a, b, c, d] | [a, b, _, c, d, _] => (*a, *b, *c, *d),
        _ => return Err(ApiError::bad_request("bbox needs 4 (or 6) numbers")),
    };
    let (x0, y0, x1, y1) = if lat_first {
        (b, a, d, c)
    } else {
        (a, b, c, d)
    };
    if !(x0 <= x1 && y0 <= y1) {
        return Err(ApiError::bad_request(format!(
            "bbox {s:?}: the lower corner must come first"
        )));
    }
    Ok(Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 }))
}

fn parse_count(s: Option<&str>, name: &str, default: usize) -> Result<usize, ApiError> {
    match s {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| {
            ApiError::bad_request(format!("{name} {s:?} is not a non-negative integer"))
                .with("parameter", name.into())
        }),
    }
}

/// `datetime` as a date: an instant (`2026-06-01`, `2026-06-01T08:00:00Z`); intervals are
/// answered for their end.
fn parse_datetime(s: &str) -> Result<Option<NaiveDate>, ApiError> {
    let instant = s.rsplit('/').next().unwrap_or(s);
    if instant.is_empty() || instant == ".." {
        return Ok(None);
    }
    let date = instant.get(..10).unwrap_or(instant);
    date.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "datetime {s:?} is not an RFC 3339 date or date-time"
        ))
        .with("parameter", "datetime".into())
    })
}

/// The date to read versions of, when `datetime` names a day before today; today and
/// later are the current grids (the snapshot).
fn past_date(datetime: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    Ok(match datetime {
        Some(s) => parse_datetime(s)?,
        None => None,
    }
    .filter(|d| *d < crate::domain::today_in_china()))
}

fn swap_axes(v: &mut Value) {
    match v {
        Value::Array(items) if items.len() == 2 && items.iter().all(Value::is_number) => {
            items.swap(0, 1)
        }
        Value::Array(items) => items.iter_mut().for_each(swap_axes),
        _ => {}
    }
}

/// A feature ready to page through; borrowed from the snapshot where it can be, so a
/// page of 10 out of 100 000 grids copies 10 geometries, not all of them.
enum Item<'a> {
    Current(&'a Grid),
    Version(GridVersion),
    Region(&'a RegionRecord),
}

impl Item<'_> {
    fn id(&self) -> &str {
        match self {
            Item::Current(g) => &g.id,
            Item::Version(v) => &v.code,
            Item::Region(r) => &r.code,
        }
    }

    fn boundary(&self) -> Option<&MultiPolygon<f64>> {
        match self {
            Item::Current(g) => Some(&g.boundary),
            Item::Version(v) => Some(&v.boundary),
            Item::Region(r) => r.boundary.as_ref(),
        }
    }

    fn properties(&self) -> Value {
        match self {
            Item::Current(g) => json!({
                "code": g.id, "name": g.name, "layer": g.layer, "community_code": g.parent,
                "households": g.properties.get("households"),
            }),
            Item::Version(v) => json!({
                "code": v.code, "name": v.name, "layer": v.layer, "community_code": v.parent_code,
                "households": v.households, "valid_from": v.valid_from, "valid_to": v.valid_to,
            }),
            Item::Region(r) => json!({
                "code": r.code, "name": r.name, "level": r.level, "parent_code": r.parent_code,
            }),
        }
    }
}

fn feature(item: &Item, lat_first: bool, b: &str, collection: &str) -> Value {
    let mut geometry = item
        .boundary()
        .map(|mp| geometry_json(&geo_types::Geometry::MultiPolygon(mp.clone())))
        .unwrap_or(Value::Null);
    if lat_first && let Some(c) = geometry.get_mut("coordinates") {
        swap_axes(c);
    }
    let id = item.id();
    json!({
        "type": "Feature",
        "id": id,
        "geometry": geometry,
        "properties": item.properties(),
        "links": [
            link(format!("{b}/collections/{collection}/items/{id}"), "self", "application/geo+json", "This feature"),
            link(format!("{b}/collections/{collection}"), "collection", "application/json", "The collection"),
        ],
    })
}

async fn load_items<'a>(
    state: &AppState,
    snapshot: &'a Snapshot,
    kind: Kind,
    date: Option<NaiveDate>,
) -> Result<Vec<Item<'a>>, ApiError> {
    Ok(match (kind, date) {
        (Kind::Grids, None) => snapshot.locator.grids().iter().map(Item::Current).collect(),
        (Kind::Grids, Some(date)) => state
            .app
            .grids_on(date)
            .await?
            .into_iter()
            .map(Item::Version)
            .collect(),
        (Kind::Regions(level), _) => snapshot
            .regions
            .iter()
            .filter(|r| r.level == level && r.boundary.is_some())
            .map(Item::Region)
            .collect(),
    })
}

fn geojson_response(body: Value, lat_first: bool) -> Response {
    let crs = if lat_first { EPSG4490 } else { CRS84 };
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("<{crs}>")) {
        r.headers_mut().insert("content-crs", v);
    }
    r
}

/// The query string with `offset` replaced.
fn with_offset(raw: Option<&str>, offset: usize) -> String {
    let mut parts: Vec<String> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("offset="))
        .map(str::to_string)
        .collect();
    parts.push(format!("offset={offset}"));
    parts.join("&")
}

/// Features of a collection, a page at a time (`next` links).
#[utoipa::path(get, path = "/ogc/collections/{id}/items", tag = "ogc",
    params(
        ("id" = String, Path, description = "grids, communities, townships or counties"),
        ("bbox" = Option<String>, Query, description = "minx,miny,maxx,maxy in bbox-crs"),
        ("bbox-crs" = Option<String>, Query, description = "CRS84 (default) or EPSG:4490 URI"),
        ("crs" = Option<String>, Query, description = "output CRS: CRS84 (default) or EPSG:4490 URI (latitude first)"),
        ("limit" = Option<usize>, Query, description = "1..10000, default 10"),
        ("offset" = Option<usize>, Query, description = "features to skip"),
        ("datetime" = Option<String>, Query, description = "grids valid at this date (RFC 3339)"),
    ),
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json"), (status = 400, description = "bad parameter")))]
pub async fn items(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
    RawQuery(raw): RawQuery,
    client: super::extract::ClientAddr,
) -> Result<Response, ApiError> {
    let (kind, ..) = kind_of(&id)?;
    let out_lat_first = lat_first(q.crs.as_deref(), "crs")?;
    let bbox = match &q.bbox {
        Some(s) => Some(parse_bbox(
            s,
            lat_first(q.bbox_crs.as_deref(), "bbox-crs")?,
        )?),
        None => None,
    };
    let limit = parse_count(q.limit.as_deref(), "limit", DEFAULT_LIMIT)?.clamp(1, MAX_LIMIT);
    // A large page costs its share: one unit more for every 100 features asked.
    if limit >= 100 {
        super::charge(
            &state.ogc_limiter,
            client.0,
            u32::try_from(limit / 100).unwrap_or(u32::MAX),
            "OGC API features",
        )?;
    }
    let offset = parse_count(q.offset.as_deref(), "offset", 0)?;
    let date = past_date(q.datetime.as_deref())?;
    if date.is_some() {
        super::tiles::historic_limit(&state, &client)?;
    }
    let snapshot = state.live.snapshot();
    let all = load_items(&state, &snapshot, kind, date).await?;
    let matched: Vec<&Item> = all
        .iter()
        .filter(|it| match (&bbox, it.boundary().and_then(geom::bounds)) {
            (Some(b), Some(r)) => {
                r.min().x <= b.max().x
                    && b.min().x <= r.max().x
                    && r.min().y <= b.max().y
                    && b.min().y <= r.max().y
            }
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    let b = base(&headers, &state);
    let page: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|it| feature(it, out_lat_first, &b, &id))
        .collect();
    let here = format!("{b}/collections/{id}/items");
    let mut links = vec![
        link(
            format!("{here}?{}", with_offset(raw.as_deref(), offset)),
            "self",
            "application/geo+json",
            "This page",
        ),
        link(
            format!("{b}/collections/{id}"),
            "collection",
            "application/json",
            "The collection",
        ),
    ];
    if offset + page.len() < matched.len() {
        links.push(link(
            format!(
                "{here}?{}",
                with_offset(raw.as_deref(), offset + page.len())
            ),
            "next",
            "application/geo+json",
            "Next page",
        ));
    }
    if offset > 0 {
        links.push(link(
            format!(
                "{here}?{}",
                with_offset(raw.as_deref(), offset.saturating_sub(limit))
            ),
            "prev",
            "application/geo+json",
            "Previous page",
        ));
    }
    Ok(geojson_response(
        json!({
            "type": "FeatureCollection",
            "timeStamp": crate::domain::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "numberMatched": matched.len(),
            "numberReturned": page.len(),
            "features": page,
            "links": links,
        }),
        out_lat_first,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ItemQuery {
    crs: Option<String>,
    datetime: Option<String>,
}

/// One feature.
#[utoipa::path(get, path = "/ogc/collections/{id}/items/{fid}", tag = "ogc",
    params(("id" = String, Path), ("fid" = String, Path, description = "grid or region code"),
        ("crs" = Option<String>, Query), ("datetime" = Option<String>, Query)),
    responses((status = 200, description = "GeoJSON Feature", content_type = "application/geo+json"), (status = 404, description = "no such feature")))]
pub async fn item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, fid)): Path<(String, String)>,
    Query(q): Query<ItemQuery>,
    client: super::extract::ClientAddr,
) -> Result<Response, ApiError> {
    let (kind, ..) = kind_of(&id)?;
    let out_lat_first = lat_first(q.crs.as_deref(), "crs")?;
    let date = past_date(q.datetime.as_deref())?;
    if date.is_some() {
        super::tiles::historic_limit(&state, &client)?;
    }
    let snapshot = state.live.snapshot();
    let all = load_items(&state, &snapshot, kind, date).await?;
    let it = all
        .iter()
        .find(|it| it.id() == fid)
        .ok_or_else(|| ApiError::not_found(format!("no feature {fid:?} in {id}")))?;
    Ok(geojson_response(
        feature(it, out_lat_first, &base(&headers, &state), &id),
        out_lat_first,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bboxes_read_in_either_axis_order() {
        let lonlat = parse_bbox("117,36,118,37", false).unwrap();
        let latlon = parse_bbox("36,117,37,118", true).unwrap();
        assert_eq!(lonlat, latlon);
        assert!(parse_bbox("118,36,117,37", false).is_err());
        assert!(parse_bbox("1,2,3", false).is_err());
    }

    #[test]
    fn paging_links_keep_the_other_parameters() {
        assert_eq!(
            with_offset(Some("limit=5&offset=10&bbox=1,2,3,4"), 15),
            "limit=5&bbox=1,2,3,4&offset=15"
        );
        assert_eq!(with_offset(None, 0), "offset=0");
    }

    #[test]
    fn epsg_4490_output_puts_latitude_first() {
        let mut c = json!([[[[118.0, 37.0], [118.1, 37.0]]]]);
        swap_axes(&mut c);
        assert_eq!(c, json!([[[[37.0, 118.0], [37.0, 118.1]]]]));
    }
}
