//! The plane cut by every ring of a set of polygons into faces, each face knowing how
//! often each ring winds around it. A repair builds its grids from whole faces, so two
//! neighbours share their edges by construction rather than by agreeing to the last
//! bit after separate polygon operations.
//!
//! Coordinates are rounded to an integer grid of 10⁻⁹ degree (about 0.1 mm) and the
//! edges are *snap rounded* (Hobby 1999; Guibas & Marimont 1998, as in GEOS's
//! `SnapRoundingNoder`): every crossing becomes a vertex at its rounded position and
//! every edge passing through the pixel of a vertex is routed through that vertex,
//! repeated until nothing crosses. All predicates are exact integer arithmetic. A
//! vertex that was an input vertex keeps the input's exact coordinates on the way out,
//! so an edge that touches no problem comes out as it went in.
//!
//! Faces are found as in a doubly connected edge list: at each vertex the edges are
//! sorted by angle, and a face is the cycle of "next" half-edges on its left. The
//! winding number of every ring around every face is then propagated from face to
//! face across edges (each edge records how many times each ring runs along it, in
//! which direction); each separate piece of the plane gets its starting windings, and
//! the face it lies in, from one exact ray cast.

use super::cells::Cells;
use geo_types::Coord;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Ordering;
use std::time::Instant;

/// Integer units per degree.
pub(crate) const UNITS: f64 = 1e9;

/// Rounds of snap rounding before the noding is given up as not converging.
const MAX_ROUNDS: usize = 24;

/// A point on the integer grid.
type P = [i64; 2];

/// Which ring set an edge comes from, chosen by the caller (a repair gives each
/// grid's shells and holes their own, so a hole does not cancel another grid's shell).
pub(crate) type Source = u32;

/// How often each source winds around a face, sorted by source, zeros left out.
pub(crate) type Winding = Vec<(Source, i32)>;

/// The unbounded face: what lies outside everything.
pub(crate) const OUTSIDE: u32 = 0;

/// A face of the plane.
#[derive(Debug, Clone, Default)]
pub(crate) struct Face {
    pub winding: Winding,
    /// Twice the signed area in integer units², holes subtracted.
    area2: i128,
}

impl Face {
    /// How often `source` winds around this face.
    pub fn winding_of(&self, source: Source) -> i32 {
        self.winding
            .binary_search_by_key(&source, |&(s, _)| s)
            .map_or(0, |i| self.winding[i].1)
    }
}

/// The plane cut by the rings, with its faces (face 0 is [`OUTSIDE`]).
pub(crate) struct Plane {
    points: Vec<P>,
    coords: Vec<Coord<f64>>,
    /// Edge `e` runs from `ends[e][0]` to `ends[e][1]`; its half-edges are `2e` (that
    /// way) and `2e + 1` (back).
    ends: Vec<[u32; 2]>,
    /// Per edge, how many times each source runs along it from `ends[0]` to `ends[1]`
    /// (negative: the other way).
    delta: Vec<Winding>,
    /// Outgoing half-edges per vertex, counter-clockwise from east.
    out: Vec<Vec<u32>>,
    /// Position of each half-edge in its origin's `out`.
    pos: Vec<u32>,
    /// The face on the left of each half-edge.
    face: Vec<u32>,
    pub faces: Vec<Face>,
}

/// The noding did not finish: the deadline passed, or snap rounding did not settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfinished;

