//! OGC API – Features, Part 1 Core and Part 2 CRS, under `/ogc`: the boundary
//! collections (grids; communities/villages, townships, counties), public because Art. 6
//! publishes grid scopes, and carrying no personal data. Links have no format suffixes
//! (QGIS and GDAL follow them as they are).

use super::extract::Origin;
use super::{ApiError, AppState};
use crate::domain::{Grid, Level};
use crate::io::geojson::geometry_json;
use crate::spatial::geom;
use crate::store::{GridVersion, RegionRecord, Validity};
use crate::workflow::live::Snapshot;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use geo_types::{Coord, MultiPolygon, Rect};
use serde_json::{Value, json};
use std::sync::Arc;

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
        .route("/collections/{id}/queryables", get(queryables))
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
        .ok_or_else(|| ApiError::not_found(crate::msg!("no collection {id:?}", "没有集合 {id:?}")))
}

/// The OGC API's own address as the client reaches it (for absolute links).
fn base(origin: &Origin) -> String {
    format!("{}/ogc", origin.0)
}

fn link(href: String, rel: &str, kind: &str, title: &str) -> Value {
    json!({"href": href, "rel": rel, "type": kind, "title": title})
}

/// The landing page: links to the API definition, conformance and the collections.
#[utoipa::path(get, path = "/ogc", tag = "ogc", operation_id = "ogc_landing", params(("f" = Option<String>, Query, description = "json (the only format)")), responses((status = 200, description = "landing page")))]
pub async fn landing(
    origin: Origin,
    Query(pairs): Query<QueryPairs>,
) -> Result<Json<Value>, ApiError> {
    known_parameters(&pairs, &COMMON_PARAMETERS)?;
    let b = base(&origin);
    let root = b.trim_end_matches("/ogc");
    Ok(Json(json!({
        "title": "wangge — social-governance grids",
        "description": "Grid boundaries and the administrative divisions they tile (OGC API – Features)",
        "links": [
            link(b.clone(), "self", "application/json", "This document"),
            link(format!("{root}/openapi.json"), "service-desc", "application/vnd.oai.openapi+json;version=3.1", "The API definition"),
            link(format!("{root}/openapi-3.0.json"), "service-desc", "application/vnd.oai.openapi+json;version=3.0", "The API definition (OpenAPI 3.0)"),
            link(format!("{root}/docs"), "service-doc", "text/html", "The API documentation"),
            link(format!("{b}/conformance"), "conformance", "application/json", "Conformance classes"),
            link(format!("{b}/collections"), "data", "application/json", "The collections"),
            link(format!("{root}/tiles/grids.json"), "related", "application/json", "Vector tiles of the grids (TileJSON 3.0)"),
            link(format!("{root}/tiles/communities.json"), "related", "application/json", "Vector tiles of the communities and villages (TileJSON 3.0)"),
            link(format!("{root}/tiles/townships.json"), "related", "application/json", "Vector tiles of the townships (TileJSON 3.0)"),
            link(format!("{root}/tiles/counties.json"), "related", "application/json", "Vector tiles of the counties (TileJSON 3.0)"),
        ]
    })))
}

/// The conformance classes implemented.
#[utoipa::path(get, path = "/ogc/conformance", tag = "ogc", operation_id = "ogc_conformance", params(("f" = Option<String>, Query, description = "json (the only format)")), responses((status = 200, description = "conformsTo")))]
pub async fn conformance(Query(pairs): Query<QueryPairs>) -> Result<Json<Value>, ApiError> {
    known_parameters(&pairs, &COMMON_PARAMETERS)?;
    Ok(Json(json!({"conformsTo": [
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    ]})))
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
            link(format!("{b}/collections/{id}/queryables"), "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json", "What the features can be filtered by"),
        ]
    }))
}

