//! Web-Mercator tiles for the map: which lon/lat box a tile `z/x/y` covers, and a polygon
//! cut to a tile and written as Mapbox Vector Tile geometry commands (integer pixels in a
//! 4096-wide tile, a 64-pixel buffer, exteriors clockwise on screen, holes the other way).
//!
//! Cutting is Sutherland–Hodgman against the buffered square: the square is convex, so
//! every ring stays one ring; edges it adds run along the buffer, outside what a renderer
//! shows. Rounding to pixels then drops repeated points and rings that collapse, which is
//! what keeps a tile of a whole province small at low zooms.
//!
//! ```
//! use wangge::spatial::tiles::TileId;
//! let t = TileId::new(10, 853, 401).unwrap();
//! let b = t.lonlat_bounds(0.0);
//! assert!(b.min().x < 120.0 && b.max().x > 119.9);
//! ```

use geo::{Coord, LineString, MultiPolygon, Rect, Simplify};
use std::f64::consts::PI;

/// Pixels across a tile.
pub const EXTENT: u32 = 4096;
/// Pixels drawn beyond each edge, so outlines and fills meet across tiles.
pub const BUFFER: u32 = 64;
/// The deepest zoom served (a tile is then about 2.4 m across).
pub const MAX_ZOOM: u8 = 24;
/// Douglas–Peucker tolerance in tile pixels (8 tile pixels are one screen pixel).
const SIMPLIFY_PX: f64 = 2.0;
/// Web Mercator stops here.
const MAX_LAT: f64 = 85.051_128_779_806_59;

/// A tile that does not exist.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("no tile {z}/{x}/{y}: zoom is 0–{MAX_ZOOM} and x, y below 2^zoom")]
pub struct BadTile {
    pub z: u32,
    pub x: u32,
    pub y: u32,
}

impl crate::domain::Localised for BadTile {
    fn zh(&self) -> String {
        format!(
            "没有瓦片 {}/{}/{}：缩放级别为 0–{MAX_ZOOM}，x、y 须小于 2^缩放级别",
            self.z, self.x, self.y
        )
    }
}

/// One XYZ tile (y counted down from the north, as web maps do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    /// The tile, when it exists.
    pub fn new(z: u32, x: u32, y: u32) -> Result<TileId, BadTile> {
        let bad = BadTile { z, x, y };
        if z > MAX_ZOOM as u32 {
            return Err(bad);
        }
        let n = 1u64 << z;
        if x as u64 >= n || y as u64 >= n {
            return Err(bad);
        }
        Ok(TileId { z: z as u8, x, y })
    }

    fn tiles_across(&self) -> f64 {
        (1u64 << self.z) as f64
    }

    /// Tile pixel coordinates (may fall outside 0..EXTENT) of a lon/lat.
    pub fn pixel(&self, c: Coord<f64>) -> Coord<f64> {
        let n = self.tiles_across();
        let lat = c.y.clamp(-MAX_LAT, MAX_LAT).to_radians();
        let wx = (c.x + 180.0) / 360.0 * n;
        let wy = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / PI) / 2.0 * n;
        Coord {
            x: (wx - self.x as f64) * EXTENT as f64,
            y: (wy - self.y as f64) * EXTENT as f64,
        }
    }

    /// The lon/lat box of the tile grown by `margin` pixels on each side.
    pub fn lonlat_bounds(&self, margin: f64) -> Rect<f64> {
        let n = self.tiles_across();
        let m = margin / EXTENT as f64;
        let lon = |x: f64| x / n * 360.0 - 180.0;
        let lat = |y: f64| (PI * (1.0 - 2.0 * y / n)).sinh().atan().to_degrees();
        let (x0, x1) = (self.x as f64 - m, self.x as f64 + 1.0 + m);
        let (y0, y1) = (self.y as f64 - m, self.y as f64 + 1.0 + m);
        Rect::new(
            Coord {
                x: lon(x0),
                y: lat(y1),
            },
            Coord {
                x: lon(x1),
                y: lat(y0),
            },
        )
    }

    /// The tile at zoom `z` holding a lon/lat.
    pub fn at(z: u8, c: Coord<f64>) -> TileId {
        let probe = TileId { z, x: 0, y: 0 };
        let p = probe.pixel(c);
        let max = (1u64 << z) as f64 - 1.0;
        TileId {
            z,
            x: (p.x / EXTENT as f64).floor().clamp(0.0, max) as u32,
            y: (p.y / EXTENT as f64).floor().clamp(0.0, max) as u32,
        }
    }
}

