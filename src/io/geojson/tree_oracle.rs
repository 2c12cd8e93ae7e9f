//! The tree reader that the streaming reader replaced, kept as the tests' oracle:
//! the whole document as a `serde_json::Value`, then each feature read from it. The
//! streaming reader must give the same grids, or the same first error, for any
//! document.

use super::{
    FeatureProblem, InputError, Position, ReadOptions, ancestors, check_lon_lat, convert, text_prop,
};
use crate::domain::{Grid, Layer};
use crate::msg;
use crate::spatial::crs::CoordSys;
use crate::spatial::geom;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{Map, Value};

pub(super) fn read_tree(text: &str, options: &ReadOptions) -> Result<Vec<Grid>, InputError> {
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

fn id_of(f: &Value, props: &Map<String, Value>, field: &str) -> Option<String> {
    text_prop(props, field).or_else(|| match f.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

type GeometryError = (Option<Position>, FeatureProblem);

/// Parses a Polygon or MultiPolygon geometry object, checking every position.
fn parse_polygonal(g: &Value) -> Result<MultiPolygon<f64>, GeometryError> {
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
fn parse_position(pos: &Value) -> Result<Coord<f64>, FeatureProblem> {
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
