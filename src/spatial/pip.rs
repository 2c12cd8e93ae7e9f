//! Indexed point-in-polygon over a set of polygons stored flat.
//!
//! Every ring of every polygon lives in one coordinate array; each polygon has its own
//! y-stripe index (after tg's "y-stripes"): its non-horizontal edges are bucketed into
//! horizontal stripes, and a crossing test looks at one stripe only.
//!
//! ## The boundary rule
//! A point is inside when a ray cast from it towards +x crosses the boundary an odd
//! number of times, where an edge counts when `min(y) <= py < max(y)` and the point is
//! strictly left of the edge (exact orientation test). That is the classic half-open
//! rule: a point is classified as if it were moved an infinitesimal distance **east**,
//! then an even smaller one **north**. In a tiling, every point of the covered area —
//! on a shared edge or on a vertex where several grids meet — therefore belongs to
//! exactly one grid: the one lying immediately east (north on an east–west edge) of it.

use super::geom;
use geo_types::{Coord, MultiPolygon, Rect};
use std::borrow::Borrow;

/// Polygons stored flat with a y-stripe index each.
#[derive(Debug, Default, Clone)]
pub struct PolygonSet {
    /// All rings of all polygons, each ring closed (first vertex repeated at its end).
    pub(crate) coords: Vec<Coord<f64>>,
    /// Start offset in `coords` of every ring, plus a final sentinel.
    pub(crate) ring_starts: Vec<u32>,
    pub(crate) polys: Vec<PolyMeta>,
    stripe_offsets: Vec<u32>,
    stripe_edges: Vec<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct PolyMeta {
    pub(crate) bbox: Rect<f64>,
    /// Range of ring indices in `ring_starts`.
    pub(crate) rings: std::ops::Range<u32>,
    y0: f64,
    inv_h: f64,
    n_stripes: u32,
    stripe_base: u32,
}

impl PolyMeta {
    /// Range of coordinate offsets owned by this polygon.
    pub(crate) fn coord_range(&self, set: &PolygonSet) -> std::ops::Range<u32> {
        set.ring_starts[self.rings.start as usize]..set.ring_starts[self.rings.end as usize]
    }
}

impl PolygonSet {
    /// Stores the polygons in order; polygon `i` of the input is index `i`.
    /// Empty multipolygons are kept (they contain nothing) so indices stay aligned.
    pub fn new<'a>(polygons: impl IntoIterator<Item = &'a MultiPolygon<f64>>) -> Self {
        let mut set = PolygonSet {
            ring_starts: vec![0],
            ..Default::default()
        };
        for mp in polygons {
            set.push(mp);
        }
        set
    }

    /// [`Self::new`] over a slice, built on `threads` threads; the same set whatever
    /// the number.
    pub fn build<P: Borrow<MultiPolygon<f64>> + Sync>(polygons: &[P], threads: usize) -> Self {
        let parts = super::parallel::in_parallel(polygons.len(), threads, |range| {
            PolygonSet::new(polygons[range].iter().map(Borrow::borrow))
        });
        let mut parts = parts.into_iter();
        let Some(mut set) = parts.next() else {
            return PolygonSet::new([]);
        };
        for part in parts {
            set.append(part);
        }
        set
    }

    /// Appends the polygons of `other`, renumbering its offsets.
    fn append(&mut self, other: PolygonSet) {
        let coord_base = self.coords.len() as u32;
        let ring_base = (self.ring_starts.len() - 1) as u32;
        let stripe_base = self.stripe_offsets.len() as u32;
        let stripe_edge_base = self.stripe_edges.len() as u32;
        self.coords.extend_from_slice(&other.coords);
        self.ring_starts
            .extend(other.ring_starts[1..].iter().map(|&s| s + coord_base));
        self.polys.extend(other.polys.into_iter().map(|mut m| {
            m.rings = m.rings.start + ring_base..m.rings.end + ring_base;
            m.stripe_base += stripe_base;
            m
        }));
        self.stripe_offsets
            .extend(other.stripe_offsets.iter().map(|&o| o + stripe_edge_base));
        self.stripe_edges
            .extend(other.stripe_edges.iter().map(|&k| k + coord_base));
    }