/// The boundary collections, with extents and CRSs.
#[utoipa::path(get, path = "/ogc/collections", tag = "ogc", operation_id = "ogc_collections", params(("f" = Option<String>, Query, description = "json (the only format)")), responses((status = 200, description = "collections")))]
pub async fn collections(
    State(state): State<AppState>,
    origin: Origin,
    Query(pairs): Query<QueryPairs>,
) -> Result<Json<Value>, ApiError> {
    known_parameters(&pairs, &COMMON_PARAMETERS)?;
    let b = base(&origin);
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
#[utoipa::path(get, path = "/ogc/collections/{id}", tag = "ogc", operation_id = "ogc_collection", params(("id" = String, Path, description = "grids, communities, townships or counties"), ("f" = Option<String>, Query, description = "json (the only format)")), responses((status = 200, description = "collection"), (status = 404, description = "no such collection")))]
pub async fn collection(
    State(state): State<AppState>,
    origin: Origin,
    Path(id): Path<String>,
    Query(pairs): Query<QueryPairs>,
) -> Result<Json<Value>, ApiError> {
    known_parameters(&pairs, &COMMON_PARAMETERS)?;
    Ok(Json(collection_doc(&state, &base(&origin), &id)?))
}

/// The query of an OGC request as name/value pairs, in order.
pub type QueryPairs = Vec<(String, String)>;

/// What every OGC resource accepts: `f`, the format (JSON is the only one served).
const COMMON_PARAMETERS: [&str; 1] = ["f"];
/// What `items` accepts besides the queryables of its collection.
const ITEMS_PARAMETERS: [&str; 7] = [
    "bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "f",
];
/// What one feature accepts.
const ITEM_PARAMETERS: [&str; 3] = ["crs", "datetime", "f"];

/// The parameters of a request, once each, all of them known: OGC API – Features
/// Part 1 (/req/core/query-param-unknown) wants a 400 for any other, so that a client
/// that thinks it filtered learns it did not.
fn known_parameters<'q>(
    pairs: &'q [(String, String)],
    known: &[&str],
) -> Result<std::collections::BTreeMap<&'q str, &'q str>, ApiError> {
    let mut seen = std::collections::BTreeMap::new();
    let unknown: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !known.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(crate::msg!(
            "unknown query parameter{} {}: this resource takes {}",
            "未知的查询参数{0:.0} {1}：此资源接受 {2}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            known.join(", ")
        ))
        .with("parameter", unknown.join(",").into()));
    }
    for (k, v) in pairs {
        if seen.insert(k.as_str(), v.as_str()).is_some() {
            return Err(ApiError::bad_request(crate::msg!(
                "{k} is given more than once",
                "{k} 出现了不止一次"
            ))
            .with("parameter", k.as_str().into()));
        }
    }
    match seen.get("f") {
        None | Some(&("json" | "geojson")) => Ok(seen),
        Some(other) => Err(ApiError::bad_request(crate::msg!(
            "f={other:?}: this service answers JSON only (f=json)",
            "f={other:?}：本服务只返回 JSON（f=json）"
        ))
        .with("parameter", "f".into())),
    }
}

/// Output or bbox CRS: false for CRS84 (lon, lat), true for EPSG:4490 (lat, lon). Both
/// the URI and the usual short forms (`EPSG:4490`, `[EPSG:4490]`, the URN) are read.
fn lat_first(crs: Option<&str>, parameter: &str) -> Result<bool, ApiError> {
    let Some(given) = crs else {
        return Ok(false);
    };
    let bare = given
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let bare = bare
        .strip_prefix("https://")
        .map(|rest| format!("http://{rest}"))
        .unwrap_or(bare);
    match bare.as_str() {
        "http://www.opengis.net/def/crs/ogc/1.3/crs84"
        | "ogc:crs84"
        | "crs84"
        | "urn:ogc:def:crs:ogc:1.3:crs84"
        | "urn:ogc:def:crs:ogc::crs84" => Ok(false),
        "http://www.opengis.net/def/crs/epsg/0/4490"
        | "epsg:4490"
        | "urn:ogc:def:crs:epsg::4490"
        | "urn:ogc:def:crs:epsg:0:4490" => Ok(true),
        _ => Err(ApiError::bad_request(crate::msg!("{parameter} {given:?} is not supported: use {CRS84} (or OGC:CRS84) or {EPSG4490} (or EPSG:4490)", "不支持 {parameter} {given:?}：请用 {CRS84}（或 OGC:CRS84）或 {EPSG4490}（或 EPSG:4490）"
        ))
        .with("parameter", parameter.into())),
    }
}

