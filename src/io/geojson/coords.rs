//! A geometry's `coordinates` as read, before its `type` says how deep they must be.
//!
//! GeoJSON lets `type` follow `coordinates`, so the reader cannot know whether it
//! reads a Polygon or a MultiPolygon until the object ends. It keeps the nested
//! arrays in the shape they came in, with one allocation per ring instead of one per
//! number and position: an array of equal-length positions is read straight into a
//! `Vec<Coord>`, which becomes the ring itself. Anything else (an odd nesting, a
//! string where a number belongs) is kept generally, so that the interpretation can
//! name the first thing wrong exactly where the strict reader always has.

use super::read::Skip;
use super::{FeatureProblem, Position, check_lon_lat};
use crate::msg;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// One JSON value inside `coordinates`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Coords {
    Number(f64),
    /// A string, boolean, null or object.
    Other,
    /// An array of `len` ≥ 2 values whose first two are numbers (a position, when
    /// it sits where one belongs).
    Position {
        at: Coord<f64>,
        len: usize,
    },
    /// A non-empty array of positions, each of `len` values (a ring, when it sits
    /// where one belongs).
    Positions {
        coords: Vec<Coord<f64>>,
        len: usize,
    },
    /// Any other array, the empty one included.
    List(Vec<Coords>),
}

/// What a problem is and where, as the reader reports it.
pub(super) type GeometryError = (Option<Position>, FeatureProblem);

impl Coords {
    /// The number of elements, for an array.
    fn array_len(&self) -> Option<usize> {
        match self {
            Coords::Number(_) | Coords::Other => None,
            Coords::Position { len, .. } => Some(*len),
            Coords::Positions { coords, .. } => Some(coords.len()),
            Coords::List(items) => Some(items.len()),
        }
    }

    /// Element `i` of an array, as far as any reading of it can tell.
    fn element(&self, i: usize) -> Option<Element<'_>> {
        match self {
            Coords::Number(_) | Coords::Other => None,
            Coords::Position { at, len } => position_element(*at, *len, i),
            Coords::Positions { coords, len } => {
                coords.get(i).map(|&at| Element::Position { at, len: *len })
            }
            Coords::List(items) => items.get(i).map(Element::Node),
        }
    }
}

/// An element of an array, borrowed or (for compacted arrays) rebuilt.
#[derive(Clone, Copy)]
enum Element<'a> {
    Number(f64),
    Other,
    Position { at: Coord<f64>, len: usize },
    Node(&'a Coords),
}

impl<'a> Element<'a> {
    fn number(self) -> Option<f64> {
        match self {
            Element::Number(x) | Element::Node(&Coords::Number(x)) => Some(x),
            _ => None,
        }
    }

    fn array_len(self) -> Option<usize> {
        match self {
            Element::Number(_) | Element::Other => None,
            Element::Position { len, .. } => Some(len),
            Element::Node(c) => c.array_len(),
        }
    }

    /// Element `i` of this element, when it is an array.
    fn element(self, i: usize) -> Option<Element<'a>> {
        match self {
            Element::Number(_) | Element::Other => None,
            Element::Position { at, len } => position_element(at, len, i),
            Element::Node(c) => c.element(i),
        }
    }
}

/// Element `i` of a position's array: a position's elements past the second are
/// never looked at, so they read as `Other`.
fn position_element(at: Coord<f64>, len: usize, i: usize) -> Option<Element<'static>> {
    (i < len).then_some(match i {
        0 => Element::Number(at.x),
        1 => Element::Number(at.y),
        _ => Element::Other,
    })
}