/// A multipolygon as MVT geometry commands for `tile`: `None` when nothing of it is
/// larger than a pixel inside the buffered tile.
pub fn polygon_commands(shape: &MultiPolygon<f64>, tile: TileId) -> Option<Vec<u32>> {
    let lo = -(BUFFER as f64);
    let hi = (EXTENT + BUFFER) as f64;
    let mut out = CommandWriter::default();
    for polygon in shape {
        let Some(exterior) = pixel_ring(polygon.exterior(), tile, lo, hi) else {
            continue;
        };
        out.ring(&exterior, true);
        for hole in polygon.interiors() {
            if let Some(ring) = pixel_ring(hole, tile, lo, hi) {
                out.ring(&ring, false);
            }
        }
    }
    (!out.commands.is_empty()).then_some(out.commands)
}

/// A ring projected, cut to `[lo, hi]²`, rounded and cleaned; open (no repeated last
/// point); `None` when it covers no area.
fn pixel_ring(ring: &LineString<f64>, tile: TileId, lo: f64, hi: f64) -> Option<Vec<(i32, i32)>> {
    let mut pts: Vec<Coord<f64>> = ring.0.iter().map(|&c| tile.pixel(c)).collect();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    let (mut min, mut max) = (
        Coord {
            x: f64::MAX,
            y: f64::MAX,
        },
        Coord {
            x: f64::MIN,
            y: f64::MIN,
        },
    );
    for p in &pts {
        min.x = min.x.min(p.x);
        min.y = min.y.min(p.y);
        max.x = max.x.max(p.x);
        max.y = max.y.max(p.y);
    }
    if max.x < lo || min.x > hi || max.y < lo || min.y > hi {
        return None;
    }
    if min.x < lo || max.x > hi || min.y < lo || max.y > hi {
        pts = clip_to_square(&pts, lo, hi);
    }
    if pts.len() > 4 {
        // Detail finer than a quarter of a screen pixel (a tile is drawn 512 pixels
        // wide) is invisible; dropping it keeps low-zoom tiles of many grids small.
        pts.push(pts[0]);
        pts = LineString(pts).simplify(SIMPLIFY_PX).0;
        pts.pop();
    }
    let mut ring: Vec<(i32, i32)> = Vec::with_capacity(pts.len());
    for p in pts {
        let q = (p.x.round() as i32, p.y.round() as i32);
        if ring.last() != Some(&q) {
            ring.push(q);
        }
    }
    while ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    (ring.len() >= 3 && twice_area(&ring) != 0).then_some(ring)
}

