//! Directed edges as a multiset: cancellation of opposite pairs and assembly of what
//! remains into rings. Shared by the coverage validator (what does not cancel is where
//! a plan is wrong) and the synthetic generator (the union of cells that tile exactly).

use super::geom;
use geo_types::{Coord, LineString, MultiPolygon, Polygon, Rect};
use rustc_hash::FxHashMap;
use std::borrow::Borrow;

/// Bit pattern of a coordinate, with -0.0 folded into 0.0, for exact hashing.
#[inline]
pub fn key(c: Coord<f64>) -> (u64, u64) {
    ((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits())
}

/// An undirected edge as the bit patterns of its two endpoints, smaller first.
pub type EdgeKey = ((u64, u64), (u64, u64));

/// Edges `a → b` with net multiplicity: adding `a → b` then `b → a` leaves nothing.
///
/// Entries that cancel are removed at once, so when polygons arrive in spatial order
/// (see [`spatial_order`]) the map only ever holds the edges along the frontier of
/// what has been added: it stays in cache even for a million edges.
#[derive(Default)]
pub struct EdgeBag {
    net: FxHashMap<EdgeKey, (i32, Coord<f64>, Coord<f64>)>,
}

impl EdgeBag {
    /// Adds the directed edge `a → b` (ignored when degenerate).
    pub fn add(&mut self, a: Coord<f64>, b: Coord<f64>) {
        let (ka, kb) = (key(a), key(b));
        if ka == kb {
            return;
        }
        if ka < kb {
            self.count((ka, kb), 1, a, b);
        } else {
            self.count((kb, ka), -1, b, a);
        }
    }

    /// Adds `n` to the net multiplicity of the edge `lo → hi` keyed `k`, dropping it at 0.
    fn count(&mut self, k: EdgeKey, n: i32, lo: Coord<f64>, hi: Coord<f64>) {
        match self.net.entry(k) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                o.get_mut().0 += n;
                if o.get().0 == 0 {
                    o.remove();
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((n, lo, hi));
            }
        }
    }

    /// Adds every edge of every ring.
    pub fn add_rings(&mut self, mp: &MultiPolygon<f64>) {
        for r in geom::rings(mp) {
            for w in r.0.windows(2) {
                self.add(w[0], w[1]);
            }
        }
    }

    /// Adds every edge left in `other`, with its multiplicity: two bags filled from two
    /// halves of a plan hold, together, what one bag filled from all of it holds.
    pub fn absorb(&mut self, other: EdgeBag) {
        if self.net.is_empty() {
            self.net = other.net;
            return;
        }
        for (k, (n, lo, hi)) in other.net {
            self.count(k, n, lo, hi);
        }
    }

    /// The edges that did not cancel, each repeated by its multiplicity.
    pub fn remainder(&self) -> Vec<(Coord<f64>, Coord<f64>)> {
        let mut out = Vec::new();
        for &(n, lo, hi) in self.net.values() {
            for _ in 0..n.unsigned_abs() {
                out.push(if n > 0 { (lo, hi) } else { (hi, lo) });
            }
        }
        // Hash order is arbitrary; sort so results are reproducible.
        out.sort_by_key(|e| (key(e.0), key(e.1)));
        out
    }
}

/// Indices of `polys` in Z-order (Morton) of their bounding-box centres: neighbours
/// come close together, which keeps an [`EdgeBag`] small.
pub fn spatial_order<P: Borrow<MultiPolygon<f64>>>(polys: &[P]) -> Vec<usize> {
    let bounds: Vec<Option<Rect<f64>>> = polys.iter().map(|p| geom::bounds(p.borrow())).collect();
    spatial_order_of(&bounds)
}