/// Interprets `coordinates` as the geometry `kind` says, checking every position as
/// the strict reader does, and builds the boundary (rings moved, not copied).
pub(super) fn polygonal(
    kind: &str,
    coords: Option<Coords>,
) -> Result<MultiPolygon<f64>, GeometryError> {
    match kind {
        "Polygon" => {
            let coords = coords.ok_or((
                None,
                FeatureProblem::Malformed(msg!("no coordinates", "没有坐标")),
            ))?;
            check_polygon(Some(Element::Node(&coords)), 0)?;
            Ok(MultiPolygon(build_polygon(coords).into_iter().collect()))
        }
        "MultiPolygon" => {
            let Some(len) = coords.as_ref().and_then(Coords::array_len) else {
                return Err((
                    None,
                    FeatureProblem::Malformed(msg!(
                        "coordinates must be an array",
                        "coordinates 须为数组"
                    )),
                ));
            };
            if len == 0 {
                return Err((None, FeatureProblem::EmptyGeometry));
            }
            let Some(coords) = coords else {
                return Err((None, FeatureProblem::EmptyGeometry));
            };
            for pi in 0..len {
                check_polygon(coords.element(pi), pi)?;
            }
            // Only a list of lists passes the checks.
            let polygons = match coords {
                Coords::List(items) => items.into_iter().filter_map(build_polygon).collect(),
                _ => Vec::new(),
            };
            Ok(MultiPolygon(polygons))
        }
        other => Err((None, FeatureProblem::NotPolygonal(other.to_string()))),
    }
}

/// Checks one polygon (an array of rings).
fn check_polygon(p: Option<Element<'_>>, pi: usize) -> Result<(), GeometryError> {
    let at = |ring: usize, vertex: Option<usize>| {
        Some(Position {
            polygon: pi,
            ring,
            vertex,
        })
    };
    let Some(len) = p.and_then(Element::array_len) else {
        return Err((
            at(0, None),
            FeatureProblem::Malformed(msg!(
                "a polygon must be an array of rings",
                "面须为由环组成的数组"
            )),
        ));
    };
    if len == 0 {
        return Err((at(0, None), FeatureProblem::EmptyGeometry));
    }
    for ri in 0..len {
        let ring = p.and_then(|p| p.element(ri));
        check_ring(ring, pi, ri)?;
    }
    Ok(())
}

/// Checks one ring (an array of at least 4 positions, closed).
fn check_ring(r: Option<Element<'_>>, polygon: usize, ring: usize) -> Result<(), GeometryError> {
    let at = |vertex: Option<usize>| {
        Some(Position {
            polygon,
            ring,
            vertex,
        })
    };
    let Some(len) = r.and_then(Element::array_len) else {
        return Err((
            at(None),
            FeatureProblem::Malformed(msg!(
                "a ring must be an array of positions",
                "环须为由坐标组成的数组"
            )),
        ));
    };
    if len < 4 {
        return Err((at(None), FeatureProblem::TooFewPositions(len)));
    }
    // The common case, a compacted ring: every element is a position already.
    if let Some(Element::Node(Coords::Positions { coords, .. })) = r {
        for (vi, c) in coords.iter().enumerate() {
            check_lon_lat(c.x, c.y).map_err(|p| (at(Some(vi)), p))?;
        }
        return closed(coords.first(), coords.last())
            .ok_or((at(None), FeatureProblem::UnclosedRing));
    }
    let mut first = None;
    let mut last = None;
    for vi in 0..len {
        let position = r.and_then(|r| r.element(vi));
        let c = position_of(position).map_err(|p| (at(Some(vi)), p))?;
        first.get_or_insert(c);
        last = Some(c);
    }
    closed(first.as_ref(), last.as_ref()).ok_or((at(None), FeatureProblem::UnclosedRing))
}

fn closed(first: Option<&Coord<f64>>, last: Option<&Coord<f64>>) -> Option<()> {
    (first == last).then_some(())
}

/// One `[lon, lat]` (or `[lon, lat, z]`) position, range checked.
fn position_of(pos: Option<Element<'_>>) -> Result<Coord<f64>, FeatureProblem> {
    let malformed = || {
        FeatureProblem::Malformed(msg!(
            "a position must be [longitude, latitude]",
            "坐标须为 [经度, 纬度]"
        ))
    };
    let pos = pos.ok_or_else(malformed)?;
    if pos.array_len().is_none_or(|len| len < 2) {
        return Err(malformed());
    }
    let (x, y) = match pos {
        Element::Position { at, .. } | Element::Node(&Coords::Position { at, .. }) => (at.x, at.y),
        Element::Node(c) => {
            let num = |i| {
                c.element(i)
                    .and_then(Element::number)
                    .ok_or(FeatureProblem::NotFinite)
            };
            (num(0)?, num(1)?)
        }
        Element::Number(_) | Element::Other => return Err(malformed()),
    };
    check_lon_lat(x, y)?;
    Ok(Coord { x, y })
}