    fn push(&mut self, mp: &MultiPolygon<f64>) {
        let first_ring = (self.ring_starts.len() - 1) as u32;
        let first_coord = self.coords.len();
        for ring in geom::rings(mp) {
            if ring.0.len() < 4 {
                continue;
            }
            self.coords.extend_from_slice(&ring.0);
            if ring.0.first() != ring.0.last() {
                self.coords.push(ring.0[0]);
            }
            self.ring_starts.push(self.coords.len() as u32);
        }
        let last_ring = (self.ring_starts.len() - 1) as u32;
        let own = &self.coords[first_coord..];
        let bbox = geom::bounds_of(own.iter().copied()).unwrap_or(Rect::new(
            Coord { x: 0.0, y: 0.0 },
            Coord { x: 0.0, y: 0.0 },
        ));
        let edges = own.len().saturating_sub((last_ring - first_ring) as usize);
        // About two edges per stripe on average: measured as the sweet spot between
        // stripe memory and edges tested per lookup.
        let n_stripes = (edges / 2).clamp(1, 1 << 16) as u32;
        let h = (bbox.height() / n_stripes as f64).max(f64::MIN_POSITIVE);
        let meta = PolyMeta {
            bbox,
            rings: first_ring..last_ring,
            y0: bbox.min().y,
            inv_h: 1.0 / h,
            n_stripes,
            stripe_base: self.stripe_offsets.len() as u32,
        };
        // Counting sort of edges into stripes.
        let mut counts = vec![0u32; n_stripes as usize + 1];
        let ring_range = first_ring as usize..last_ring as usize;
        let each_edge = |ring_starts: &[u32], f: &mut dyn FnMut(u32)| {
            for r in ring_range.clone() {
                for k in ring_starts[r]..ring_starts[r + 1] - 1 {
                    f(k);
                }
            }
        };
        let coords = &self.coords;
        let stripe_span = |k: u32| -> Option<(u32, u32)> {
            let (a, b) = (coords[k as usize], coords[k as usize + 1]);
            if a.y == b.y {
                return None; // horizontal edges never cross the ray
            }
            let lo = meta.stripe_of(a.y.min(b.y));
            let hi = meta.stripe_of(a.y.max(b.y));
            Some((lo, hi))
        };
        each_edge(&self.ring_starts, &mut |k| {
            if let Some((lo, hi)) = stripe_span(k) {
                for s in lo..=hi {
                    counts[s as usize + 1] += 1;
                }
            }
        });
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let base = self.stripe_edges.len() as u32;
        let total = counts[n_stripes as usize] as usize;
        let mut fill = counts.clone();
        let mut local = vec![0u32; total];
        each_edge(&self.ring_starts, &mut |k| {
            if let Some((lo, hi)) = stripe_span(k) {
                for s in lo..=hi {
                    local[fill[s as usize] as usize] = k;
                    fill[s as usize] += 1;
                }
            }
        });
        self.stripe_edges.extend_from_slice(&local);
        self.stripe_offsets
            .extend(counts.iter().map(|c| c + base).take(n_stripes as usize + 1));
        self.polys.push(meta);
    }

    /// Frees the stripe index (the partition answers containment from its own
    /// raster); [`Self::contains`] then scans every edge of the polygon.
    pub(crate) fn drop_stripes(&mut self) {
        self.stripe_offsets = Vec::new();
        self.stripe_edges = Vec::new();
        self.coords.shrink_to_fit();
        self.ring_starts.shrink_to_fit();
        self.polys.shrink_to_fit();
    }

    /// Number of polygons.
    pub fn len(&self) -> usize {
        self.polys.len()
    }

    /// Whether the set holds no polygon.
    pub fn is_empty(&self) -> bool {
        self.polys.is_empty()
    }

    /// Bounding box of polygon `i`.
    pub fn bbox(&self, i: u32) -> Rect<f64> {
        self.polys[i as usize].bbox
    }

    /// Whether polygon `i` contains `p` under the boundary rule in the module docs.
    #[inline]
    pub fn contains(&self, i: u32, p: Coord<f64>) -> bool {
        let m = &self.polys[i as usize];
        let (min, max) = (m.bbox.min(), m.bbox.max());
        if p.y < min.y || p.y >= max.y || p.x >= max.x {
            return false;
        }
        if self.stripe_offsets.is_empty() {
            // Stripes dropped: the same test over every edge.
            let mut inside = false;
            self.for_each_edge(i, |k| {
                let (a, b) = self.edge(k);
                if geom::crosses_ray(a, b, p) {
                    inside = !inside;
                }
            });
            return inside;
        }
        let s = (m.stripe_base + m.stripe_of(p.y)) as usize;
        let (from, to) = (self.stripe_offsets[s], self.stripe_offsets[s + 1]);
        let mut inside = false;
        for &k in &self.stripe_edges[from as usize..to as usize] {
            let (a, b) = self.edge(k);
            if geom::crosses_ray(a, b, p) {
                inside = !inside;
            }
        }
        inside
    }