impl Plane {
    /// Cuts the plane by `rings` (closed: the last vertex repeats the first). The
    /// rings of `fixed` sources are not to move: a vertex the cut puts inside one of
    /// their edges is placed on that edge (to the rounding of one coordinate), not at
    /// its pixel or its own input position, so that a boundary running along them
    /// matches them.
    pub fn build(
        rings: &[(Source, &[Coord<f64>])],
        fixed: impl Fn(Source) -> bool,
        deadline: Option<Instant>,
    ) -> Result<Plane, Unfinished> {
        let late = || deadline.is_some_and(|d| Instant::now() >= d);
        let Some((ox, oy)) = rings
            .iter()
            .flat_map(|(_, r)| r.iter())
            .map(|c| (c.x.floor(), c.y.floor()))
            .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
        else {
            return Ok(Plane::empty());
        };
        let grid = |c: Coord<f64>| -> P {
            [
                ((c.x - ox) * UNITS).round() as i64,
                ((c.y - oy) * UNITS).round() as i64,
            ]
        };
        let edges: usize = rings.iter().map(|(_, r)| r.len()).sum();
        // The input's own coordinates for every grid point one lands on (the first).
        let mut exact: FxHashMap<P, Coord<f64>> =
            FxHashMap::with_capacity_and_hasher(edges, Default::default());
        let mut seg_id: FxHashMap<(P, P), u32> =
            FxHashMap::with_capacity_and_hasher(edges, Default::default());
        let mut segs: Vec<(P, P)> = Vec::with_capacity(edges);
        let mut seg_delta: Vec<Winding> = Vec::with_capacity(edges);
        let mut fixed_vertices: FxHashSet<P> = FxHashSet::default();
        for &(source, ring) in rings {
            let fixed = fixed(source);
            for w in ring.windows(2) {
                let (a, b) = (grid(w[0]), grid(w[1]));
                exact.entry(a).or_insert(w[0]);
                exact.entry(b).or_insert(w[1]);
                if fixed {
                    fixed_vertices.insert(a);
                }
                if a == b {
                    continue;
                }
                let (key, sign) = undirected(a, b);
                let id = *seg_id.entry(key).or_insert_with(|| {
                    segs.push(key);
                    seg_delta.push(Winding::new());
                    (segs.len() - 1) as u32
                });
                add_to(&mut seg_delta[id as usize], source, sign);
            }
        }
        drop(seg_id);
        let chains = node(&segs, &late)?;
        // Vertices inside a fixed edge, and that edge as the input had it.
        let mut on_fixed: FxHashMap<P, (Coord<f64>, Coord<f64>)> = FxHashMap::default();
        for ((chain, d), &(a, b)) in chains.iter().zip(&seg_delta).zip(&segs) {
            if chain.len() > 2 && d.iter().any(|&(s, _)| fixed(s)) {
                let edge = (exact[&a], exact[&b]);
                for &p in &chain[1..chain.len() - 1] {
                    if !fixed_vertices.contains(&p) {
                        on_fixed.insert(p, edge);
                    }
                }
            }
        }

        // Edges: every piece of every chain, with what runs along it.
        let pieces: usize = chains.iter().map(|c| c.len().saturating_sub(1)).sum();
        let mut vertex_id: FxHashMap<P, u32> =
            FxHashMap::with_capacity_and_hasher(pieces, Default::default());
        let mut points: Vec<P> = Vec::with_capacity(pieces);
        let mut edge_id: FxHashMap<(u32, u32), u32> =
            FxHashMap::with_capacity_and_hasher(pieces, Default::default());
        let mut ends: Vec<[u32; 2]> = Vec::with_capacity(pieces);
        let mut delta: Vec<Winding> = Vec::with_capacity(pieces);
        for (chain, d) in chains.iter().zip(&seg_delta) {
            if d.is_empty() {
                continue;
            }
            let mut vid = |p: P| -> u32 {
                *vertex_id.entry(p).or_insert_with(|| {
                    points.push(p);
                    (points.len() - 1) as u32
                })
            };
            let ids: Vec<u32> = chain.iter().map(|&p| vid(p)).collect();
            for w in ids.windows(2) {
                let (a, b) = (w[0], w[1]);
                let (key, sign) = if points[a as usize] < points[b as usize] {
                    ((a, b), 1)
                } else {
                    ((b, a), -1)
                };
                let e = *edge_id.entry(key).or_insert_with(|| {
                    ends.push([key.0, key.1]);
                    delta.push(Winding::new());
                    (ends.len() - 1) as u32
                });
                for &(s, k) in d {
                    add_to(&mut delta[e as usize], s, sign * k);
                }
            }
        }
        // What runs both ways as often bounds nothing (spikes, a ring traced back).
        let keep: Vec<usize> = (0..ends.len()).filter(|&e| !delta[e].is_empty()).collect();
        let ends: Vec<[u32; 2]> = keep.iter().map(|&e| ends[e]).collect();
        let delta: Vec<Winding> = keep
            .iter()
            .map(|&e| std::mem::take(&mut delta[e]))
            .collect();
        let coords = points
            .iter()
            .map(|p| {
                let at = exact.get(p).copied().unwrap_or(Coord {
                    x: ox + p[0] as f64 / UNITS,
                    y: oy + p[1] as f64 / UNITS,
                });
                match on_fixed.get(p) {
                    Some(&(a, b)) => projection(at, a, b),
                    None => at,
                }
            })
            .collect();
        let mut plane = Plane {
            points,
            coords,
            ends,
            delta,
            out: Vec::new(),
            pos: Vec::new(),
            face: Vec::new(),
            faces: Vec::new(),
        };
        plane.link();
        if late() {
            return Err(Unfinished);
        }
        plane.find_faces(&late)?;
        Ok(plane)
    }

    fn empty() -> Plane {
        Plane {
            points: Vec::new(),
            coords: Vec::new(),
            ends: Vec::new(),
            delta: Vec::new(),
            out: Vec::new(),
            pos: Vec::new(),
            face: Vec::new(),
            faces: vec![Face::default()],
        }
    }

    fn origin(&self, h: u32) -> u32 {
        self.ends[(h / 2) as usize][(h % 2) as usize]
    }

    fn direction(&self, h: u32) -> P {
        let (a, b) = (
            self.points[self.origin(h) as usize],
            self.points[self.origin(h ^ 1) as usize],
        );
        [b[0] - a[0], b[1] - a[1]]
    }

    /// The next half-edge around the face on the left of `h`.
    fn next(&self, h: u32) -> u32 {
        let t = h ^ 1;
        let around = &self.out[self.origin(t) as usize];
        let k = self.pos[t as usize] as usize;
        around[(k + around.len() - 1) % around.len()]
    }

