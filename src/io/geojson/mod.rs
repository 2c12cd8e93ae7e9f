//! GeoJSON (RFC 7946) FeatureCollections of grid polygons.
//!
//! Reading is strict, because a boundary that enters wrong is served wrong: every
//! problem is reported with the feature (index and id) and the position (polygon,
//! ring, vertex). Both ring orientations are accepted; output follows the right-hand
//! rule (exteriors counter-clockwise).

use crate::domain::{Grid, Level, Localised, Msg, RegionRef};
use crate::spatial::crs::CoordSys;
use crate::spatial::geom;
use geo_types::MultiPolygon;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

mod coords;
mod fast;
mod read;
#[cfg(test)]
mod tree_oracle;

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

/// Reads a file of grids, a few megabytes at a time: what is held at once is the
/// grids and one window of the file, whatever its size (see [`read_grids`]).
pub fn read_grids_file(path: &Path, options: &ReadOptions) -> Result<Vec<Grid>, InputError> {
    read_grids_file_with_progress(path, options, |_, _| {})
}

/// [`read_grids_file`], calling `progress(bytes read, file length)` after every few
/// megabytes: what a progress bar on a large plan needs. (A file the common shape
/// does not fit is then read again, whole, by the serde reader, without progress.)
pub fn read_grids_file_with_progress(
    path: &Path,
    options: &ReadOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<Grid>, InputError> {
    read::read_file(path, options, fast::FileWindow::CHUNK, &mut progress)
}

/// Parses a FeatureCollection (or a single Feature) of grids.
///
/// One pass, with no tree of the document: each feature becomes a [`Grid`] as it is
/// read, and each ring's positions are read straight into the boundary's own
/// coordinate array.
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
    read::read_slice(text.as_bytes(), options)
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

    #[test]
    fn reading_a_file_reports_its_bytes_until_all_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grids.geojson");
        let text = fc(r#"{"type":"Polygon","coordinates":[[[1,0],[2,0],[2,1],[1,0]]]}"#);
        std::fs::write(&path, &text).unwrap();
        let mut seen = Vec::new();
        let grids = read::read_file(&path, &ReadOptions::default(), 64, &mut |done, total| {
            seen.push((done, total))
        })
        .unwrap();
        assert_eq!(grids.len(), 2);
        let len = text.len() as u64;
        assert!(seen.len() > 2, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert!(seen.iter().all(|&(_, total)| total == len), "{seen:?}");
        assert_eq!(seen.last(), Some(&(len, len)));
    }

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

    mod agrees_with_the_tree_reader {
        //! The streaming reader against the tree reader it replaced, on documents
        //! made of GeoJSON's parts in any order, broken in every slot.
        use super::super::tree_oracle::read_tree;
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        fn object(members: Vec<(String, String)>) -> String {
            let inner: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("{k:?}:{v}"))
                .collect();
            format!("{{{}}}", inner.join(","))
        }

        fn number() -> BoxedStrategy<String> {
            prop_oneof![
                60 => (-3i32..4).prop_map(|n| n.to_string()),
                10 => select(vec!["0.5", "1e0", "-0", "1.25e1", "2.0000000000000004", "1E-2", "37.50612345678901"])
                    .prop_map(str::to_string),
                1 => select(vec!["181", "-91"]).prop_map(str::to_string),
            ]
            .boxed()
        }

        fn scalar() -> BoxedStrategy<String> {
            prop_oneof![
                4 => number(),
                1 => select(vec!["null", "true", "\"x\"", "{}", "{\"a\":[1]}"]).prop_map(str::to_string),
            ]
            .boxed()
        }

        /// A polygon's rings, mostly well-shaped, with any value anywhere.
        fn polygon() -> BoxedStrategy<String> {
            let position = prop_oneof![
                200 => (number(), number()).prop_map(|(x, y)| format!("[{x},{y}]")),
                1 => (number(), number(), scalar()).prop_map(|(x, y, z)| format!("[{x},{y},{z}]")),
                1 => scalar(),
                1 => prop::collection::vec(scalar(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            ]
            .boxed();
            let ring = prop_oneof![
                // Closed, mostly.
                30 => (prop::collection::vec(position.clone(), 3..6), prop::bool::weighted(0.97)).prop_map(|(mut v, close)| {
                    if close { v.push(v[0].clone()); }
                    format!("[{}]", v.join(","))
                }),
                1 => prop::collection::vec(position.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                1 => position,
            ]
            .boxed();
            prop_oneof![
                30 => prop::collection::vec(ring, 1..3).prop_map(|v| format!("[{}]", v.join(","))),
                1 => scalar(),
            ]
            .boxed()
        }

        /// A type and coordinates that mostly agree.
        fn typed_coordinates() -> BoxedStrategy<(String, String)> {
            let multi = prop_oneof![
                30 => prop::collection::vec(polygon(), 1..3).prop_map(|v| format!("[{}]", v.join(","))),
                1 => Just("[]".to_string()),
                1 => scalar(),
            ];
            let kind = prop_oneof![
                8 => select(vec!["\"Polygon\"", "\"MultiPolygon\""]),
                1 => select(vec!["\"Point\"", "5", "null"]),
            ]
            .prop_map(str::to_string);
            prop_oneof![
                10 => polygon().prop_map(|c| ("\"Polygon\"".to_string(), c)),
                10 => multi.clone().prop_map(|c| ("\"MultiPolygon\"".to_string(), c)),
                1 => (kind.clone(), polygon()),
                1 => (kind, multi),
            ]
            .boxed()
        }

        fn shuffled(members: Vec<Option<(String, String)>>, order: Vec<usize>) -> String {
            let members: Vec<(String, String)> = members.into_iter().flatten().collect();
            let n = members.len();
            let mut keyed: Vec<(usize, (String, String))> = members
                .into_iter()
                .enumerate()
                .map(|(i, m)| (order.get(i).copied().unwrap_or(i) % (n + 1), m))
                .collect();
            keyed.sort_by_key(|(k, _)| *k);
            object(keyed.into_iter().map(|(_, m)| m).collect())
        }

        fn member(
            key: &'static str,
            value: impl Strategy<Value = String> + 'static,
        ) -> BoxedStrategy<Option<(String, String)>> {
            prop::option::weighted(0.85, value.prop_map(move |v| (key.to_string(), v))).boxed()
        }

        fn member_often(
            key: &'static str,
            value: impl Strategy<Value = String> + 'static,
        ) -> BoxedStrategy<Option<(String, String)>> {
            prop::option::weighted(0.98, value.prop_map(move |v| (key.to_string(), v))).boxed()
        }

        fn geometry() -> BoxedStrategy<String> {
            let object = (
                typed_coordinates(),
                prop::bool::weighted(0.98),
                prop::bool::weighted(0.98),
                member("bbox", scalar()),
                prop::collection::vec(0usize..4, 3),
            )
                .prop_map(|((kind, coords), has_kind, has_coords, b, order)| {
                    let t = has_kind.then(|| ("type".to_string(), kind));
                    let c = has_coords.then(|| ("coordinates".to_string(), coords));
                    shuffled(vec![t, c, b], order)
                });
            prop_oneof![60 => object, 1 => scalar()].boxed()
        }

        fn feature() -> BoxedStrategy<String> {
            let id = prop_oneof![
                12 => select(vec!["\"a\"", "\"b\"", "\"c\"", "\"d\"", "7"]),
                1 => select(vec!["null", "[1]", "1.5"]),
            ]
            .prop_map(str::to_string);
            let props = select(vec![
                "{}",
                "null",
                "[]",
                "{\"grid_id\":\"a\"}",
                "{\"grid_id\":\"b\",\"name\":\"n\"}",
                "{\"grid_id\":3,\"layer\":\"bogus\"}",
                "{\"community\":\"c\",\"township\":5,\"layer\":\"comprehensive\"}",
            ])
            .prop_map(str::to_string);
            let object = (
                member("type", Just("\"Feature\"".to_string())),
                member_often("id", id),
                member_often("properties", props),
                member_often("geometry", geometry()),
                prop::option::weighted(0.05, geometry().prop_map(|g| ("geometry".to_string(), g))),
                prop::collection::vec(0usize..6, 5),
            )
                .prop_map(|(t, i, p, g, g2, order)| shuffled(vec![t, i, p, g, g2], order));
            prop_oneof![30 => object, 1 => scalar()].boxed()
        }

        fn document() -> BoxedStrategy<String> {
            let kind = prop_oneof![
                12 => Just("\"FeatureCollection\""),
                2 => Just("\"Feature\""),
                1 => select(vec!["\"Foo\"", "3"]),
            ]
            .prop_map(str::to_string);
            let features = prop_oneof![
                30 => prop::collection::vec(feature(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
                1 => scalar(),
            ]
            .boxed();
            (
                member_often("type", kind),
                member_often("features", features.clone()),
                prop::option::weighted(0.1, features.prop_map(|f| ("features".to_string(), f))),
                member("geometry", geometry()),
                member("properties", Just("{\"grid_id\":\"r\"}".to_string())),
                prop::collection::vec(0usize..6, 5),
            )
                .prop_map(|(t, f, f2, g, p, order)| shuffled(vec![t, f, f2, g, p], order))
                .boxed()
        }

        fn outcome(r: Result<Vec<Grid>, InputError>) -> Result<String, String> {
            r.map(|g| format!("{g:?}")).map_err(|e| e.to_string())
        }

        /// serde_json refuses a document nested 128 deep; the hand reader, which
        /// reads members on their own, must refuse the same documents.
        #[test]
        fn nesting_near_the_limit_is_read_as_the_tree_reader_reads_it() {
            let feature = |props: &str, bbox: &str| {
                format!(
                    r#"{{"type":"Feature","id":"a","properties":{props},"geometry":{{"type":"Polygon","bbox":{bbox},"coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}}}"#
                )
            };
            let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
            let options = ReadOptions::default();
            for n in 120..=128 {
                for doc in [
                    format!(
                        r#"{{"x":{},"type":"FeatureCollection","features":[{}]}}"#,
                        deep(n),
                        feature("{}", "0")
                    ),
                    format!(
                        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
                        feature(&format!(r#"{{"z":{}}}"#, deep(n)), "0")
                    ),
                    format!(
                        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
                        feature("{}", &deep(n))
                    ),
                ] {
                    assert_eq!(
                        outcome(read_grids(&doc, &options)),
                        outcome(read_tree(&doc, &options)),
                        "{n}"
                    );
                }
            }
        }

        /// A pipe cannot be read twice, so it is read whole, once, and a document
        /// that needs the serde reader is still read.
        #[cfg(unix)]
        #[test]
        fn a_named_pipe_is_read_once() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pipe.geojson");
            let made = std::process::Command::new("mkfifo").arg(&path).status();
            if !made.is_ok_and(|s| s.success()) {
                return;
            }
            // An escaped key sends the document to the serde reader.
            let doc = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"grid_id":"a","n\u0061me":"x"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}"#;
            let writer = {
                let path = path.clone();
                std::thread::spawn(move || std::fs::write(path, doc))
            };
            let grids = read_grids_file(&path, &ReadOptions::default()).unwrap();
            writer.join().unwrap().unwrap();
            assert_eq!(grids.len(), 1);
            assert_eq!(grids[0].name.as_deref(), Some("x"));
        }

        #[test]
        fn a_document_cut_after_a_bad_feature_is_reported_as_broken_json() {
            // The first feature's ring is malformed; the parse must still go on
            // and find the cut in the second exactly as the tree reader did.
            let doc = r#"{"features":[{"type":"Feature","id":"a","geometry":{"type":"Polygon","coordinates":[[[0,[0,-0]]]]}},{"id":[1],"#;
            let options = ReadOptions::default();
            let got = outcome(read_grids(doc, &options));
            assert_eq!(got, outcome(read_tree(doc, &options)));
            assert!(got.unwrap_err().starts_with("not valid JSON"));
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn on_any_document(doc in document(), cut in prop::option::weighted(0.05, 0usize..400), dup in any::<bool>(), chunk in 1usize..80) {
                let doc = match cut {
                    Some(at) => doc[..doc.floor_char_boundary(at.min(doc.len()))].to_string(),
                    None => doc,
                };
                let options = ReadOptions { allow_duplicate_ids: dup, ..ReadOptions::default() };
                let tree = outcome(read_tree(&doc, &options));
                prop_assert_eq!(outcome(read::read_with_serde(doc.as_bytes(), &options)), tree.clone(), "{}", doc);
                // Where the hand reader answers, it answers as the others do.
                if let Ok(Some(grids)) = fast::read_common(&mut doc.as_bytes(), &mut read::Reader::new(&options)) {
                    prop_assert_eq!(Ok(format!("{grids:?}")), tree.clone(), "{}", doc);
                }
                // And read from a file through a window of any size, cut anywhere.
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("doc.geojson");
                std::fs::write(&path, &doc).unwrap();
                prop_assert_eq!(outcome(read::read_file(&path, &options, chunk, &mut |_, _| {})), tree, "{}", doc);
            }
        }
    }
}