/// [`spatial_order`] of polygons whose bounds are already known.
pub fn spatial_order_of(bounds: &[Option<Rect<f64>>]) -> Vec<usize> {
    let centres: Vec<Option<Coord<f64>>> = bounds.iter().map(|b| b.map(|r| r.center())).collect();
    let (mut min, mut max) = (
        Coord {
            x: f64::INFINITY,
            y: f64::INFINITY,
        },
        Coord {
            x: f64::NEG_INFINITY,
            y: f64::NEG_INFINITY,
        },
    );
    for c in centres.iter().flatten() {
        min.x = min.x.min(c.x);
        min.y = min.y.min(c.y);
        max.x = max.x.max(c.x);
        max.y = max.y.max(c.y);
    }
    let (w, h) = ((max.x - min.x).max(1e-12), (max.y - min.y).max(1e-12));
    let spread = |v: u32| -> u64 {
        let mut x = v as u64;
        x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        x = (x | (x << 2)) & 0x3333_3333_3333_3333;
        (x | (x << 1)) & 0x5555_5555_5555_5555
    };
    let mut keyed: Vec<(u64, usize)> = centres
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let z = c.map_or(0, |c| {
                let qx = (((c.x - min.x) / w) * 65535.0) as u32;
                let qy = (((c.y - min.y) / h) * 65535.0) as u32;
                spread(qx) | (spread(qy) << 1)
            });
            (z, i)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Assembles balanced directed edges (every vertex has as many edges in as out) into
/// closed rings. At a vertex with several ways on, it takes the sharpest right turn,
/// so regions that touch at a point come out as separate simple rings.
pub fn assemble_rings(edges: &[(Coord<f64>, Coord<f64>)]) -> Vec<Vec<Coord<f64>>> {
    let mut out_edges: FxHashMap<(u64, u64), Vec<usize>> = FxHashMap::default();
    for (i, e) in edges.iter().enumerate() {
        out_edges.entry(key(e.0)).or_default().push(i);
    }
    let mut used = vec![false; edges.len()];
    let mut rings = Vec::new();
    for start in 0..edges.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut ring = vec![edges[start].0, edges[start].1];
        let mut cur = start;
        loop {
            let (from, at) = edges[cur];
            if key(at) == key(ring[0]) && ring.len() > 2 {
                break;
            }
            let Some(cands) = out_edges.get(&key(at)) else {
                break;
            };
            // Sharpest right turn: smallest clockwise angle from the way back.
            let back = (from.x - at.x).atan2(from.y - at.y);
            let mut best: Option<(f64, usize)> = None;
            for &c in cands {
                if used[c] {
                    continue;
                }
                let to = edges[c].1;
                let ang = (to.x - at.x).atan2(to.y - at.y);
                // atan2(dx, dy) grows clockwise; the clockwise angle from `back`.
                let mut cw = ang - back;
                while cw <= 0.0 {
                    cw += std::f64::consts::TAU;
                }
                if best.is_none_or(|(b, _)| cw < b) {
                    best = Some((cw, c));
                }
            }
            let Some((_, next)) = best else {
                break;
            };
            used[next] = true;
            ring.push(edges[next].1);
            cur = next;
        }
        if ring.len() >= 4 && key(ring[0]) == key(*ring.last().unwrap_or(&ring[0])) {
            split_at_repeats(ring, &mut rings);
        }
    }
    rings
}

/// Splits a closed walk that visits a vertex twice into simple closed walks (OGC rings
/// may not touch themselves; a shell with a hole touching it at that vertex may).
pub(crate) fn split_at_repeats(ring: Vec<Coord<f64>>, out: &mut Vec<Vec<Coord<f64>>>) {
    let mut stack: Vec<Coord<f64>> = Vec::with_capacity(ring.len());
    let mut seen: FxHashMap<(u64, u64), usize> = FxHashMap::default();
    let n = ring.len() - 1; // the last vertex repeats the first
    for &c in &ring[..n] {
        if let Some(&at) = seen.get(&key(c)) {
            // stack[at..] + c is a closed sub-walk: cut it out.
            let mut sub: Vec<Coord<f64>> = stack.drain(at..).collect();
            for v in &sub[1..] {
                seen.remove(&key(*v));
            }
            sub.push(c);
            if sub.len() >= 4 {
                out.push(sub);
            }
            stack.push(c);
        } else {
            seen.insert(key(c), stack.len());
            stack.push(c);
        }
    }
    if let Some(&first) = stack.first() {
        stack.push(first);
        if stack.len() >= 4 {
            out.push(stack);
        }
    }
}