    /// What runs along half-edge `h`'s way, per source.
    fn delta_of(&self, h: u32) -> impl Iterator<Item = (Source, i32)> + '_ {
        let sign = if h.is_multiple_of(2) { 1 } else { -1 };
        self.delta[(h / 2) as usize]
            .iter()
            .map(move |&(s, k)| (s, sign * k))
    }

    /// Sorts each vertex's outgoing half-edges by angle.
    fn link(&mut self) {
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); self.points.len()];
        for h in 0..(2 * self.ends.len()) as u32 {
            out[self.origin(h) as usize].push(h);
        }
        let mut pos = vec![0u32; 2 * self.ends.len()];
        for list in out.iter_mut() {
            list.sort_by(|&a, &b| by_angle(self.direction(a), self.direction(b)));
            for (k, &h) in list.iter().enumerate() {
                pos[h as usize] = k as u32;
            }
        }
        self.out = out;
        self.pos = pos;
    }

    /// Traces the cycles, places each separate piece in the face around it, and
    /// propagates windings.
    fn find_faces(&mut self, late: &impl Fn() -> bool) -> Result<(), Unfinished> {
        let halves = 2 * self.ends.len();
        const NONE: u32 = u32::MAX;
        let mut cycle = vec![NONE; halves];
        let mut first: Vec<u32> = Vec::new();
        let mut area2: Vec<i128> = Vec::new();
        for h in 0..halves as u32 {
            if cycle[h as usize] != NONE {
                continue;
            }
            let c = first.len() as u32;
            first.push(h);
            let mut a = 0i128;
            let mut cur = h;
            loop {
                cycle[cur as usize] = c;
                let (p, q) = (
                    self.points[self.origin(cur) as usize],
                    self.points[self.origin(cur ^ 1) as usize],
                );
                a += cross(p, q);
                cur = self.next(cur);
                if cur == h {
                    break;
                }
            }
            area2.push(a);
        }
        let cycles = first.len();

        // Separate pieces of the plane (connected components).
        let mut comp: Vec<u32> = (0..self.points.len() as u32).collect();
        fn root(comp: &mut [u32], mut v: u32) -> u32 {
            while comp[v as usize] != v {
                comp[v as usize] = comp[comp[v as usize] as usize];
                v = comp[v as usize];
            }
            v
        }
        for e in &self.ends {
            let (a, b) = (root(&mut comp, e[0]), root(&mut comp, e[1]));
            if a != b {
                comp[a.max(b) as usize] = a.min(b);
            }
        }
        let edge_piece: Vec<u32> = (0..self.ends.len())
            .map(|e| root(&mut comp, self.ends[e][0]))
            .collect();

        // Each piece's outer cycle (the one with area ≤ 0) and its leftmost vertex.
        let outer_cycles: Vec<u32> = (0..cycles as u32)
            .filter(|&c| area2[c as usize] <= 0)
            .collect();
        let stripes = Stripes::new(self);
        let mut windings: Vec<Option<Winding>> = vec![None; cycles];
        // The cycle on the far side of the nearest edge west of each outer cycle.
        let mut container: Vec<Option<u32>> = vec![None; cycles];
        for (k, &c) in outer_cycles.iter().enumerate() {
            if k % 1024 == 0 && late() {
                return Err(Unfinished);
            }
            let h0 = first[c as usize];
            let mut v = self.origin(h0);
            let mut cur = self.next(h0);
            while cur != h0 {
                let o = self.origin(cur);
                let (a, b) = (self.points[o as usize], self.points[v as usize]);
                if (a[0], a[1]) < (b[0], b[1]) {
                    v = o;
                }
                cur = self.next(cur);
            }
            let piece = edge_piece[(h0 / 2) as usize];
            let (w, nearest) = stripes.cast_west(self, self.points[v as usize], |e| {
                edge_piece[e as usize] != piece
            });
            windings[c as usize] = Some(w);
            container[c as usize] = nearest.map(|h| cycle[h as usize]);
        }

        // Windings spread across edges: the left of h winds as its right plus what
        // runs along h.
        let mut queue: Vec<u32> = outer_cycles.clone();
        while let Some(c) = queue.pop() {
            let Some(w) = windings[c as usize].clone() else {
                continue;
            };
            let h0 = first[c as usize];
            let mut h = h0;
            loop {
                let other = cycle[(h ^ 1) as usize] as usize;
                if windings[other].is_none() {
                    let mut w2 = w.clone();
                    for (s, k) in self.delta_of(h) {
                        add_to(&mut w2, s, -k);
                    }
                    windings[other] = Some(w2);
                    queue.push(other as u32);
                }
                h = self.next(h);
                if h == h0 {
                    break;
                }
            }
        }

        // Faces: face 0 outside everything, then one per bounded cycle; an outer
        // cycle belongs to the face around its piece.
        let mut face_of_cycle = vec![NONE; cycles];
        let mut faces = vec![Face::default()];
        for c in 0..cycles {
            if area2[c] > 0 {
                face_of_cycle[c] = faces.len() as u32;
                faces.push(Face {
                    winding: windings[c].take().unwrap_or_default(),
                    area2: 0,
                });
            }
        }
        for &c in &outer_cycles {
            // Follow containers out to a bounded face (or nothing); a chain of outer
            // cycles is as deep as pieces nest.
            let mut at = c;
            let mut f = OUTSIDE;
            for _ in 0..cycles {
                match container[at as usize] {
                    None => break,
                    Some(next) if area2[next as usize] > 0 => {
                        f = face_of_cycle[next as usize];
                        break;
                    }
                    Some(next) => at = next,
                }
            }
            face_of_cycle[c as usize] = f;
        }
        for c in 0..cycles {
            faces[face_of_cycle[c] as usize].area2 += area2[c];
        }
        self.face = cycle.iter().map(|&c| face_of_cycle[c as usize]).collect();
        self.faces = faces;
        Ok(())
    }

    /// The face on the left of each half-edge.
    pub fn face_left(&self, h: u32) -> u32 {
        self.face[h as usize]
    }

    /// The number of half-edges.
    pub fn half_edges(&self) -> u32 {
        (2 * self.ends.len()) as u32
    }

    /// The two ends of half-edge `h`, in the input's coordinates where it had a vertex.
    pub fn segment(&self, h: u32) -> (Coord<f64>, Coord<f64>) {
        (
            self.coords[self.origin(h) as usize],
            self.coords[self.origin(h ^ 1) as usize],
        )
    }

    /// Area of a face in square degrees (holes subtracted).
    pub fn face_area_deg2(&self, f: u32) -> f64 {
        self.faces[f as usize].area2 as f64 / 2.0 / (UNITS * UNITS)
    }

    /// The boundaries of every region: for each half-edge whose face's region differs
    /// from its twin's, walks the region's boundary (the region on the left: shells
    /// counter-clockwise, holes clockwise). At a vertex where a region touches itself
    /// it turns as tightly as it can; a ring may still pass a vertex twice (a hole
    /// touching its shell there), which the caller splits. Returns
    /// (region, closed ring) pairs.
    pub fn boundaries(&self, region_of_face: &[u32], none: u32) -> Vec<(u32, Vec<Coord<f64>>)> {
        let region = |h: u32| region_of_face[self.face[h as usize] as usize];
        let mut used = vec![false; self.face.len()];
        let mut rings = Vec::new();
        for h in 0..self.half_edges() {
            let r = region(h);
            if used[h as usize] || r == none || region(h ^ 1) == r {
                continue;
            }
            let mut ring = Vec::new();
            let mut cur = h;
            loop {
                used[cur as usize] = true;
                ring.push(self.coords[self.origin(cur) as usize]);
                let mut n = self.next(cur);
                let degree = self.out[self.origin(n) as usize].len();
                let mut turns = 0;
                while region(n ^ 1) == r && turns <= degree {
                    n = self.next(n ^ 1);
                    turns += 1;
                }
                if n == h || used[n as usize] || ring.len() > self.face.len() {
                    break;
                }
                cur = n;
            }
            if ring.len() >= 3 {
                ring.push(ring[0]);
                rings.push((r, ring));
            }
        }
        rings
    }
}

