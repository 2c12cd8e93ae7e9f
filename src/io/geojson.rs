//! GeoJSON (RFC 7946) FeatureCollections of grid polygons.
//!
//! Reading is strict, because a boundary that enters wrong is served wrong: every
//! problem is reported with the feature (index and id) and the position (polygon,
//! ring, vertex). Both ring orientations are accepted; output follows the right-hand
//! rule (exteriors counter-clockwise).

use crate::domain::{Grid, Layer, Level, Localised, Msg, RegionRef};
use crate::msg;
use crate::spatial::crs::CoordSys;
use crate::spatial::geom;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// How to read grids from GeoJSON.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Property holding the grid id; when absent the feature `id` is used.
    pub id_field: String,
    /// Accept repeated ids (the validator reports them as `duplicate_id`) instead of
    /// rejecting the file.
    pub allow_duplicate_ids: bool,
    /// The coordinate system of the file; converted to CGCS2000/WGS84 on the way in.
    pub coord_sys: CoordSys,
    /// Features without an id get their index as id (for parent files) instead of
    /// being rejected.
    pub index_as_missing_id: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            id_field: "grid_id".into(),
            allow_duplicate_ids: false,
            coord_sys: CoordSys::Wgs84,
            index_as_missing_id: false,
        }
    }
}

/// Which feature a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRef {
    /// 0-based index in the collection.
    pub index: usize,
    /// The feature's grid id, when it has one.
    pub id: Option<String>,
}

impl FeatureRef {
    /// The feature in Chinese words.
    pub fn zh(&self) -> String {
        match &self.id {
            Some(id) => format!("第 {} 个要素（编码 {id:?}）", self.index + 1),
            None => format!("第 {} 个要素", self.index + 1),
        }
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "feature #{} (id {id:?})", self.index),
            None => write!(f, "feature #{}", self.index),
        }
    }
}

/// Where in a geometry a problem is: polygon (part), ring (0 = exterior) and vertex,
/// all 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub polygon: usize,
    pub ring: usize,
    pub vertex: Option<usize>,
}

impl Position {
    /// The position in Chinese words.
    pub fn zh(&self) -> String {
        let ring = match self.ring {
            0 => "外环".to_string(),
            n => format!("第 {n} 个内环"),
        };
        let mut s = format!("第 {} 个面的{ring}", self.polygon + 1);
        if let Some(v) = self.vertex {
            s.push_str(&format!("第 {} 个顶点", v + 1));
        }
        s
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "polygon {}, ring {}", self.polygon, self.ring)?;
        if let Some(v) = self.vertex {
            write!(f, ", vertex {v}")?;
        }
        Ok(())
    }
}

/// What is wrong with one feature.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureProblem {
    #[error("has no geometry")]
    MissingGeometry,
    #[error("has an empty geometry")]
    EmptyGeometry,
    #[error("has a {0} geometry; grids must be Polygon or MultiPolygon")]
    NotPolygonal(String),
    #[error("malformed geometry: {0}")]
    Malformed(Msg),
    #[error("ring is not closed (first and last positions differ)")]
    UnclosedRing,
    #[error("ring has {0} positions; at least 4 are required")]
    TooFewPositions(usize),
    #[error("longitude {0} is outside -180..180")]
    LongitudeOutOfRange(f64),
    #[error("latitude {0} is outside -90..90")]
    LatitudeOutOfRange(f64),
    #[error("coordinate is not a finite number")]
    NotFinite,
    #[error("has no grid id (no {0:?} property and no feature id)")]
    MissingId(String),
    #[error("repeats grid id {id:?} of feature #{first}")]
    DuplicateId { id: String, first: usize },
    #[error("{0}")]
    BadProperty(Msg),
}