fn parse_bbox(s: &str, lat_first: bool) -> Result<Rect<f64>, ApiError> {
    let v: Result<Vec<f64>, _> = s.split(',').map(|x| x.trim().parse::<f64>()).collect();
    let v = v.map_err(|_| {
        ApiError::bad_request(crate::msg!(
            "bbox {s:?} is not a list of numbers",
            "bbox {s:?} 不是数字列表"
        ))
    })?;
    let (a, b, c, d) = match v.as_slice() {
        [a, b, c, d] | [a, b, _, c, d, _] => (*a, *b, *c, *d),
        _ => {
            return Err(ApiError::bad_request(crate::msg!(
                "bbox needs 4 (or 6) numbers",
                "bbox 需要 4 个（或 6 个）数字"
            )));
        }
    };
    let (x0, y0, x1, y1) = if lat_first {
        (b, a, d, c)
    } else {
        (a, b, c, d)
    };
    if !(x0 <= x1 && y0 <= y1) {
        return Err(ApiError::bad_request(crate::msg!(
            "bbox {s:?}: the lower corner must come first",
            "bbox {s:?}：左下角须在前"
        )));
    }
    Ok(Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 }))
}

fn parse_count(s: Option<&str>, name: &str, default: usize) -> Result<usize, ApiError> {
    match s {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| {
            ApiError::bad_request(crate::msg!(
                "{name} {s:?} is not a non-negative integer",
                "{name} {s:?} 不是非负整数"
            ))
            .with("parameter", name.into())
        }),
    }
}

/// Which versions a `datetime` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// No `datetime`, or an instant or interval from today on: the snapshot.
    Now,
    /// Grids in force on this past day, identified by their codes.
    On(NaiveDate),
    /// Every version in force at any time in an interval reaching into the past; a
    /// grid's versions are told apart by their start (`CODE@YYYY-MM-DD`).
    During(Option<NaiveDate>, Option<NaiveDate>),
}

fn parse_day(part: &str, whole: &str) -> Result<Option<NaiveDate>, ApiError> {
    if part.is_empty() || part == ".." {
        return Ok(None);
    }
    let day = part.get(..10).unwrap_or(part);
    let rest = part.get(10..).unwrap_or("");
    let time_ok = rest.is_empty()
        || chrono::DateTime::parse_from_rfc3339(part).is_ok()
        || chrono::NaiveDateTime::parse_from_str(part, "%Y-%m-%dT%H:%M:%S").is_ok();
    match day.parse() {
        Ok(d) if time_ok => Ok(Some(d)),
        _ => Err(ApiError::bad_request(crate::msg!("datetime {whole:?} is not an RFC 3339 date, date-time or interval (start/end, `..` for an open end)", "datetime {whole:?} 不是 RFC 3339 日期、日期时间或区间（开始/结束，开放端用 `..`）"
        ))
        .with("parameter", "datetime".into())),
    }
}