/// The point of segment `a b` nearest to `p` (exact on axis-parallel segments, else
/// within a few units of the last place of the coordinates).
fn projection(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> Coord<f64> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    if dx == 0.0 {
        return Coord { x: a.x, y: p.y };
    }
    if dy == 0.0 {
        return Coord { x: p.x, y: a.y };
    }
    let t = (((p.x - a.x) * dx + (p.y - a.y) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    Coord {
        x: a.x + t * dx,
        y: a.y + t * dy,
    }
}

/// A segment as its ends in order, and +1 if it runs that way, -1 if back.
fn undirected(a: P, b: P) -> ((P, P), i32) {
    if a < b { ((a, b), 1) } else { ((b, a), -1) }
}

/// Adds `k` to `source`'s count, keeping the list sorted and free of zeros.
fn add_to(w: &mut Winding, source: Source, k: i32) {
    match w.binary_search_by_key(&source, |&(s, _)| s) {
        Ok(i) => {
            w[i].1 += k;
            if w[i].1 == 0 {
                w.remove(i);
            }
        }
        Err(i) => {
            if k != 0 {
                w.insert(i, (source, k));
            }
        }
    }
}

fn cross(a: P, b: P) -> i128 {
    a[0] as i128 * b[1] as i128 - a[1] as i128 * b[0] as i128
}

fn orient(a: P, b: P, c: P) -> i128 {
    cross([b[0] - a[0], b[1] - a[1]], [c[0] - a[0], c[1] - a[1]])
}

/// Counter-clockwise from east (east itself first).
fn by_angle(d1: P, d2: P) -> Ordering {
    let half = |d: P| u8::from(!(d[1] > 0 || (d[1] == 0 && d[0] > 0)));
    half(d1).cmp(&half(d2)).then_with(|| 0.cmp(&cross(d1, d2)))
}

/// `n / d` rounded to the nearest integer (halves up).
fn div_round(n: i128, d: i128) -> i128 {
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    (2 * n + d).div_euclid(2 * d)
}

/// Where two segments cross at a point inside both, rounded to the grid.
fn crossing(a: P, b: P, c: P, d: P) -> Option<P> {
    let (o1, o2) = (orient(a, b, c), orient(a, b, d));
    let (o3, o4) = (orient(c, d, a), orient(c, d, b));
    if o1.signum() * o2.signum() >= 0 || o3.signum() * o4.signum() >= 0 {
        return None;
    }
    let ab = [b[0] - a[0], b[1] - a[1]];
    let cd = [d[0] - c[0], d[1] - c[1]];
    let den = cross(ab, cd);
    let num = cross([c[0] - a[0], c[1] - a[1]], cd);
    Some([
        a[0] + div_round(num * ab[0] as i128, den) as i64,
        a[1] + div_round(num * ab[1] as i128, den) as i64,
    ])
}

/// Where piece `a b` crosses the pieces filed along it that `keep` admits.
fn crossings(
    cells: &Cells,
    pieces: &[(P, P)],
    (a, b): (P, P),
    keep: impl Fn(u32) -> bool,
) -> Vec<P> {
    let mut found = Vec::new();
    cells.along(a, b, |x| {
        if keep(x) {
            let (c, d) = pieces[x as usize];
            found.extend(crossing(a, b, c, d));
        }
    });
    found
}

/// Whether `c` lies within one unit of the line through `a b`: a cheap test that
/// rules out most candidates of a long edge's bounding box before the exact one (a
/// pixel's corners are √½ unit from its centre; the margin covers the rounding).
fn near_line(a: P, b: P, c: P) -> bool {
    // Exact in integers; only the comparison of squares is in floating point, where
    // a relative error of 10⁻¹⁶ is nothing against the margin.
    let twice_area = orient(a, b, c) as f64;
    let (dx, dy) = ((b[0] - a[0]) as f64, (b[1] - a[1]) as f64);
    twice_area * twice_area <= dx * dx + dy * dy
}

/// Whether segment `a b` meets the pixel centred on `c`: the unit square with its
/// bottom and left sides and without its top and right ones (as GEOS's `HotPixel`),
/// so that a segment through a pixel corner meets one pixel there, not four (with
/// four, two pieces could route each other through alternate corners for ever). The
/// caller has checked that `c` lies in the segment's bounding box.
fn meets_pixel(a: P, b: P, c: P) -> bool {
    // Doubled coordinates: the square's sides are odd integers.
    let (ax, ay) = (2 * a[0] as i128, 2 * a[1] as i128);
    let (dx, dy) = (2 * (b[0] - a[0]) as i128, 2 * (b[1] - a[1]) as i128);
    let (left, right) = (2 * c[0] as i128 - 1, 2 * c[0] as i128 + 1);
    let (bottom, top) = (2 * c[1] as i128 - 1, 2 * c[1] as i128 + 1);
    // Parameters along the segment as fractions (numerator, positive denominator).
    let (mut lo, mut hi) = ((0i128, 1i128), (1i128, 1i128));
    let less = |p: (i128, i128), q: (i128, i128)| p.0 * q.1 < q.0 * p.1;
    for (start, d, min, max) in [(ax, dx, left, right), (ay, dy, bottom, top)] {
        if d == 0 {
            if start < min || start > max {
                return false;
            }
            continue;
        }
        let (mut enter, mut leave) = ((min - start, d), (max - start, d));
        if d < 0 {
            (enter, leave) = ((-(max - start), -d), (-(min - start), -d));
        }
        if less(lo, enter) {
            lo = enter;
        }
        if less(leave, hi) {
            hi = leave;
        }
    }
    if less(hi, lo) {
        return false;
    }
    // What the closed square holds of the segment runs from t = lo to t = hi; it is
    // outside the half-open pixel only if it lies wholly on the top or the right side.
    let at =
        |t: (i128, i128), start: i128, d: i128, side: i128| start * t.1 + t.0 * d == side * t.1;
    let on_top = at(lo, ay, dy, top) && at(hi, ay, dy, top);
    let on_right = at(lo, ax, dx, right) && at(hi, ax, dx, right);
    !(on_top || on_right)
}

/// Snap rounding: splits every segment at the pixels of vertices and crossings it
/// passes through, again and again until nothing is left to split. Returns, per
/// segment, its chain of vertices from its first end to its second.
///
/// The first round tests every pair of pieces and every piece against every hot
/// pixel. A later round tests only what the round before made new: a piece that was
/// not split meets none of the hot pixels known then and crosses no other such piece
/// away from them, so only the fresh pieces (cut from split ones) are tested against
/// everything, and the old ones only against the pixels of fresh crossings. The
/// result is the same as testing everything every round; a round costs what changed.
fn node(segs: &[(P, P)], late: &impl Fn() -> bool) -> Result<Vec<Vec<P>>, Unfinished> {
    let mut chains: Vec<Vec<P>> = segs.iter().map(|&(a, b)| vec![a, b]).collect();
    // `segs` are distinct and undirected: they are the first pieces.
    let mut pieces: Vec<(P, P)> = segs.to_vec();
    let mut id: FxHashMap<(P, P), u32> = segs
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u32))
        .collect();
    let mut alive = vec![true; pieces.len()];
    let mut fresh: Vec<u32> = (0..pieces.len() as u32).collect();
    let mut is_fresh = vec![true; pieces.len()];

    // Pixels and pieces are filed in a grid of cells as they appear.
    let mut hot: FxHashSet<P> =
        FxHashSet::with_capacity_and_hasher(2 * segs.len(), Default::default());
    let mut hot_list: Vec<P> = Vec::with_capacity(2 * segs.len());
    let mut pixel_cells = Cells::for_segments(segs);
    let mut piece_cells = pixel_cells.clone();
    let mut add_hot = |p: P, hot_list: &mut Vec<P>, pixel_cells: &mut Cells| {
        let new = hot.insert(p);
        if new {
            pixel_cells.insert_point(hot_list.len() as u32, p);
            hot_list.push(p);
        }
        new
    };
    for &(a, b) in segs {
        add_hot(a, &mut hot_list, &mut pixel_cells);
        add_hot(b, &mut hot_list, &mut pixel_cells);
    }
    for (i, &(a, b)) in pieces.iter().enumerate() {
        piece_cells.insert_segment(i as u32, a, b);
    }
    for (i, &(a, b)) in pieces.iter().enumerate() {
        if i % 1_024 == 0 && late() {
            return Err(Unfinished);
        }
        for p in crossings(&piece_cells, &pieces, (a, b), |j| j as usize > i) {
            add_hot(p, &mut hot_list, &mut pixel_cells);
        }
    }
    // Hot pixels found in the last round, which the old pieces have not yet met.
    let mut new_hot: Vec<P> = Vec::new();

    for _round in 0..MAX_ROUNDS {
        if late() {
            return Err(Unfinished);
        }
        let mut splits: FxHashMap<u32, Vec<(i128, P)>> = FxHashMap::default();
        // `meets_pixel` wants `c` in the piece's bounding box.
        let meet = |i: u32, c: P, splits: &mut FxHashMap<u32, Vec<(i128, P)>>| {
            let (a, b) = pieces[i as usize];
            let in_box = (a[0].min(b[0])..=a[0].max(b[0])).contains(&c[0])
                && (a[1].min(b[1])..=a[1].max(b[1])).contains(&c[1]);
            if c != a && c != b && in_box && near_line(a, b, c) && meets_pixel(a, b, c) {
                let along = (c[0] - a[0]) as i128 * (b[0] - a[0]) as i128
                    + (c[1] - a[1]) as i128 * (b[1] - a[1]) as i128;
                splits.entry(i).or_default().push((along, c));
            }
        };
        for (n, &i) in fresh.iter().enumerate() {
            if n % 1_024 == 0 && late() {
                return Err(Unfinished);
            }
            let (a, b) = pieces[i as usize];
            pixel_cells.along(a, b, |k| meet(i, hot_list[k as usize], &mut splits));
        }
        for (n, &c) in new_hot.iter().enumerate() {
            if n % 1_024 == 0 && late() {
                return Err(Unfinished);
            }
            for &x in piece_cells.at(c) {
                if alive[x as usize] && !is_fresh[x as usize] {
                    meet(x, c, &mut splits);
                }
            }
        }
        if splits.is_empty() {
            return Ok(chains);
        }
        for inner in splits.values_mut() {
            inner.sort_unstable();
            inner.dedup_by_key(|x| x.1);
        }
        for chain in chains.iter_mut() {
            let cut = chain
                .windows(2)
                .any(|w| splits.contains_key(&id[&undirected(w[0], w[1]).0]));
            if !cut {
                continue;
            }
            let mut refined = Vec::with_capacity(chain.len() + 2);
            refined.push(chain[0]);
            for w in chain.windows(2) {
                let (key, way) = undirected(w[0], w[1]);
                if let Some(inner) = splits.get(&id[&key]) {
                    if way > 0 {
                        refined.extend(inner.iter().map(|x| x.1));
                    } else {
                        refined.extend(inner.iter().rev().map(|x| x.1));
                    }
                }
                refined.push(w[1]);
            }
            *chain = refined;
        }

        // The split pieces go; what they were cut into is fresh.
        for f in fresh.drain(..) {
            is_fresh[f as usize] = false;
        }
        let mut split: Vec<u32> = splits.keys().copied().collect();
        split.sort_unstable();
        for &i in &split {
            alive[i as usize] = false;
        }
        for &i in &split {
            let (a, b) = pieces[i as usize];
            let inner = &splits[&i];
            let points = std::iter::once(a)
                .chain(inner.iter().map(|x| x.1))
                .chain(std::iter::once(b));
            let mut prev = a;
            for q in points.skip(1) {
                let (key, _) = undirected(prev, q);
                prev = q;
                match id.get(&key) {
                    Some(&k) if alive[k as usize] => continue,
                    // A revived piece is filed already.
                    Some(&k) => {
                        alive[k as usize] = true;
                        is_fresh[k as usize] = true;
                        fresh.push(k);
                    }
                    None => {
                        let k = pieces.len() as u32;
                        pieces.push(key);
                        piece_cells.insert_segment(k, key.0, key.1);
                        id.insert(key, k);
                        alive.push(true);
                        is_fresh.push(true);
                        fresh.push(k);
                    }
                }
            }
        }
        // Crossings of the fresh pieces with anything alive.
        new_hot.clear();
        for (n, &f) in fresh.iter().enumerate() {
            if n % 1_024 == 0 && late() {
                return Err(Unfinished);
            }
            let (a, b) = pieces[f as usize];
            let others = |x: u32| x != f && alive[x as usize];
            for p in crossings(&piece_cells, &pieces, (a, b), others) {
                if add_hot(p, &mut hot_list, &mut pixel_cells) {
                    new_hot.push(p);
                }
            }
        }
    }
    Err(Unfinished)
}