impl Localised for FeatureProblem {
    fn zh(&self) -> String {
        match self {
            FeatureProblem::MissingGeometry => "没有几何图形".into(),
            FeatureProblem::EmptyGeometry => "几何图形为空".into(),
            FeatureProblem::NotPolygonal(kind) => {
                format!("几何类型为 {kind}；网格须为 Polygon 或 MultiPolygon")
            }
            FeatureProblem::Malformed(m) => format!("几何图形格式有误：{}", m.zh()),
            FeatureProblem::UnclosedRing => "环未闭合（首尾坐标不同）".into(),
            FeatureProblem::TooFewPositions(n) => format!("环只有 {n} 个坐标，至少需要 4 个"),
            FeatureProblem::LongitudeOutOfRange(x) => format!("经度 {x} 超出 -180..180"),
            FeatureProblem::LatitudeOutOfRange(y) => format!("纬度 {y} 超出 -90..90"),
            FeatureProblem::NotFinite => "坐标不是有限数值".into(),
            FeatureProblem::MissingId(field) => {
                format!("没有网格编码（没有 {field:?} 属性，也没有要素 id）")
            }
            FeatureProblem::DuplicateId { id, first } => {
                format!("网格编码 {id:?} 与第 {} 个要素重复", first + 1)
            }
            FeatureProblem::BadProperty(m) => m.zh().to_string(),
        }
    }
}

/// A rejected input file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not valid JSON (line {line}, column {column}): {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Structure(Msg),
    #[error("{feature}{}: {problem}", .position.map(|p| format!(", {p}")).unwrap_or_default())]
    Feature {
        feature: FeatureRef,
        position: Option<Position>,
        problem: FeatureProblem,
    },
    #[error("{path}, line {line}: {message}")]
    Points {
        path: String,
        line: usize,
        message: String,
    },
}

impl Localised for InputError {
    fn zh(&self) -> String {
        match self {
            InputError::Io { path, source } => format!("无法读取 {}：{source}", path.display()),
            InputError::Json {
                line,
                column,
                message,
            } => format!("不是有效的 JSON（第 {line} 行第 {column} 列）：{message}"),
            InputError::Structure(m) => m.zh().to_string(),
            InputError::Feature {
                feature,
                position,
                problem,
            } => format!(
                "{}{}：{}",
                feature.zh(),
                position
                    .map(|p| format!("，{}", p.zh()))
                    .unwrap_or_default(),
                problem.zh()
            ),
            InputError::Points {
                path,
                line,
                message,
            } => format!("{path} 第 {line} 行：{message}"),
        }
    }
}

impl InputError {
    fn feature(
        index: usize,
        id: &Option<String>,
        position: Option<Position>,
        problem: FeatureProblem,
    ) -> Self {
        InputError::Feature {
            feature: FeatureRef {
                index,
                id: id.clone(),
            },
            position,
            problem,
        }
    }
}

/// Reads a file of grids.
pub fn read_grids_file(path: &Path, options: &ReadOptions) -> Result<Vec<Grid>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_grids(&text, options)
}