    /// Calls `f(k)` for every edge `coords[k] → coords[k+1]` of polygon `i`.
    pub(crate) fn for_each_edge(&self, i: u32, mut f: impl FnMut(u32)) {
        let m = &self.polys[i as usize];
        for r in m.rings.start as usize..m.rings.end as usize {
            for k in self.ring_starts[r]..self.ring_starts[r + 1] - 1 {
                f(k);
            }
        }
    }

    /// The ring (index into `ring_starts`) holding coordinate offset `k`.
    /// The ring holding edge `k` of polygon `i`: searched among that polygon's rings
    /// only (usually one).
    fn ring_of(&self, i: u32, k: u32) -> usize {
        let rings = &self.polys[i as usize].rings;
        let own = &self.ring_starts[rings.start as usize..rings.end as usize];
        rings.start as usize + own.partition_point(|&s| s <= k) - 1
    }

    /// The edge before edge `k` of polygon `i` in its ring (cyclically).
    pub(crate) fn prev_edge_of(&self, i: u32, k: u32) -> u32 {
        let r = self.ring_of(i, k);
        if k == self.ring_starts[r] {
            self.ring_starts[r + 1] - 2
        } else {
            k - 1
        }
    }

    /// The edge after edge `k` of polygon `i` in its ring (cyclically).
    pub(crate) fn next_edge_of(&self, i: u32, k: u32) -> u32 {
        let r = self.ring_of(i, k);
        if k + 2 == self.ring_starts[r + 1] {
            self.ring_starts[r]
        } else {
            k + 1
        }
    }

    /// The edge starting at coordinate offset `k`.
    #[inline]
    pub(crate) fn edge(&self, k: u32) -> (Coord<f64>, Coord<f64>) {
        (self.coords[k as usize], self.coords[k as usize + 1])
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.coords.capacity() * std::mem::size_of::<Coord<f64>>()
            + (self.ring_starts.capacity()
                + self.stripe_offsets.capacity()
                + self.stripe_edges.capacity())
                * 4
            + self.polys.capacity() * std::mem::size_of::<PolyMeta>()
    }
}

impl PolyMeta {
    #[inline]
    fn stripe_of(&self, y: f64) -> u32 {
        // Monotone in y, so an edge registered from stripe_of(min y) to stripe_of(max y)
        // is found from every y it spans.
        let s = ((y - self.y0) * self.inv_h) as i64;
        s.clamp(0, self.n_stripes as i64 - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{MultiPolygon, coord, polygon};

    fn squares() -> PolygonSet {
        // Two unit squares side by side, sharing the edge x = 1.
        let a = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
        let b = polygon![(x: 1., y: 0.), (x: 2., y: 0.), (x: 2., y: 1.), (x: 1., y: 1.)];
        PolygonSet::new(&[MultiPolygon(vec![a]), MultiPolygon(vec![b])])
    }

    #[test]
    fn a_point_on_a_shared_edge_belongs_to_the_grid_east_of_it() {
        let s = squares();
        let p = coord! {x: 1.0, y: 0.5};
        assert!(!s.contains(0, p));
        assert!(s.contains(1, p));
    }

    #[test]
    fn a_point_on_an_east_west_edge_belongs_to_the_grid_north_of_it() {
        let s = squares();
        assert!(s.contains(0, coord! {x: 0.5, y: 0.0}));
        assert!(!s.contains(0, coord! {x: 0.5, y: 1.0}));
    }

    #[test]
    fn a_vertex_shared_by_both_squares_has_exactly_one_owner() {
        let s = squares();
        let p = coord! {x: 1.0, y: 0.0};
        assert_eq!(s.contains(0, p) as u8 + s.contains(1, p) as u8, 1);
    }

    #[test]
    fn holes_are_outside() {
        let p = polygon![
            exterior: [(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 4.)],
            interiors: [[(x: 1., y: 1.), (x: 1., y: 2.), (x: 2., y: 2.), (x: 2., y: 1.)]],
        ];
        let s = PolygonSet::new(&[MultiPolygon(vec![p])]);
        assert!(!s.contains(0, coord! {x: 1.5, y: 1.5}));
        assert!(s.contains(0, coord! {x: 3.0, y: 3.0}));
    }
}