/// Edges bucketed by horizontal stripes, for rays cast west.
struct Stripes {
    y0: i64,
    height: i128,
    buckets: Vec<Vec<u32>>,
    /// Edges spanning more than [`LONG_EDGE_STRIPES`] stripes, looked at by every ray
    /// (so a pathological plane costs time, bounded by the deadline, not memory).
    long: Vec<u32>,
}

const LONG_EDGE_STRIPES: usize = 64;

impl Stripes {
    fn new(plane: &Plane) -> Stripes {
        let ys = plane.points.iter().map(|p| p[1]);
        let (y0, y1) = (ys.clone().min().unwrap_or(0), ys.max().unwrap_or(0));
        let count = (plane.ends.len() / 8).clamp(1, 4096);
        let mut s = Stripes {
            y0,
            height: (y1 - y0) as i128 + 1,
            buckets: vec![Vec::new(); count],
            long: Vec::new(),
        };
        for (e, ends) in plane.ends.iter().enumerate() {
            let (a, b) = (
                plane.points[ends[0] as usize][1],
                plane.points[ends[1] as usize][1],
            );
            if a == b {
                continue;
            }
            let (first, last) = (s.stripe(a.min(b)), s.stripe(a.max(b)));
            if last - first > LONG_EDGE_STRIPES {
                s.long.push(e as u32);
                continue;
            }
            for k in first..=last {
                s.buckets[k].push(e as u32);
            }
        }
        s
    }