/// Sutherland–Hodgman against the square `[lo, hi]²`.
fn clip_to_square(pts: &[Coord<f64>], lo: f64, hi: f64) -> Vec<Coord<f64>> {
    #[derive(Clone, Copy)]
    enum Edge {
        Left,
        Right,
        Top,
        Bottom,
    }
    let inside = |e: Edge, p: Coord<f64>| match e {
        Edge::Left => p.x >= lo,
        Edge::Right => p.x <= hi,
        Edge::Top => p.y >= lo,
        Edge::Bottom => p.y <= hi,
    };
    let cross = |e: Edge, a: Coord<f64>, b: Coord<f64>| {
        let (along_x, at) = match e {
            Edge::Left => (true, lo),
            Edge::Right => (true, hi),
            Edge::Top => (false, lo),
            Edge::Bottom => (false, hi),
        };
        if along_x {
            let t = (at - a.x) / (b.x - a.x);
            Coord {
                x: at,
                y: a.y + t * (b.y - a.y),
            }
        } else {
            let t = (at - a.y) / (b.y - a.y);
            Coord {
                x: a.x + t * (b.x - a.x),
                y: at,
            }
        }
    };
    let mut current = pts.to_vec();
    for e in [Edge::Left, Edge::Right, Edge::Top, Edge::Bottom] {
        let Some(&last) = current.last() else {
            break;
        };
        let mut next = Vec::with_capacity(current.len() + 4);
        let mut prev = last;
        for &p in &current {
            match (inside(e, prev), inside(e, p)) {
                (true, true) => next.push(p),
                (true, false) => next.push(cross(e, prev, p)),
                (false, true) => {
                    next.push(cross(e, prev, p));
                    next.push(p);
                }
                (false, false) => {}
            }
            prev = p;
        }
        current = next;
    }
    current
}

/// Twice the signed area, positive for clockwise on screen (y down).
fn twice_area(ring: &[(i32, i32)]) -> i64 {
    let mut sum = 0i64;
    for (i, &(x0, y0)) in ring.iter().enumerate() {
        let (x1, y1) = ring[(i + 1) % ring.len()];
        sum += x0 as i64 * y1 as i64 - x1 as i64 * y0 as i64;
    }
    sum
}

/// MVT command integers: MoveTo, LineTo, ClosePath with zig-zag deltas.
#[derive(Default)]
struct CommandWriter {
    commands: Vec<u32>,
    cursor: (i32, i32),
}

impl CommandWriter {
    fn ring(&mut self, ring: &[(i32, i32)], exterior: bool) {
        let clockwise = twice_area(ring) > 0;
        let ordered: Vec<(i32, i32)> = if clockwise == exterior {
            ring.to_vec()
        } else {
            ring.iter().rev().copied().collect()
        };
        self.commands.push(command(1, 1));
        self.delta(ordered[0]);
        self.commands.push(command(2, ordered.len() as u32 - 1));
        for &p in &ordered[1..] {
            self.delta(p);
        }
        self.commands.push(command(7, 1));
    }

    fn delta(&mut self, p: (i32, i32)) {
        self.commands.push(zigzag(p.0 - self.cursor.0));
        self.commands.push(zigzag(p.1 - self.cursor.1));
        self.cursor = p;
    }
}

fn command(id: u32, count: u32) -> u32 {
    (id & 7) | (count << 3)
}