/// Parses a FeatureCollection (or a single Feature) of grids.
///
/// ```
/// use wangge::io::geojson::{read_grids, ReadOptions};
/// let text = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"grid_id":"G1"},
///   "geometry":{"type":"Polygon","coordinates":[[[118,37],[118,37.1],[118.1,37.1],[118,37]]]}}]}"#;
/// let grids = read_grids(text, &ReadOptions::default()).unwrap();
/// assert_eq!(grids[0].id, "G1");
///
/// let unclosed = text.replace("[118,37]]]", "[118.05,37]]]");
/// let err = read_grids(&unclosed, &ReadOptions::default()).unwrap_err();
/// assert_eq!(err.to_string(), r#"feature #0 (id "G1"), polygon 0, ring 0: ring is not closed (first and last positions differ)"#);
/// ```
pub fn read_grids(text: &str, options: &ReadOptions) -> Result<Vec<Grid>, InputError> {
    let root: Value = serde_json::from_str(text).map_err(|e| InputError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let features: Vec<&Value> = match root.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => root
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                InputError::Structure(msg!(
                    "FeatureCollection without a \"features\" array",
                    "FeatureCollection 缺少 \"features\" 数组"
                ))
            })?
            .iter()
            .collect(),
        Some("Feature") => vec![&root],
        Some(other) => {
            return Err(InputError::Structure(msg!(
                "expected a GeoJSON FeatureCollection, found a {other}",
                "应为 GeoJSON FeatureCollection，却是 {other}"
            )));
        }
        None => {
            return Err(InputError::Structure(msg!(
                "expected a GeoJSON FeatureCollection: no \"type\" member",
                "应为 GeoJSON FeatureCollection：缺少 \"type\" 成员"
            )));
        }
    };
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut grids = Vec::with_capacity(features.len());
    for (index, f) in features.into_iter().enumerate() {
        let props = f
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let id = id_of(f, &props, &options.id_field)
            .or_else(|| options.index_as_missing_id.then(|| index.to_string()));
        let Some(id_str) = id.clone() else {
            return Err(InputError::feature(
                index,
                &None,
                None,
                FeatureProblem::MissingId(options.id_field.clone()),
            ));
        };
        if let Some(&first) = seen.get(&id_str) {
            if !options.allow_duplicate_ids {
                return Err(InputError::feature(
                    index,
                    &id,
                    None,
                    FeatureProblem::DuplicateId { id: id_str, first },
                ));
            }
        } else {
            seen.insert(id_str.clone(), index);
        }
        let geometry = f.get("geometry").filter(|g| !g.is_null()).ok_or_else(|| {
            InputError::feature(index, &id, None, FeatureProblem::MissingGeometry)
        })?;
        let mut boundary = parse_polygonal(geometry)
            .map_err(|(position, problem)| InputError::feature(index, &id, position, problem))?;
        if options.coord_sys != CoordSys::Wgs84 && options.coord_sys != CoordSys::Cgcs2000 {
            convert(&mut boundary, options.coord_sys);
        }
        geom::normalise_orientation(&mut boundary);
        let layer = match props.get("layer").and_then(Value::as_str) {
            Some(s) => s.parse::<Layer>().map_err(|m| {
                InputError::feature(index, &id, None, FeatureProblem::BadProperty(m))
            })?,
            None => Layer::Comprehensive,
        };
        grids.push(Grid {
            name: props
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
            layer,
            parent: text_prop(&props, "community"),
            ancestors: ancestors(&props),
            id: id_str,
            boundary,
            properties: props,
        });
    }
    Ok(grids)
}