/// `datetime` as an instant (`2026-06-01`, `2026-06-01T08:00:00Z`) or an interval
/// (`2026-01-01/2026-06-30`, `2026-01-01T00:00:00Z/..`, `../2026-06-30`).
fn parse_when(datetime: Option<&str>, today: NaiveDate) -> Result<When, ApiError> {
    let Some(s) = datetime else {
        return Ok(When::Now);
    };
    let Some((start, end)) = s.split_once('/') else {
        return Ok(match parse_day(s, s)? {
            Some(d) if d < today => When::On(d),
            _ => When::Now,
        });
    };
    let (from, to) = (parse_day(start, s)?, parse_day(end, s)?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request(crate::msg!(
            "datetime {s:?}: the interval ends before it starts",
            "datetime {s:?}：区间的结束早于开始"
        ))
        .with("parameter", "datetime".into()));
    }
    Ok(match from {
        Some(f) if f >= today => When::Now,
        _ => When::During(from, to),
    })
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
    /// A past version; `true` when versions of one grid may stand side by side (an
    /// interval), so its id carries its start.
    Version(&'a GridVersion, bool),
    Region(&'a RegionRecord),
}

impl Item<'_> {
    fn id(&self) -> String {
        match self {
            Item::Current(g) => g.id.clone(),
            Item::Version(v, false) => v.code.clone(),
            Item::Version(v, true) => format!("{}@{}", v.code, v.valid_from),
            Item::Region(r) => r.code.clone(),
        }
    }

    fn boundary(&self) -> Option<&MultiPolygon<f64>> {
        match self {
            Item::Current(g) => Some(&g.boundary),
            Item::Version(v, _) => Some(&v.boundary),
            Item::Region(r) => r.boundary.as_ref(),
        }
    }

    fn properties(&self) -> Value {
        match self {
            Item::Current(g) => json!({
                "code": g.id, "name": g.name, "layer": g.layer, "community_code": g.parent,
                "households": g.properties.get("households"),
            }),
            Item::Version(v, _) => json!({
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

/// Grid versions read for past dates and intervals, kept for the last few asked (per
/// boundaries version, most recently used last): a client paging through an interval
/// reads the store once, not once a page. Requests for the same versions while they
/// are being read wait for that one read; at most two reads run at once.
#[derive(Default)]
pub struct PastVersions {
    kept: std::sync::Mutex<Vec<PastRead>>,
    /// The most versions one read has returned: the estimate of what the next costs.
    largest: std::sync::atomic::AtomicUsize,
    reading: PastReaders,
}

/// One read kept: the boundaries version it was read at, what was asked, and the read
/// (done or under way).
type PastRead = (
    i64,
    Validity,
    Arc<tokio::sync::OnceCell<Arc<Vec<GridVersion>>>>,
);

struct PastReaders(tokio::sync::Semaphore);

impl Default for PastReaders {
    fn default() -> Self {
        PastReaders(tokio::sync::Semaphore::new(2))
    }
}

const PAST_VERSIONS_KEPT: usize = 8;

impl PastVersions {
    /// Drops an empty slot (its read was refused or failed).
    fn forget(&self, version: i64, validity: Validity) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|(v, w, slot)| !(*v == version && *w == validity && slot.get().is_none()));
        }
    }

    /// The slot for these versions, and whether it was already there.
    fn slot(
        &self,
        version: i64,
        validity: Validity,
    ) -> (Arc<tokio::sync::OnceCell<Arc<Vec<GridVersion>>>>, bool) {
        let Ok(mut kept) = self.kept.lock() else {
            return (Arc::default(), false);
        };
        kept.retain(|(v, ..)| *v == version);
        if let Some(i) = kept.iter().position(|(_, w, _)| *w == validity) {
            let hit = kept.remove(i);
            let slot = hit.2.clone();
            kept.push(hit);
            return (slot, true);
        }
        if kept.len() >= PAST_VERSIONS_KEPT {
            kept.remove(0);
        }
        let slot: Arc<tokio::sync::OnceCell<_>> = Arc::default();
        kept.push((version, validity, slot.clone()));
        (slot, false)
    }
}

/// The grid versions of `validity`, from the cache or the store. A read from the store
/// is charged before it starts: one reading of a past date per 2 000 versions the
/// largest read so far returned (at least the current grids; at most 20), beyond the
/// one the request already paid, so `datetime=../..` is not a cheap way to make the
/// service read its whole history again and again.
async fn past_versions(
    state: &AppState,
    client: &super::extract::ClientAddr,
    snapshot: &Snapshot,
    validity: Validity,
) -> Result<Arc<Vec<GridVersion>>, ApiError> {
    use std::sync::atomic::Ordering;
    let cache = &state.past_versions;
    let (slot, known) = cache.slot(snapshot.version, validity);
    if let Some(done) = slot.get() {
        return Ok(done.clone());
    }
    if !known {
        let estimate = cache
            .largest
            .load(Ordering::Relaxed)
            .max(snapshot.locator.grids().len());
        let extra = u32::try_from(estimate / 2000).unwrap_or(u32::MAX).min(20);
        if extra > 0
            && let Err(refused) = super::charge(
                &state.historic_limiter,
                client.0,
                extra,
                super::Limited::PastReads,
            )
        {
            // Unpaid: the next request for these versions pays again.
            cache.forget(snapshot.version, validity);
            return Err(refused);
        }
    }
    let read = slot
        .get_or_try_init(|| async {
            let _turn = cache.reading.0.acquire().await.map_err(|_| {
                ApiError::internal(crate::msg!("past reads are closed", "历史数据查询已关闭"))
            })?;
            let grids = state.app.grid_versions(validity).await?;
            cache.largest.fetch_max(grids.len(), Ordering::Relaxed);
            Ok::<_, ApiError>(Arc::new(grids))
        })
        .await;
    match read {
        Ok(read) => Ok(read.clone()),
        Err(e) => {
            cache.forget(snapshot.version, validity);
            Err(e)
        }
    }
}

/// The versions a request reads, if it reads past ones, and whether their ids carry
/// their start (`CODE@VALID_FROM`).
async fn versions_for(
    state: &AppState,
    client: &super::extract::ClientAddr,
    snapshot: &Snapshot,
    kind: Kind,
    when: When,
) -> Result<Option<(Arc<Vec<GridVersion>>, bool)>, ApiError> {
    let validity = match (kind, when) {
        (Kind::Grids, When::On(date)) => Validity::On(date),
        (Kind::Grids, When::During(from, to)) => Validity::During { from, to },
        _ => return Ok(None),
    };
    let versions = past_versions(state, client, snapshot, validity).await?;
    Ok(Some((versions, matches!(when, When::During(..)))))
}

fn load_items<'a>(
    snapshot: &'a Snapshot,
    kind: Kind,
    past: Option<&'a (Arc<Vec<GridVersion>>, bool)>,
) -> Vec<Item<'a>> {
    match (kind, past) {
        (Kind::Grids, Some((versions, versioned))) => versions
            .iter()
            .map(|v| Item::Version(v, *versioned))
            .collect(),
        (Kind::Grids, None) => snapshot.locator.grids().iter().map(Item::Current).collect(),
        (Kind::Regions(level), _) => snapshot
            .regions
            .iter()
            .filter(|r| r.level == level && r.boundary.is_some())
            .map(Item::Region)
            .collect(),
    }
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
    // The key is compared decoded: `%6Fffset=5` is `offset` too, and left in it would
    // make the link name the offset twice (which the next request refuses).
    let is_offset = |part: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(part)
            .ok()
            .and_then(|pairs| pairs.into_iter().next())
            .is_some_and(|(key, _)| key == "offset")
    };
    let mut parts: Vec<String> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !is_offset(p))
        .map(str::to_string)
        .collect();
    parts.push(format!("offset={offset}"));
    parts.join("&")
}