/// Turns counter-clockwise shells and clockwise holes into a multipolygon, each hole
/// under the smallest shell that contains it.
pub fn rings_to_multipolygon(rings: Vec<Vec<Coord<f64>>>) -> MultiPolygon<f64> {
    let (mut shells, mut holes): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for r in rings {
        let a = geom::ring_twice_area(&r);
        if a > 0.0 {
            shells.push((a, r));
        } else if a < 0.0 {
            holes.push(r);
        }
    }
    shells.sort_by(|a, b| a.0.total_cmp(&b.0));
    let shell_polys: Vec<MultiPolygon<f64>> = shells
        .iter()
        .map(|(_, r)| MultiPolygon(vec![Polygon::new(LineString(r.clone()), vec![])]))
        .collect();
    let set = super::pip::PolygonSet::new(&shell_polys);
    let mut assigned: Vec<Vec<LineString<f64>>> = vec![Vec::new(); shells.len()];
    for h in holes {
        // A point just inside the hole's first edge, on the shell side (left of a
        // clockwise hole edge is outside the hole).
        let (a, b) = (h[0], h[1]);
        let probe = Coord {
            x: (a.x + b.x) / 2.0,
            y: (a.y + b.y) / 2.0,
        };
        if let Some(i) = (0..shells.len() as u32)
            .find(|&i| set.contains(i, probe) || geom::lies_on_ring(&shells[i as usize].1, probe))
        {
            assigned[i as usize].push(LineString(h));
        }
    }
    MultiPolygon(
        shells
            .into_iter()
            .zip(assigned)
            .map(|((_, r), hs)| Polygon::new(LineString(r), hs))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    #[test]
    fn two_squares_sharing_an_edge_assemble_into_one_rectangle() {
        let a = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
        let b = polygon![(x: 1., y: 0.), (x: 2., y: 0.), (x: 2., y: 1.), (x: 1., y: 1.)];
        let mut bag = EdgeBag::default();
        bag.add_rings(&MultiPolygon(vec![a]));
        bag.add_rings(&MultiPolygon(vec![b]));
        let rem = bag.remainder();
        assert_eq!(rem.len(), 6);
        let mp = rings_to_multipolygon(assemble_rings(&rem));
        assert_eq!(mp.0.len(), 1);
        assert_eq!(geom::ring_twice_area(&mp.0[0].exterior().0), 4.0);
    }

    #[test]
    fn a_walk_through_a_vertex_twice_becomes_a_shell_and_a_touching_hole() {
        // Square with a triangular notch whose tip touches the boundary at (2, 0).
        let walk = [
            (0., 0.),
            (2., 0.),
            (1., 1.),
            (3., 1.),
            (2., 0.),
            (4., 0.),
            (4., 4.),
            (0., 4.),
            (0., 0.),
        ]
        .map(|(x, y)| Coord { x, y })
        .to_vec();
        let mut out = Vec::new();
        split_at_repeats(walk, &mut out);
        assert_eq!(out.len(), 2);
        let mp = rings_to_multipolygon(out);
        assert_eq!(mp.0.len(), 1);
        assert_eq!(mp.0[0].interiors().len(), 1);
        assert_eq!(crate::spatial::coverage::validity::check(&mp), None);
    }

    #[test]
    fn a_ring_of_cells_around_a_hole_keeps_the_hole() {
        // 3x3 unit cells without the centre one.
        let mut bag = EdgeBag::default();
        for i in 0..3 {
            for j in 0..3 {
                if (i, j) == (1, 1) {
                    continue;
                }
                let (x, y) = (i as f64, j as f64);
                bag.add_rings(&MultiPolygon(vec![polygon![
                    (x: x, y: y), (x: x + 1., y: y), (x: x + 1., y: y + 1.), (x: x, y: y + 1.)
                ]]));
            }
        }
        let mp = rings_to_multipolygon(assemble_rings(&bag.remainder()));
        assert_eq!(mp.0.len(), 1);
        assert_eq!(mp.0[0].interiors().len(), 1);
    }
}