fn text_prop(props: &Map<String, Value>, key: &str) -> Option<String> {
    match props.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ancestors(props: &Map<String, Value>) -> Vec<RegionRef> {
    [
        (Level::Community, "community"),
        (Level::Township, "township"),
        (Level::County, "county"),
    ]
    .into_iter()
    .filter_map(|(level, key)| {
        Some(RegionRef {
            level,
            code: text_prop(props, key)?,
            name: text_prop(props, &format!("{key}_name")),
        })
    })
    .collect()
}

fn id_of(f: &Value, props: &Map<String, Value>, field: &str) -> Option<String> {
    text_prop(props, field).or_else(|| match f.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn convert(mp: &mut MultiPolygon<f64>, cs: CoordSys) {
    for p in mp.0.iter_mut() {
        p.exterior_mut(|r| r.0.iter_mut().for_each(|c| *c = cs.to_wgs84(*c)));
        p.interiors_mut(|hs| {
            for h in hs {
                h.0.iter_mut().for_each(|c| *c = cs.to_wgs84(*c));
            }
        });
    }
}

type GeometryError = (Option<Position>, FeatureProblem);

/// Parses a Polygon or MultiPolygon geometry object, checking every position.
pub fn parse_polygonal(g: &Value) -> Result<MultiPolygon<f64>, GeometryError> {
    let kind = g.get("type").and_then(Value::as_str).unwrap_or("untyped");
    let coords = g.get("coordinates");
    let polygons: Vec<&Value> = match kind {
        "Polygon" => {
            vec![coords.ok_or((
                None,
                FeatureProblem::Malformed(msg!("no coordinates", "没有坐标")),
            ))?]
        }
        "MultiPolygon" => coords
            .and_then(Value::as_array)
            .ok_or((
                None,
                FeatureProblem::Malformed(msg!(
                    "coordinates must be an array",
                    "coordinates 须为数组"
                )),
            ))?
            .iter()
            .collect(),
        other => return Err((None, FeatureProblem::NotPolygonal(other.to_string()))),
    };
    if polygons.is_empty() {
        return Err((None, FeatureProblem::EmptyGeometry));
    }
    let mut out = Vec::with_capacity(polygons.len());
    for (pi, p) in polygons.into_iter().enumerate() {
        let rings = p.as_array().ok_or((
            Some(Position {
                polygon: pi,
                ring: 0,
                vertex: None,
            }),
            FeatureProblem::Malformed(msg!(
                "a polygon must be an array of rings",
                "面须为由环组成的数组"
            )),
        ))?;
        if rings.is_empty() {
            return Err((
                Some(Position {
                    polygon: pi,
                    ring: 0,
                    vertex: None,
                }),
                FeatureProblem::EmptyGeometry,
            ));
        }
        let mut parsed = Vec::with_capacity(rings.len());
        for (ri, r) in rings.iter().enumerate() {
            parsed.push(parse_ring(r, pi, ri)?);
        }
        let mut it = parsed.into_iter();
        let ext = it.next().unwrap_or_else(|| LineString(vec![]));
        out.push(Polygon::new(ext, it.collect()));
    }
    Ok(MultiPolygon(out))
}

fn parse_ring(r: &Value, polygon: usize, ring: usize) -> Result<LineString<f64>, GeometryError> {
    let at = |vertex: Option<usize>| {
        Some(Position {
            polygon,
            ring,
            vertex,
        })
    };
    let positions = r.as_array().ok_or((
        at(None),
        FeatureProblem::Malformed(msg!(
            "a ring must be an array of positions",
            "环须为由坐标组成的数组"
        )),
    ))?;
    if positions.len() < 4 {
        return Err((at(None), FeatureProblem::TooFewPositions(positions.len())));
    }
    let mut coords = Vec::with_capacity(positions.len());
    for (vi, pos) in positions.iter().enumerate() {
        let c = parse_position(pos).map_err(|p| (at(Some(vi)), p))?;
        coords.push(c);
    }
    if coords.first() != coords.last() {
        return Err((at(None), FeatureProblem::UnclosedRing));
    }
    Ok(LineString(coords))
}

/// Parses one `[lon, lat]` (or `[lon, lat, z]`) position, checking its range.
pub fn parse_position(pos: &Value) -> Result<Coord<f64>, FeatureProblem> {
    let a = pos.as_array().filter(|a| a.len() >= 2).ok_or_else(|| {
        FeatureProblem::Malformed(msg!(
            "a position must be [longitude, latitude]",
            "坐标须为 [经度, 纬度]"
        ))
    })?;
    let num = |v: &Value| v.as_f64().ok_or(FeatureProblem::NotFinite);
    let (x, y) = (num(&a[0])?, num(&a[1])?);
    check_lon_lat(x, y)?;
    Ok(Coord { x, y })
}

/// Checks a longitude/latitude pair for finiteness and range.
pub fn check_lon_lat(x: f64, y: f64) -> Result<(), FeatureProblem> {
    if !x.is_finite() || !y.is_finite() {
        return Err(FeatureProblem::NotFinite);
    }
    if !(-180.0..=180.0).contains(&x) {
        return Err(FeatureProblem::LongitudeOutOfRange(x));
    }
    if !(-90.0..=90.0).contains(&y) {
        return Err(FeatureProblem::LatitudeOutOfRange(y));
    }
    Ok(())
}

/// A GeoJSON geometry object for `g`, rings by the right-hand rule.
pub fn geometry_json(g: &geo_types::Geometry<f64>) -> Value {
    let mut g = g.clone();
    match &mut g {
        geo_types::Geometry::Polygon(p) => {
            let mut mp = MultiPolygon(vec![p.clone()]);
            geom::normalise_orientation(&mut mp);
            *p = mp.0.remove(0);
        }
        geo_types::Geometry::MultiPolygon(mp) => geom::normalise_orientation(mp),
        _ => {}
    }
    let value = ::geojson::GeometryValue::from(&g);
    serde_json::to_value(::geojson::Geometry::new(value)).unwrap_or(Value::Null)
}

/// A FeatureCollection of grids, with their properties and `grid_id`.
pub fn grids_to_json(grids: &[Grid]) -> Value {
    let features: Vec<Value> = grids
        .iter()
        .map(|g| {
            let mut props = g.properties.clone();
            props.insert("grid_id".into(), Value::String(g.id.clone()));
            serde_json::json!({
                "type": "Feature",
                "id": g.id,
                "properties": props,
                "geometry": geometry_json(&geo_types::Geometry::MultiPolygon(g.boundary.clone())),
            })
        })
        .collect();
    serde_json::json!({"type": "FeatureCollection", "features": features})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(geometry: &str) -> String {
        format!(
            r#"{{"type":"FeatureCollection","features":[
              {{"type":"Feature","properties":{{"grid_id":"A"}},"geometry":{{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}}},
              {{"type":"Feature","id":7,"properties":{{}},"geometry":{geometry}}}]}}"#
        )
    }

    fn err(geometry: &str) -> String {
        read_grids(&fc(geometry), &ReadOptions::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_feature_id_is_the_fallback_grid_id() {
        let g = read_grids(
            &fc(r#"{"type":"Polygon","coordinates":[[[2,0],[3,0],[3,1],[2,0]]]}"#),
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(g[1].id, "7");
    }

    #[test]
    fn too_few_positions_names_feature_and_ring() {
        assert_eq!(
            err(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}"#),
            r#"feature #1 (id "7"), polygon 0, ring 0: ring has 3 positions; at least 4 are required"#
        );
    }

    #[test]
    fn latitude_out_of_range_names_the_vertex() {
        assert_eq!(
            err(
                r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[0,0],[1,0],[1,91],[0,0]]]]}"#
            ),
            r#"feature #1 (id "7"), polygon 1, ring 0, vertex 2: latitude 91 is outside -90..90"#
        );
    }

    #[test]
    fn longitude_out_of_range_is_rejected() {
        assert!(
            err(r#"{"type":"Polygon","coordinates":[[[0,0],[181,0],[1,1],[0,0]]]}"#)
                .contains("longitude 181")
        );
    }

    #[test]
    fn non_numeric_coordinates_are_not_finite() {
        assert!(
            err(r#"{"type":"Polygon","coordinates":[[[0,0],["x",0],[1,1],[0,0]]]}"#)
                .contains("not a finite number")
        );
    }

    #[test]
    fn non_polygonal_and_empty_geometries_are_rejected() {
        assert!(err(r#"{"type":"Point","coordinates":[0,0]}"#).contains("Point geometry"));
        assert!(err(r#"{"type":"MultiPolygon","coordinates":[]}"#).contains("empty geometry"));
        assert!(err("null").contains("has no geometry"));
    }

    #[test]
    fn duplicate_ids_are_rejected_unless_allowed() {
        let text = fc(r#"{"type":"Polygon","coordinates":[[[2,0],[3,0],[3,1],[2,0]]]}"#).replace(
            r#""id":7,"properties":{}"#,
            r#""properties":{"grid_id":"A"}"#,
        );
        let e = read_grids(&text, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"feature #1 (id "A"): repeats grid id "A" of feature #0"#
        );
        let lenient = ReadOptions {
            allow_duplicate_ids: true,
            ..ReadOptions::default()
        };
        assert_eq!(read_grids(&text, &lenient).unwrap().len(), 2);
    }

    #[test]
    fn clockwise_input_comes_out_counter_clockwise() {
        let g = read_grids(
            &fc(r#"{"type":"Polygon","coordinates":[[[2,0],[2,1],[3,1],[3,0],[2,0]]]}"#),
            &ReadOptions::default(),
        )
        .unwrap();
        assert!(geom::ring_twice_area(&g[1].boundary.0[0].exterior().0) > 0.0);
        let out = geometry_json(&geo_types::Geometry::MultiPolygon(g[1].boundary.clone()));
        let ring = &out["coordinates"][0][0];
        assert_eq!(ring[1], serde_json::json!([3.0, 0.0]));
    }

    #[test]
    fn bad_json_reports_line_and_column() {
        let e = read_grids("{\"type\":\n  oops}", &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("not valid JSON (line 2, column 3)"), "{e}");
    }
}