fn zigzag(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Polygon, polygon};

    /// Decodes commands back to rings of absolute pixels.
    fn decode(cmds: &[u32]) -> Vec<Vec<(i32, i32)>> {
        let (mut rings, mut cur, mut pos, mut i) = (vec![], vec![], (0i32, 0i32), 0);
        let unzig = |v: u32| ((v >> 1) as i32) ^ -((v & 1) as i32);
        while i < cmds.len() {
            let (id, count) = (cmds[i] & 7, cmds[i] >> 3);
            i += 1;
            match id {
                1 | 2 => {
                    for _ in 0..count {
                        pos = (pos.0 + unzig(cmds[i]), pos.1 + unzig(cmds[i + 1]));
                        cur.push(pos);
                        i += 2;
                    }
                }
                7 => rings.push(std::mem::take(&mut cur)),
                _ => panic!("unknown command {id}"),
            }
        }
        rings
    }

    #[test]
    fn tiles_cover_the_world_and_agree_with_their_bounds() {
        assert!(TileId::new(25, 0, 0).is_err());
        assert!(TileId::new(3, 8, 0).is_err());
        let t = TileId::at(12, Coord { x: 118.0, y: 37.4 });
        let b = t.lonlat_bounds(0.0);
        assert!(b.min().x <= 118.0 && 118.0 <= b.max().x);
        assert!(b.min().y <= 37.4 && 37.4 <= b.max().y);
        let corner = t.pixel(b.min());
        assert!(corner.x.abs() < 1e-6 && (corner.y - EXTENT as f64).abs() < 1e-6);
    }

    #[test]
    fn a_polygon_inside_keeps_its_corners_and_turns_clockwise_on_screen() {
        let t = TileId::at(14, Coord { x: 118.0, y: 37.4 });
        let b = t.lonlat_bounds(0.0);
        let (w, h) = (b.width(), b.height());
        let (x0, y0) = (b.min().x + w * 0.25, b.min().y + h * 0.25);
        let square: Polygon<f64> = polygon![
            (x: x0, y: y0), (x: x0 + w / 2.0, y: y0), (x: x0 + w / 2.0, y: y0 + h / 2.0), (x: x0, y: y0 + h / 2.0)
        ];
        let rings = decode(&polygon_commands(&MultiPolygon(vec![square]), t).unwrap());
        assert_eq!(rings.len(), 1);
        assert_eq!(rings[0].len(), 4);
        assert!(twice_area(&rings[0]) > 0, "exterior clockwise on screen");
        for &(x, y) in &rings[0] {
            assert!(
                (1020..=3076).contains(&x) && (1020..=3076).contains(&y),
                "{x},{y}"
            );
        }
    }

    #[test]
    fn a_polygon_larger_than_the_tile_is_cut_to_the_buffer() {
        let t = TileId::at(14, Coord { x: 118.0, y: 37.4 });
        let big: Polygon<f64> = polygon![(x: 117.0, y: 37.0), (x: 119.0, y: 37.0), (x: 119.0, y: 38.0), (x: 117.0, y: 38.0)];
        let rings = decode(&polygon_commands(&MultiPolygon(vec![big]), t).unwrap());
        let lo = -(BUFFER as i32);
        let hi = (EXTENT + BUFFER) as i32;
        let mut xs: Vec<i32> = rings[0].iter().map(|p| p.0).collect();
        xs.sort();
        assert_eq!((xs[0], xs[xs.len() - 1]), (lo, hi));
        assert_eq!(twice_area(&rings[0]), 2 * ((hi - lo) as i64).pow(2));
    }

    #[test]
    fn holes_turn_the_other_way_and_specks_vanish() {
        let t = TileId::at(10, Coord { x: 118.0, y: 37.4 });
        let b = t.lonlat_bounds(0.0);
        let (x, y, w) = (b.min().x, b.min().y, b.width());
        let with_hole = Polygon::new(
            LineString::from(vec![
                (x + w * 0.1, y + w * 0.1),
                (x + w * 0.9, y + w * 0.1),
                (x + w * 0.9, y + w * 0.5),
                (x + w * 0.1, y + w * 0.5),
            ]),
            vec![LineString::from(vec![
                (x + w * 0.2, y + w * 0.2),
                (x + w * 0.3, y + w * 0.2),
                (x + w * 0.3, y + w * 0.3),
                (x + w * 0.2, y + w * 0.3),
            ])],
        );
        let speck: Polygon<f64> = polygon![(x: x + w * 0.5, y: y + w * 0.6), (x: x + w * 0.50001, y: y + w * 0.6), (x: x + w * 0.5, y: y + w * 0.60001)];
        let rings =
            decode(&polygon_commands(&MultiPolygon(vec![with_hole, speck.clone()]), t).unwrap());
        assert_eq!(rings.len(), 2);
        assert!(twice_area(&rings[0]) > 0 && twice_area(&rings[1]) < 0);
        assert_eq!(polygon_commands(&MultiPolygon(vec![speck]), t), None);
        let far: Polygon<f64> =
            polygon![(x: 10.0, y: 10.0), (x: 11.0, y: 10.0), (x: 11.0, y: 11.0)];
        assert_eq!(polygon_commands(&MultiPolygon(vec![far]), t), None);
    }
}