/// Builds a polygon that `check_polygon` passed: a list of rings, each a compacted
/// ring or a list of positions.
fn build_polygon(p: Coords) -> Option<Polygon<f64>> {
    let Coords::List(rings) = p else {
        return None;
    };
    let mut rings = rings.into_iter().map(|r| match r {
        Coords::Positions { coords, .. } => LineString(coords),
        Coords::List(items) => LineString(
            items
                .into_iter()
                .filter_map(|c| match c {
                    Coords::Position { at, .. } => Some(at),
                    _ => None,
                })
                .collect(),
        ),
        _ => LineString(vec![]),
    });
    let exterior = rings.next()?;
    Some(Polygon::new(exterior, rings.collect()))
}

impl<'de> Deserialize<'de> for Coords {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CoordsVisitor)
    }
}

struct CoordsVisitor;

impl<'de> Visitor<'de> for CoordsVisitor {
    type Value = Coords;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("GeoJSON coordinates")
    }

    fn visit_f64<E>(self, v: f64) -> Result<Coords, E> {
        Ok(Coords::Number(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Coords, E> {
        Ok(Coords::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Coords, E> {
        Ok(Coords::Number(v as f64))
    }
    fn visit_str<E>(self, _: &str) -> Result<Coords, E> {
        Ok(Coords::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Coords, E> {
        Ok(Coords::Other)
    }
    fn visit_unit<E>(self) -> Result<Coords, E> {
        Ok(Coords::Other)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Coords, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Coords::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Coords, A::Error> {
        let Some(first) = seq.next_element::<Coords>()? else {
            return Ok(Coords::List(vec![]));
        };
        match first {
            Coords::Number(x) => numbers_from(x, seq),
            Coords::Position { at, len } => positions_from(at, len, seq),
            other => rest_of_list(vec![other], seq),
        }
    }
}

/// An array that began with the number `x`: a position if the next is a number too.
fn numbers_from<'de, A: SeqAccess<'de>>(x: f64, mut seq: A) -> Result<Coords, A::Error> {
    match seq.next_element::<Coords>()? {
        None => Ok(Coords::List(vec![Coords::Number(x)])),
        Some(Coords::Number(y)) => {
            let mut len = 2;
            while seq.next_element::<Skip>()?.is_some() {
                len += 1;
            }
            Ok(Coords::Position {
                at: Coord { x, y },
                len,
            })
        }
        Some(other) => rest_of_list(vec![Coords::Number(x), other], seq),
    }
}

/// An array that began with a position of `len` values: a ring while every element
/// is a position of the same length.
fn positions_from<'de, A: SeqAccess<'de>>(
    at: Coord<f64>,
    len: usize,
    mut seq: A,
) -> Result<Coords, A::Error> {
    let mut coords = Vec::with_capacity(seq.size_hint().unwrap_or(16).min(1 << 16) + 1);
    coords.push(at);
    while let Some(next) = seq.next_element::<Coords>()? {
        match next {
            Coords::Position { at, len: l } if l == len => coords.push(at),
            other => {
                let mut items: Vec<Coords> = coords
                    .into_iter()
                    .map(|at| Coords::Position { at, len })
                    .collect();
                items.push(other);
                return rest_of_list(items, seq);
            }
        }
    }
    Ok(Coords::Positions { coords, len })
}

fn rest_of_list<'de, A: SeqAccess<'de>>(
    mut items: Vec<Coords>,
    mut seq: A,
) -> Result<Coords, A::Error> {
    while let Some(next) = seq.next_element::<Coords>()? {
        items.push(next);
    }
    Ok(Coords::List(items))
}