    fn stripe(&self, y: i64) -> usize {
        ((y - self.y0) as i128 * self.buckets.len() as i128 / self.height) as usize
    }

    /// Casts a ray west from `v` (nudged infinitesimally north, so it passes through
    /// no vertex) across the edges `counts` accepts: how often each source winds
    /// around `v`, and the half-edge of the nearest edge crossed that has `v` on its
    /// left.
    fn cast_west(
        &self,
        plane: &Plane,
        v: P,
        counts: impl Fn(u32) -> bool,
    ) -> (Winding, Option<u32>) {
        let mut w = Winding::new();
        // The nearest crossing: x at v's latitude as num/den, then the slope.
        let mut nearest: Option<(i128, i128, i128, u32)> = None;
        for &e in self.buckets[self.stripe(v[1])].iter().chain(&self.long) {
            if !counts(e) {
                continue;
            }
            let [p, q] = plane.ends[e as usize].map(|i| plane.points[i as usize]);
            let (lo, hi, upward) = if p[1] < q[1] {
                (p, q, true)
            } else {
                (q, p, false)
            };
            if !(lo[1] <= v[1] && v[1] < hi[1]) {
                continue;
            }
            // West of v: v lies east of the edge (right of it going north).
            if orient(lo, hi, v) >= 0 {
                continue;
            }
            // Going north past v on its west, a ring winds clockwise around v.
            let sign = if upward { -1 } else { 1 };
            for &(s, k) in &plane.delta[e as usize] {
                add_to(&mut w, s, sign * k);
            }
            let den = (hi[1] - lo[1]) as i128;
            let dx = (hi[0] - lo[0]) as i128;
            let num = lo[0] as i128 * den + (v[1] - lo[1]) as i128 * dx;
            let nearer = match nearest {
                None => true,
                Some((n2, d2, dx2, _)) => match (num * d2).cmp(&(n2 * den)) {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal => dx * d2 > dx2 * den,
                },
            };
            if nearer {
                // The half-edge going south has the east (v's side) on its left.
                let h = 2 * e + u32::from(upward);
                nearest = Some((num, den, dx, h));
            }
        }
        (w, nearest.map(|n| n.3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(pts: &[(f64, f64)]) -> Vec<Coord<f64>> {
        let mut r: Vec<Coord<f64>> = pts.iter().map(|&(x, y)| Coord { x, y }).collect();
        r.push(r[0]);
        r
    }

    fn faces_with(plane: &Plane, source: Source) -> Vec<u32> {
        (0..plane.faces.len() as u32)
            .filter(|&f| plane.faces[f as usize].winding_of(source) != 0)
            .collect()
    }

    #[test]
    fn two_overlapping_squares_make_three_faces_and_the_outside() {
        let a = ring(&[(0., 0.), (2., 0.), (2., 2.), (0., 2.)]);
        let b = ring(&[(1., 1.), (3., 1.), (3., 3.), (1., 3.)]);
        let plane = Plane::build(&[(0, &a), (1, &b)], |_| false, None).unwrap();
        assert_eq!(plane.faces.len(), 4);
        assert!(plane.faces[OUTSIDE as usize].winding.is_empty());
        let both: Vec<u32> = faces_with(&plane, 0)
            .into_iter()
            .filter(|f| faces_with(&plane, 1).contains(f))
            .collect();
        assert_eq!(both.len(), 1);
        assert!((plane.face_area_deg2(both[0]) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_island_in_a_lake_knows_the_face_around_it() {
        let shell = ring(&[(0., 0.), (10., 0.), (10., 10.), (0., 10.)]);
        let mut hole = ring(&[(2., 2.), (8., 2.), (8., 8.), (2., 8.)]);
        hole.reverse();
        let island = ring(&[(4., 4.), (6., 4.), (6., 6.), (4., 6.)]);
        let plane =
            Plane::build(&[(0, &shell), (1, &hole), (2, &island)], |_| false, None).unwrap();
        // Outside, the land, the lake, the island.
        assert_eq!(plane.faces.len(), 4);
        let island_face = faces_with(&plane, 2);
        assert_eq!(island_face.len(), 1);
        let f = &plane.faces[island_face[0] as usize];
        assert_eq!((f.winding_of(0), f.winding_of(1)), (1, -1));
        // The lake's area has the island taken out.
        let lake: Vec<u32> = faces_with(&plane, 1)
            .into_iter()
            .filter(|f| !island_face.contains(f))
            .collect();
        assert_eq!(lake.len(), 1);
        assert!((plane.face_area_deg2(lake[0]) - 32.0).abs() < 1e-9);
    }

    #[test]
    fn a_bow_tie_is_cut_at_its_crossing() {
        let tie = ring(&[(0., 0.), (2., 2.), (2., 0.), (0., 2.)]);
        let plane = Plane::build(&[(0, &tie)], |_| false, None).unwrap();
        let lobes = faces_with(&plane, 0);
        assert_eq!(lobes.len(), 2);
        let windings: Vec<i32> = lobes
            .iter()
            .map(|&f| plane.faces[f as usize].winding_of(0))
            .collect();
        assert!(
            windings.contains(&1) && windings.contains(&-1),
            "{windings:?}"
        );
    }

    #[test]
    fn a_vertex_a_hair_off_an_edge_splits_it() {
        // The second square's corner lies 0.05 units of the grid off the first's edge.
        let a = ring(&[(0., 0.), (1., 0.), (1., 1.), (0., 1.)]);
        let b = ring(&[(1.0 + 0.5e-10, 0.5), (2., 0.5), (2., 1.5), (1., 1.5)]);
        let plane = Plane::build(&[(0, &a), (1, &b)], |_| false, None).unwrap();
        // a, b, their overlap along x = 1 is nothing: three faces with the outside.
        assert_eq!(plane.faces.len(), 3);
    }

    #[test]
    fn crossings_round_to_the_nearest_unit() {
        assert_eq!(crossing([0, 0], [10, 10], [0, 10], [10, 0]), Some([5, 5]));
        assert_eq!(crossing([0, 0], [3, 1], [0, 1], [3, 0]), Some([2, 1]));
        assert_eq!(crossing([0, 0], [10, 0], [10, 0], [20, 5]), None);
        assert!(meets_pixel([0, 0], [10, 1], [5, 0]));
        assert!(!meets_pixel([0, 0], [10, 10], [5, 3]));
        // Through the corner of four pixels: a diagonal meets the two it crosses, and
        // the other diagonal only the one whose bottom-left corner that is, so neither
        // routes the other through the corner pixels it skips.
        let four = [[4, 4], [5, 4], [4, 5], [5, 5]];
        let meets =
            |a: P, b: P| -> Vec<P> { four.into_iter().filter(|&c| meets_pixel(a, b, c)).collect() };
        assert_eq!(meets([0, 0], [9, 9]), vec![[4, 4], [5, 5]]);
        assert_eq!(meets([4, 5], [5, 4]), vec![[5, 4], [4, 5], [5, 5]]);
        // Along a pixel's top side: not in it; along its bottom side: in it.
        assert!(!meets_pixel([0, 0], [10, 0], [5, -1]));
        assert!(meets_pixel([0, 0], [10, 0], [5, 0]));
    }
}