/// The properties a collection's items can be filtered by, `name=value` in the query
/// (OGC API – Features Part 3, queryables as query parameters).
fn queryable_names(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Grids => &["code", "name", "layer", "community_code", "households"],
        Kind::Regions(_) => &["code", "name", "level", "parent_code"],
    }
}

/// Whether a feature's property equals the text of a filter.
fn property_matches(properties: &Value, name: &str, wanted: &str) -> bool {
    match properties.get(name) {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Number(n)) => n.to_string() == wanted,
        _ => false,
    }
}

/// Features of a collection, a page at a time (`next` links), filtered by any of its
/// queryables (`?community_code=371602001001`); an unknown parameter is a 400.
#[utoipa::path(get, path = "/ogc/collections/{id}/items", tag = "ogc", operation_id = "ogc_items",
    params(
        ("id" = String, Path, description = "grids, communities, townships or counties"),
        ("bbox" = Option<String>, Query, description = "minx,miny,maxx,maxy in bbox-crs"),
        ("bbox-crs" = Option<String>, Query, description = "CRS84 (default) or EPSG:4490, as URI or short form"),
        ("crs" = Option<String>, Query, description = "output CRS: CRS84 (default) or EPSG:4490 (latitude first), as URI or short form"),
        ("limit" = Option<usize>, Query, description = "1..10000, default 10"),
        ("offset" = Option<usize>, Query, description = "features to skip"),
        ("datetime" = Option<String>, Query, description = "grids in force at an instant, or at any time in an interval (start/end, `..` open); RFC 3339"),
        ("f" = Option<String>, Query, description = "json (the only format)"),
        ("code" = Option<String>, Query, description = "queryable: the feature's code"),
        ("name" = Option<String>, Query, description = "queryable: the feature's name"),
        ("layer" = Option<String>, Query, description = "queryable (grids): comprehensive or dedicated"),
        ("community_code" = Option<String>, Query, description = "queryable (grids): the community or village"),
        ("households" = Option<i64>, Query, description = "queryable (grids): households"),
        ("level" = Option<String>, Query, description = "queryable (regions): county, township or community"),
        ("parent_code" = Option<String>, Query, description = "queryable (regions): the region above"),
    ),
    responses((status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json"), (status = 400, description = "bad or unknown parameter")))]
pub async fn items(
    State(state): State<AppState>,
    origin: Origin,
    Path(id): Path<String>,
    Query(pairs): Query<QueryPairs>,
    RawQuery(raw): RawQuery,
    client: super::extract::ClientAddr,
) -> Result<Response, ApiError> {
    let (kind, ..) = kind_of(&id)?;
    let queryable = queryable_names(kind);
    let known: Vec<&str> = ITEMS_PARAMETERS.iter().chain(queryable).copied().collect();
    let q = known_parameters(&pairs, &known)?;
    let out_lat_first = lat_first(q.get("crs").copied(), "crs")?;
    let bbox_lat_first = lat_first(q.get("bbox-crs").copied(), "bbox-crs")?;
    let bbox = match q.get("bbox") {
        Some(s) => Some(parse_bbox(s, bbox_lat_first)?),
        None => None,
    };
    let filters: Vec<(&str, &str)> = q
        .iter()
        .filter(|(k, _)| queryable.contains(k))
        .map(|(k, v)| (*k, *v))
        .collect();
    let limit = parse_count(q.get("limit").copied(), "limit", DEFAULT_LIMIT)?.clamp(1, MAX_LIMIT);
    // A large page costs its share: one unit more for every 100 features asked.
    if limit >= 100 {
        super::charge(
            &state.ogc_limiter,
            client.0,
            u32::try_from(limit / 100).unwrap_or(u32::MAX),
            super::Limited::OgcFeatures,
        )?;
    }
    let offset = parse_count(q.get("offset").copied(), "offset", 0)?;
    let when = parse_when(q.get("datetime").copied(), crate::domain::today_in_china())?;
    if when != When::Now && kind == Kind::Grids {
        super::tiles::historic_limit(&state, &client)?;
    }
    let snapshot = state.live.snapshot();
    let past = versions_for(&state, &client, &snapshot, kind, when).await?;
    // Matching and writing a page of thousands of features is milliseconds of CPU:
    // done where it does not stall the async workers (the second attack saw /healthz
    // wait 119 ms behind eight filtered pages).
    crate::workflow::plans::compute(|| {
        let all = load_items(&snapshot, kind, past.as_ref());
        page_of(
            &all,
            &bbox,
            &filters,
            offset,
            limit,
            out_lat_first,
            &origin,
            &id,
            raw.as_deref(),
        )
    })
}

/// The features of `all` matching the box and filters, one page of them as GeoJSON
/// with its links.
#[allow(clippy::too_many_arguments)]
fn page_of(
    all: &[Item],
    bbox: &Option<Rect<f64>>,
    filters: &[(&str, &str)],
    offset: usize,
    limit: usize,
    out_lat_first: bool,
    origin: &Origin,
    id: &str,
    raw: Option<&str>,
) -> Result<Response, ApiError> {
    let matched: Vec<&Item> = all
        .iter()
        .filter(|it| match (&bbox, it.boundary()) {
            // The boxes first (cheap), then the boundary itself: a feature whose box
            // overlaps but whose shape does not is not in the answer.
            (Some(b), Some(mp)) => {
                geom::bounds(mp).is_some_and(|r| {
                    r.min().x <= b.max().x
                        && b.min().x <= r.max().x
                        && r.min().y <= b.max().y
                        && b.min().y <= r.max().y
                }) && geo::Intersects::intersects(mp, b)
            }
            (Some(_), None) => false,
            (None, _) => true,
        })
        .filter(|it| {
            filters.is_empty() || {
                let properties = it.properties();
                filters
                    .iter()
                    .all(|(k, v)| property_matches(&properties, k, v))
            }
        })
        .collect();
    let b = base(origin);
    let page: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|it| feature(it, out_lat_first, &b, id))
        .collect();
    let here = format!("{b}/collections/{id}/items");
    let mut links = vec![
        link(
            format!("{here}?{}", with_offset(raw, offset)),
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
            format!("{here}?{}", with_offset(raw, offset + page.len())),
            "next",
            "application/geo+json",
            "Next page",
        ));
    }
    if offset > 0 {
        links.push(link(
            format!("{here}?{}", with_offset(raw, offset.saturating_sub(limit))),
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

/// One feature: by code, or `CODE@YYYY-MM-DD` for one version of a grid (the ids of a
/// `datetime` interval's answer).
#[utoipa::path(get, path = "/ogc/collections/{id}/items/{fid}", tag = "ogc", operation_id = "ogc_item",
    params(("id" = String, Path), ("fid" = String, Path, description = "grid or region code, or CODE@VALID_FROM for a grid version"),
        ("crs" = Option<String>, Query), ("datetime" = Option<String>, Query), ("f" = Option<String>, Query, description = "json (the only format)")),
    responses((status = 200, description = "GeoJSON Feature", content_type = "application/geo+json"), (status = 404, description = "no such feature")))]
pub async fn item(
    State(state): State<AppState>,
    origin: Origin,
    Path((id, fid)): Path<(String, String)>,
    Query(pairs): Query<QueryPairs>,
    client: super::extract::ClientAddr,
) -> Result<Response, ApiError> {
    let (kind, ..) = kind_of(&id)?;
    let q = known_parameters(&pairs, &ITEM_PARAMETERS)?;
    let out_lat_first = lat_first(q.get("crs").copied(), "crs")?;
    let when = parse_when(q.get("datetime").copied(), crate::domain::today_in_china())?;
    let not_found = || {
        ApiError::not_found(crate::msg!(
            "no feature {fid:?} in {id}",
            "{id} 中没有要素 {fid:?}"
        ))
    };
    if kind == Kind::Grids
        && let Some((code, start)) = fid.split_once('@')
    {
        // A version id names its own time: that grid's history is all it takes.
        super::tiles::historic_limit(&state, &client)?;
        let history = state
            .app
            .grid_history(code)
            .await?
            .map(|(versions, _)| versions)
            .unwrap_or_default();
        let version = history
            .iter()
            .find(|v| v.valid_from.to_string() == start)
            .ok_or_else(not_found)?;
        return Ok(geojson_response(
            feature(
                &Item::Version(version, true),
                out_lat_first,
                &base(&origin),
                &id,
            ),
            out_lat_first,
        ));
    }
    if when != When::Now && kind == Kind::Grids {
        super::tiles::historic_limit(&state, &client)?;
    }
    let snapshot = state.live.snapshot();
    let past = versions_for(&state, &client, &snapshot, kind, when).await?;
    let all = load_items(&snapshot, kind, past.as_ref());
    let it = all.iter().find(|it| it.id() == fid).ok_or_else(not_found)?;
    Ok(geojson_response(
        feature(it, out_lat_first, &base(&origin), &id),
        out_lat_first,
    ))
}

/// The properties a collection can be filtered by, as a JSON Schema (OGC API –
/// Features Part 3); each works as a query parameter of `items`.
#[utoipa::path(get, path = "/ogc/collections/{id}/queryables", tag = "ogc", operation_id = "ogc_queryables",
    params(("id" = String, Path, description = "grids, communities, townships or counties"), ("f" = Option<String>, Query, description = "json (the only format)")),
    responses((status = 200, description = "JSON Schema of the queryables", content_type = "application/schema+json"), (status = 404, description = "no such collection")))]
pub async fn queryables(
    origin: Origin,
    Path(id): Path<String>,
    Query(pairs): Query<QueryPairs>,
) -> Result<Response, ApiError> {
    let (kind, title, _) = kind_of(&id)?;
    known_parameters(&pairs, &COMMON_PARAMETERS)?;
    let b = base(&origin);
    let text = |title: &str, pattern: Option<&str>| {
        let mut p = json!({"type": "string", "title": title});
        if let Some(pattern) = pattern {
            p["pattern"] = pattern.into();
        }
        p
    };
    let properties = match kind {
        Kind::Grids => json!({
            "code": text("Grid code (15 digits)", Some("^[0-9]{15}$")),
            "name": text("Grid name", None),
            "layer": {"type": "string", "title": "Layer", "enum": ["comprehensive", "dedicated"]},
            "community_code": text("Community or village code (12 digits)", Some("^[0-9]{12}$")),
            "households": {"type": "integer", "title": "Households"},
            "geometry": {"format": "geometry-multipolygon", "x-ogc-role": "primary-geometry"},
        }),
        Kind::Regions(_) => json!({
            "code": text("Region code", Some("^[0-9]+$")),
            "name": text("Region name", None),
            "level": {"type": "string", "title": "Level", "enum": ["county", "township", "community"]},
            "parent_code": text("Code of the region above", Some("^[0-9]+$")),
            "geometry": {"format": "geometry-multipolygon", "x-ogc-role": "primary-geometry"},
        }),
    };
    let mut r = Json(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{b}/collections/{id}/queryables"),
        "type": "object",
        "title": title,
        "description": "Each property is also a query parameter of items: name=value keeps the features whose property equals value",
        "properties": properties,
        "additionalProperties": false,
    }))
    .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    Ok(r)
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
    fn crs_reads_the_uri_and_the_short_forms() {
        for lat_lon in [
            EPSG4490,
            "EPSG:4490",
            "[EPSG:4490]",
            "urn:ogc:def:crs:EPSG::4490",
        ] {
            assert!(lat_first(Some(lat_lon), "crs").unwrap(), "{lat_lon}");
        }
        for lon_lat in [CRS84, "OGC:CRS84", "[OGC:CRS84]"] {
            assert!(!lat_first(Some(lon_lat), "crs").unwrap(), "{lon_lat}");
        }
        assert!(lat_first(Some("EPSG:3857"), "crs").is_err());
    }

    #[test]
    fn datetime_instants_and_intervals() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let today = day("2026-12-02");
        assert_eq!(parse_when(None, today).unwrap(), When::Now);
        assert_eq!(
            parse_when(Some("2026-06-01T08:00:00Z"), today).unwrap(),
            When::On(day("2026-06-01"))
        );
        assert_eq!(parse_when(Some("2027-01-01"), today).unwrap(), When::Now);
        assert_eq!(
            parse_when(Some("2026-01-01T00:00:00Z/.."), today).unwrap(),
            When::During(Some(day("2026-01-01")), None)
        );
        assert_eq!(
            parse_when(Some("../2026-06-30"), today).unwrap(),
            When::During(None, Some(day("2026-06-30")))
        );
        assert_eq!(parse_when(Some("2026-12-05/.."), today).unwrap(), When::Now);
        assert!(parse_when(Some("2026-02-01/2026-01-01"), today).is_err());
        assert!(parse_when(Some("2026-13-01"), today).is_err());
        assert!(parse_when(Some("2026-01-01Tnonsense"), today).is_err());
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let pairs = |v: &[(&str, &str)]| -> QueryPairs {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(known_parameters(&pairs(&[("limit", "5")]), &ITEMS_PARAMETERS).is_ok());
        assert_eq!(
            with_offset(Some("limit=2&%6Fffset=4"), 6),
            "limit=2&offset=6"
        );
        assert_eq!(
            with_offset(Some("offset=4&name=a%26b"), 0),
            "name=a%26b&offset=0"
        );
        let e = known_parameters(&pairs(&[("colour", "red")]), &ITEMS_PARAMETERS).unwrap_err();
        assert!(e.detail.en().contains("colour"), "{}", e.detail);
        assert!(
            known_parameters(&pairs(&[("limit", "5"), ("limit", "6")]), &ITEMS_PARAMETERS).is_err()
        );
        assert!(known_parameters(&pairs(&[("f", "html")]), &COMMON_PARAMETERS).is_err());
    }

    #[test]
    fn epsg_4490_output_puts_latitude_first() {
        let mut c = json!([[[[118.0, 37.0], [118.1, 37.0]]]]);
        swap_axes(&mut c);
        assert_eq!(c, json!([[[[37.0, 118.0], [37.0, 118.1]]]]));
    }
}
