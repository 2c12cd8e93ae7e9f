//! The partition snapshot: an immutable index over the active grids that answers
//! "which grid is this point in" in a few hundred nanoseconds at most.
//!
//! ## How it works
//! A uniform raster of cells covers the partition's bounding box, about
//! [`BuildOptions::cells_per_polygon`] cells per polygon. Each cell is one `u32`:
//! * a polygon index, when the cell lies wholly inside that polygon and no edge passes
//!   through it (most cells: one memory access answers the lookup), with how far the
//!   nearest cell that an edge passes through is, so that the same access also proves
//!   most points far from any boundary;
//! * `EMPTY`, when no polygon reaches the cell;
//! * otherwise an offset into a candidate list (polygons whose edges cross the cell,
//!   and polygons that contain the whole cell), sorted by polygon index, each tested
//!   by the crossing rule restricted to the cell (see `crossing_parity`). The list
//!   starts with a map of the 8 × 8 sub-cells edges pass through, which proves most
//!   points of a boundary's neighbourhood farther from it than `near_boundary_m`
//!   without reading an edge.
//!
//! After its candidates, a boundary cell's list holds the edges that pass through it,
//! in polygon order, so one region of memory answers a lookup: the candidates, their
//! edges, then the coordinates. The same edges answer the proximity questions
//! (`near_boundary`, nearest grid for a point outside all grids, distance to the
//! boundary) by scanning a few cells. Only boundary cells have lists, so interior and
//! empty cells, most of the raster, cost their one word and nothing else.
//!
//! Points exactly on a shared edge follow the rule documented in [`super::pip`]: the
//! owner is the grid immediately east (north, on an east–west edge). If polygons
//! overlap (a defective plan), the lowest polygon index containing the point wins.

use super::geom::{self, crosses_ray};
use super::measure::LocalScale;
use super::parallel::{build_threads, in_parallel, join};
use super::pip::PolygonSet;
use geo_types::{Coord, MultiPolygon, Rect};
use std::borrow::Borrow;

const EMPTY: u32 = u32::MAX;
const LIST: u32 = 1 << 31;
/// Words before a candidate list's entries: the cell's 8 × 8 sub-cells that edges
/// pass through (a `u64`, low word first, bit `8 * row + column`), and the number of
/// edge words that follow the entries. An entry is one word, polygon and flags, the
/// last one marked [`END`]; an edge word is the edge's coordinate offset shifted by
/// [`EDGE_SHIFT`] with [`BREAK_A`], [`BREAK_B`] and [`LAST`] in the bits below.
const LIST_HEAD: usize = 3;
/// Bits of an edge word below the edge's coordinate offset.
const EDGE_SHIFT: u32 = 3;
/// On an edge word: the outside crossing parity of its polygon flips at the height of
/// the edge's first vertex (see `crossing_parity`).
const BREAK_A: u32 = 1;
/// On an edge word: the same at the edge's second vertex.
const BREAK_B: u32 = 2;
/// On an edge word: the last of its polygon's edges in the cell.
const LAST: u32 = 4;
/// Coordinates a partition can hold: edge words keep offsets below this.
pub const MAX_COORDINATES: usize = 1 << (32 - EDGE_SHIFT);
/// Sub-cells per side of a cell, in a candidate list's head.
const SUB: usize = 8;
/// The most cells the sub-cell proof looks at for one point.
const MAX_PROOF_CELLS: usize = 64;
/// On a candidate entry: the polygon contains the whole cell, no test needed.
const FULL: u32 = 1 << 31;
/// On a candidate entry: crossing parity of the outside edges at the cell's bottom.
const BASE: u32 = 1 << 30;
/// On a candidate entry: the list's last entry.
const END: u32 = 1 << 29;
const POLY: u32 = !(FULL | BASE | END);
/// Polygons a partition can hold: entries keep their numbers below this.
pub const MAX_POLYGONS: usize = END as usize;
/// An interior cell's word: the polygon in the low bits, and from this bit up the
/// chessboard distance (in cells, at most [`REACH_MAX`]) to the nearest cell an edge
/// passes through. A cell inside polygon 2^24 or later is a one-entry list instead.
const REACH_SHIFT: u32 = 24;
const INTERIOR_POLY: u32 = (1 << REACH_SHIFT) - 1;
const REACH_MAX: u32 = 127;

/// What one raster word says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Empty,
    /// Wholly inside `poly`; every cell within `reach - 1` cells (chessboard) is free
    /// of edges, so `reach` is at least 1.
    Interior {
        poly: u32,
        reach: u32,
    },
    /// Offset of the candidate list.
    List(usize),
}

impl Cell {
    #[inline]
    fn of(w: u32) -> Cell {
        if w == EMPTY {
            Cell::Empty
        } else if w & LIST != 0 {
            Cell::List((w & !LIST) as usize)
        } else {
            Cell::Interior {
                poly: w & INTERIOR_POLY,
                reach: w >> REACH_SHIFT,
            }
        }
    }
}

/// Tuning of [`Partition::build`].
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// Target number of raster cells per polygon (more: faster lookups, more memory).
    /// The default, 96, leaves ~70 % of cells wholly inside one grid.
    pub cells_per_polygon: f64,
    /// Threads for the build; 0 chooses (one below 2 000 polygons, else every core up
    /// to 8). The index is the same whatever the number.
    pub threads: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            cells_per_polygon: 96.0,
            threads: 0,
        }
    }
}

/// What a lookup should work out besides the containing polygon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocateOptions {
    /// A point closer than this (metres) to another polygon's boundary is flagged
    /// `near_boundary` with that neighbour. Default 15 m.
    pub near_boundary_m: f64,
    /// A point in no polygon gets the nearest polygon within this distance (metres),
    /// flagged `outside`. Default 200 m.
    pub max_outside_m: f64,
    /// Compute the exact distance to the containing polygon's boundary even when it is
    /// far away (a wider search). Default true; batch callers that only need the grid
    /// and the flags turn it off.
    pub boundary_distance: bool,
}

impl Default for LocateOptions {
    fn default() -> Self {
        LocateOptions {
            near_boundary_m: 15.0,
            max_outside_m: 200.0,
            boundary_distance: true,
        }
    }
}

/// The answer of [`Partition::locate`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Location {
    /// The polygon containing the point or, when `outside`, the nearest polygon within
    /// `max_outside_m`. `None`: nothing within reach.
    pub polygon: Option<u32>,
    /// No polygon contains the point.
    pub outside: bool,
    /// Distance in metres from the point to `polygon`'s boundary. Always set when
    /// `outside` or `near_boundary`; otherwise only with `boundary_distance`.
    pub boundary_distance_m: Option<f64>,
    /// Another polygon's boundary is within `near_boundary_m`.
    pub near_boundary: bool,
    /// The nearest other polygon within `near_boundary_m`, with its distance.
    pub neighbour: Option<(u32, f64)>,
}

#[derive(Debug, Clone, Copy)]
struct CellGrid {
    x0: f64,
    y0: f64,
    cw: f64,
    ch: f64,
    inv_cw: f64,
    inv_ch: f64,
    nx: usize,
    ny: usize,
    bbox: Rect<f64>,
}

impl CellGrid {
    fn new(bbox: Rect<f64>, target_cells: f64) -> Self {
        let (w, h) = (bbox.width().max(1e-9), bbox.height().max(1e-9));
        let target = target_cells.clamp(1.0, (1u64 << 26) as f64);
        let nx = ((target * w / h).sqrt().ceil() as usize).clamp(1, 1 << 16);
        let ny = ((target / nx as f64).ceil() as usize).clamp(1, 1 << 16);
        let (cw, ch) = (w / nx as f64, h / ny as f64);
        CellGrid {
            x0: bbox.min().x,
            y0: bbox.min().y,
            cw,
            ch,
            inv_cw: 1.0 / cw,
            inv_ch: 1.0 / ch,
            nx,
            ny,
            bbox,
        }
    }

    #[inline]
    fn cell_of(&self, p: Coord<f64>) -> Option<(usize, usize)> {
        let (min, max) = (self.bbox.min(), self.bbox.max());
        // Written so that NaN fails every comparison and lands here.
        if !(p.x >= min.x && p.x < max.x && p.y >= min.y && p.y < max.y) {
            return None;
        }
        let ix = (((p.x - self.x0) * self.inv_cw) as usize).min(self.nx - 1);
        let iy = (((p.y - self.y0) * self.inv_ch) as usize).min(self.ny - 1);
        Some((ix, iy))
    }

    /// Cell column for `x`, clamped to the raster. (Truncating a non-negative number
    /// is its floor, without the library call `floor` is on baseline x86-64.)
    #[inline]
    fn col(&self, x: f64) -> usize {
        (((x - self.x0) * self.inv_cw).max(0.0) as usize).min(self.nx - 1)
    }

    #[inline]
    fn row(&self, y: f64) -> usize {
        (((y - self.y0) * self.inv_ch).max(0.0) as usize).min(self.ny - 1)
    }

    /// Pushes `(cell, k)` for every cell whose [`Self::rect`] edge `k` meets.
    fn cells_of_edge(&self, (a, b): (Coord<f64>, Coord<f64>), k: u32, out: &mut Vec<(u32, u32)>) {
        // Cells are grown by a hair: an edge on or within that hair of a cell border
        // also touches the neighbour. The range is widened by a millionth of a cell:
        // more than the hair and, for cells wider than a centimetre, far more than the
        // rounding of `col` and `row`; the exact test below drops the extra cells.
        let margin = self.margin();
        let (c0, c1) = (
            self.col(a.x.min(b.x) - margin.x),
            self.col(a.x.max(b.x) + margin.x),
        );
        let (r0, r1) = (
            self.row(a.y.min(b.y) - margin.y),
            self.row(a.y.max(b.y) + margin.y),
        );
        for iy in r0..=r1 {
            for ix in c0..=c1 {
                if geom::segment_meets_rect(a, b, &self.rect(ix, iy)) {
                    out.push(((iy * self.nx + ix) as u32, k));
                }
            }
        }
    }

    /// The sub-cell (0 to 7) along one axis of the cell starting at `from`, with
    /// sub-cells `size` wide, that holds `v`: clamped to the cell.
    #[inline]
    fn sub_index(v: f64, from: f64, size: f64) -> usize {
        (((v - from) / size).max(0.0) as usize).min(SUB - 1)
    }

    /// The sub-cells (bit `8 * row + column`) of `cell` that the edges of the edge
    /// words `edges` meet, each sub-cell grown by a hair as cells are in
    /// [`Self::cells_of_edge`].
    fn subcells_met(&self, cell: usize, edges: &[u32], set: &PolygonSet) -> u64 {
        let (ix, iy) = (cell % self.nx, cell / self.nx);
        let (sw, sh) = (self.cw / SUB as f64, self.ch / SUB as f64);
        let (x0, y0) = (self.x0 + ix as f64 * self.cw, self.y0 + iy as f64 * self.ch);
        let (hx, hy) = (self.cw * 1e-6, self.ch * 1e-6);
        let mut bits = 0u64;
        for &w in edges {
            let (a, b) = set.edge(w >> EDGE_SHIFT);
            // Within the segment's box the segment is its line: a sub-cell clipped to
            // that box meets the segment when its corners are not all strictly on one
            // side of the line. (A full segment–rectangle test per sub-cell doubled
            // the build.)
            let (lo, hi) = (
                Coord {
                    x: a.x.min(b.x) - hx,
                    y: a.y.min(b.y) - hy,
                },
                Coord {
                    x: a.x.max(b.x) + hx,
                    y: a.y.max(b.y) + hy,
                },
            );
            let (c0, c1) = (Self::sub_index(lo.x, x0, sw), Self::sub_index(hi.x, x0, sw));
            let (r0, r1) = (Self::sub_index(lo.y, y0, sh), Self::sub_index(hi.y, y0, sh));
            let (dx, dy) = (b.x - a.x, b.y - a.y);
            let side = |x: f64, y: f64| dx * (y - a.y) - dy * (x - a.x);
            for r in r0..=r1 {
                let ry0 = (y0 + r as f64 * sh - hy).max(lo.y);
                let ry1 = (y0 + (r + 1) as f64 * sh + hy).min(hi.y);
                for c in c0..=c1 {
                    let rx0 = (x0 + c as f64 * sw - hx).max(lo.x);
                    let rx1 = (x0 + (c + 1) as f64 * sw + hx).min(hi.x);
                    if rx0 > rx1 || ry0 > ry1 {
                        continue;
                    }
                    let corners = [
                        side(rx0, ry0),
                        side(rx1, ry0),
                        side(rx0, ry1),
                        side(rx1, ry1),
                    ];
                    let below = corners.iter().any(|&v| v <= 0.0);
                    let above = corners.iter().any(|&v| v >= 0.0);
                    if below && above {
                        bits |= 1 << (SUB * r + c);
                    }
                }
            }
        }
        bits
    }

    /// A millionth of a cell per axis (see `cells_of_edge`).
    fn margin(&self) -> Coord<f64> {
        Coord {
            x: self.cw * 1e-6,
            y: self.ch * 1e-6,
        }
    }

    /// The cell's rectangle grown by a hair, so that rounding in `cell_of` can never
    /// put a point into a cell whose rectangle does not contain it.
    fn rect(&self, ix: usize, iy: usize) -> Rect<f64> {
        let (ex, ey) = (self.cw * 1e-9, self.ch * 1e-9);
        Rect::new(
            Coord {
                x: self.x0 + ix as f64 * self.cw - ex,
                y: self.y0 + iy as f64 * self.ch - ey,
            },
            Coord {
                x: self.x0 + (ix + 1) as f64 * self.cw + ex,
                y: self.y0 + (iy + 1) as f64 * self.ch + ey,
            },
        )
    }

    /// Metres per degree of longitude and of latitude, each no larger than anywhere
    /// between the raster's bottom and top. Zero when those are not latitudes.
    fn least_scale(&self) -> LocalScale {
        let (south, north) = (self.bbox.min().y, self.bbox.max().y);
        if !(south >= -90.0 && north <= 90.0) {
            return LocalScale { x: 0.0, y: 0.0 };
        }
        // A parallel's radius shrinks away from the equator, a meridian's curvature
        // radius grows: the least of each is at one end or at the equator.
        let equator = (south < 0.0 && north > 0.0).then_some(0.0);
        let scales = [Some(south), Some(north), equator]
            .into_iter()
            .flatten()
            .map(LocalScale::at);
        let (x, y) = scales.fold((f64::INFINITY, f64::INFINITY), |(x, y), s| {
            (x.min(s.x), y.min(s.y))
        });
        LocalScale {
            x: x.max(0.0),
            y: y.max(0.0),
        }
    }

    fn centre(&self, ix: usize, iy: usize) -> Coord<f64> {
        Coord {
            x: self.x0 + (ix as f64 + 0.5) * self.cw,
            y: self.y0 + (iy as f64 + 0.5) * self.ch,
        }
    }
}

/// An immutable point-location index over a set of polygons (see the module docs).
///
/// ```
/// use geo_types::{polygon, coord, MultiPolygon};
/// use wangge::spatial::{Partition, LocateOptions};
/// let west = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
/// let east = polygon![(x: 1., y: 0.), (x: 2., y: 0.), (x: 2., y: 1.), (x: 1., y: 1.)];
/// let p = Partition::build(&[MultiPolygon(vec![west]), MultiPolygon(vec![east])]);
/// assert_eq!(p.polygon_at(coord! {x: 1.5, y: 0.5}), Some(1));
/// // On the shared edge: the grid to the east owns the point.
/// let loc = p.locate(coord! {x: 1.0, y: 0.5}, &LocateOptions::default());
/// assert_eq!(loc.polygon, Some(1));
/// assert!(loc.near_boundary);
/// assert_eq!(loc.neighbour.map(|n| n.0), Some(0));
/// ```
#[derive(Debug, Clone)]
pub struct Partition {
    set: PolygonSet,
    grid: CellGrid,
    cells: Vec<u32>,
    /// The boundary cells' lists: head, entries, edge words (see [`LIST_HEAD`]).
    lists: Vec<u32>,
    /// First coordinate offset of each polygon, for finding an edge's owner.
    poly_coord_starts: Vec<u32>,
    /// Metres per degree at most as large as anywhere in the raster, for proofs that
    /// an edge is farther than some distance without a trigonometric call per point.
    min_scale: LocalScale,
}

impl Partition {
    /// Builds the index with default options. Polygon `i` of the input is index `i`.
    pub fn build<P: Borrow<MultiPolygon<f64>> + Sync>(polygons: &[P]) -> Self {
        Self::build_with(polygons, BuildOptions::default())
    }

    /// Builds the index.
    /// Takes the polygons or references to them (a caller that keeps its own copy need
    /// not clone them).
    ///
    /// # Panics
    /// With more than [`MAX_COORDINATES`] coordinates (8 GiB of them) or
    /// [`MAX_POLYGONS`] polygons, or if the boundary cells' lists would pass 2^31
    /// words (8 GiB): the stores and the upload reader's memory limit keep far below,
    /// and a panic there is safer than a list offset that wraps into a wrong answer.
    pub fn build_with<P: Borrow<MultiPolygon<f64>> + Sync>(
        polygons: &[P],
        options: BuildOptions,
    ) -> Self {
        let threads = match options.threads {
            0 => build_threads(polygons.len()),
            t => t,
        };
        let set = PolygonSet::build(polygons, threads);
        assert!(
            set.coords.len() <= MAX_COORDINATES && set.len() <= MAX_POLYGONS,
            "a partition holds at most {MAX_COORDINATES} coordinates and {MAX_POLYGONS} polygons"
        );
        let bbox = geom::bounds_of(
            (0..set.len() as u32)
                .filter(|&i| !set.polys[i as usize].rings.is_empty())
                .flat_map(|i| [set.bbox(i).min(), set.bbox(i).max()]),
        )
        .unwrap_or(Rect::new(Coord { x: 0., y: 0. }, Coord { x: 0., y: 0. }));
        let grid = CellGrid::new(bbox, options.cells_per_polygon * set.len().max(1) as f64);
        let ncells = grid.nx * grid.ny;
        let poly_coord_starts: Vec<u32> = (0..set.len() as u32)
            .map(|i| set.polys[i as usize].coord_range(&set).start)
            .collect();

        // 1. Polygon by polygon, while its coordinates are in cache: the cells each edge
        //    passes through, flagged for the cell-local test, each cell's entry for the
        //    polygon, and the cells it contains wholly. Polygons are split into
        //    contiguous ranges, one per thread, and the results concatenated in order,
        //    so every cell's edges and entries stay sorted by polygon (and edge).
        let parts = in_parallel(set.len(), threads, |polys| {
            let mut part = Rasterised::default();
            let mut local: Vec<(u32, u32)> = Vec::new();
            let mut own: Vec<u32> = Vec::new();
            let mut touched: Vec<u32> = Vec::new();
            let mut scratch: Vec<bool> = Vec::new();
            for i in polys {
                let i = i as u32;
                local.clear();
                set.for_each_edge(i, |k| grid.cells_of_edge(set.edge(k), k, &mut local));
                local.sort_unstable();
                touched.clear();
                let mut at = 0;
                while at < local.len() {
                    let cell = local[at].0;
                    let end = at + local[at..].partition_point(|&(c, _)| c == cell);
                    own.clear();
                    own.extend(local[at..end].iter().map(|&(_, k)| k));
                    let rect = grid.rect(cell as usize % grid.nx, cell as usize / grid.nx);
                    let base = outside_parity(&set, i, &own, &rect);
                    part.entries.push((cell, i | if base { BASE } else { 0 }));
                    push_edge_words(&set, i, &own, &rect, cell, &mut part.edges);
                    touched.push(cell);
                    at = end;
                }
                part.full_cells(&set, &grid, i, &touched, &mut scratch);
            }
            part
        });
        // Three independent counting sorts, each bound by memory: side by side.
        let ((edge_offsets, edges), ((entry_offsets, entries), (full_offsets, full_polys))) = join(
            threads,
            || group_by_cell(ncells, parts.iter().map(|p| p.edges.as_slice())),
            || {
                join(
                    threads,
                    || group_by_cell(ncells, parts.iter().map(|p| p.entries.as_slice())),
                    || group_by_cell(ncells, parts.iter().map(|p| p.full.as_slice())),
                )
            },
        );
        drop(parts);

        // 2. Encode each cell: one word, or a list of the candidates merged in polygon
        //    order followed by the cell's edges (see `crossing_parity`).
        let encoded = in_parallel(ncells, threads, |range| {
            let mut words = Vec::with_capacity(range.len());
            let mut lists: Vec<u32> = Vec::new();
            for cell in range {
                let crossing =
                    &entries[entry_offsets[cell] as usize..entry_offsets[cell + 1] as usize];
                let fulls =
                    &full_polys[full_offsets[cell] as usize..full_offsets[cell + 1] as usize];
                match (crossing.len(), fulls.len()) {
                    (0, 0) => words.push(EMPTY),
                    (0, 1) if fulls[0] <= INTERIOR_POLY => words.push(fulls[0]),
                    _ => {
                        words.push(LIST | lists.len() as u32);
                        let edges =
                            &edges[edge_offsets[cell] as usize..edge_offsets[cell + 1] as usize];
                        let bits = grid.subcells_met(cell, edges, &set);
                        lists.extend_from_slice(&[
                            bits as u32,
                            (bits >> 32) as u32,
                            edges.len() as u32,
                        ]);
                        let (mut c, mut f) = (0, 0);
                        while c < crossing.len() || f < fulls.len() {
                            if c == crossing.len()
                                || (f < fulls.len() && fulls[f] < crossing[c] & POLY)
                            {
                                lists.push(fulls[f] | FULL);
                                f += 1;
                            } else {
                                lists.push(crossing[c]);
                                c += 1;
                            }
                        }
                        if let Some(last) = lists.last_mut() {
                            *last |= END;
                        }
                        lists.extend_from_slice(edges);
                    }
                }
            }
            (words, lists)
        });
        drop((entry_offsets, entries, full_offsets, full_polys));
        drop((edge_offsets, edges));
        // Each thread numbered its lists from zero: shift them into place.
        let mut cells = Vec::with_capacity(ncells);
        let list_words: usize = encoded.iter().map(|(_, l)| l.len()).sum();
        // Offsets live in the low 31 bits of a cell word; a wrapped one would send
        // lookups to another cell's list.
        assert!(
            list_words <= LIST as usize,
            "a partition's cell lists hold at most 2^31 words"
        );
        let mut lists = Vec::with_capacity(list_words);
        for (words, part_lists) in encoded {
            let list_base = lists.len() as u32;
            cells.extend(words.iter().map(|&w| {
                if w != EMPTY && w & LIST != 0 {
                    w + list_base
                } else {
                    w
                }
            }));
            lists.extend_from_slice(&part_lists);
        }
        record_reach(&mut cells, &lists, &grid);
        let min_scale = grid.least_scale();
        let mut set = set;
        // Lookups use the raster's cell-local test; the stripe index served the build.
        set.drop_stripes();
        let mut p = Partition {
            set,
            grid,
            cells,
            lists,
            poly_coord_starts,
            min_scale,
        };
        p.shrink();
        p
    }

    fn shrink(&mut self) {
        self.cells.shrink_to_fit();
        self.lists.shrink_to_fit();
        self.poly_coord_starts.shrink_to_fit();
    }

    /// The list of a boundary cell: its entries, and the edge words that follow them.
    #[inline]
    fn list(&self, at: usize) -> (&[u32], &[u32]) {
        let edges = self.lists[at + 2] as usize;
        let entries = at + LIST_HEAD;
        // The build ends every list's entries with END: the fallback is never taken.
        let n = self.lists[entries..]
            .iter()
            .position(|&e| e & END != 0)
            .map_or(0, |last| last + 1);
        (
            &self.lists[entries..entries + n],
            &self.lists[entries + n..entries + n + edges],
        )
    }

    /// The edge words of cell `cell` (none unless it is a boundary cell).
    #[inline]
    fn edges_of_cell(&self, cell: usize) -> &[u32] {
        match Cell::of(self.cells[cell]) {
            Cell::List(at) => self.list(at).1,
            _ => &[],
        }
    }

    /// Whether the candidate `entry` of a boundary cell contains `p`, looking only at
    /// the polygon's edges in that cell: the first of `edges`, up to the one marked
    /// [`LAST`]. Returns the edges after those.
    ///
    /// The ray from `p` towards +x crosses the polygon's edges inside the cell, and
    /// beyond the cell's right border `X` the edges that do not enter the cell. Those
    /// outer crossings are known at build time for the cell's bottom (`BASE`: the
    /// crossing parity at `(X, Y0)` minus the cell's own edges) and change only at the
    /// heights of vertices right of `X` where an edge of the cell meets one that is not
    /// (`BREAK_A`, `BREAK_B`). The result equals the full crossing test of
    /// [`super::pip`] exactly.
    #[inline]
    fn crossing_parity<'e>(
        &self,
        entry: u32,
        edges: &'e [u32],
        p: Coord<f64>,
    ) -> (bool, &'e [u32]) {
        if entry & FULL != 0 {
            return (true, edges);
        }
        let mut inside = entry & BASE != 0;
        let mut used = 0;
        for &w in edges {
            used += 1;
            let (a, b) = self.set.edge(w >> EDGE_SHIFT);
            inside ^= crosses_ray(a, b, p);
            inside ^= w & BREAK_A != 0 && a.y <= p.y;
            inside ^= w & BREAK_B != 0 && b.y <= p.y;
            if w & LAST != 0 {
                break;
            }
        }
        (inside, &edges[used..])
    }

    /// Number of polygons indexed.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no polygon is indexed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Heap bytes held by the index, including the polygon coordinates.
    pub fn heap_bytes(&self) -> usize {
        self.set.heap_bytes()
            + (self.cells.capacity() + self.lists.capacity() + self.poly_coord_starts.capacity())
                * 4
    }

    /// Shape of the raster: how many cells answer a lookup on their own.
    pub fn raster_stats(&self) -> RasterStats {
        let mut st = RasterStats {
            cells: self.cells.len(),
            ..RasterStats::default()
        };
        for &w in &self.cells {
            match Cell::of(w) {
                Cell::Empty => st.empty += 1,
                Cell::Interior { reach, .. } => {
                    st.interior += 1;
                    st.interior_far += (reach >= 2) as usize;
                }
                Cell::List(at) => {
                    let (entries, edges) = self.list(at);
                    st.boundary += 1;
                    st.candidates += entries.len();
                    st.cell_edges += edges.len();
                }
            }
        }
        st
    }

    /// Whether polygon `i` contains `p` (the boundary rule of [`super::pip`]).
    pub fn contains(&self, i: u32, p: Coord<f64>) -> bool {
        let mut all = Vec::new();
        self.polygons_at(p, &mut all);
        all.contains(&i)
    }

    /// [`Self::polygon_at`] for many points, answered in input order.
    ///
    /// A single lookup on a large partition waits on two or three cache misses in a
    /// row (cell word, the cell's list of candidates and edges, coordinates). Here the
    /// lookups are pipelined: while point `j` is answered, the memory the points a few
    /// places ahead will need is already being fetched, so the misses overlap.
    pub fn polygon_at_many(&self, points: &[Coord<f64>], out: &mut Vec<Option<u32>>) {
        out.clear();
        out.reserve(points.len());
        let cells = self.cell_numbers(points);
        let n = points.len();
        for j in 0..n {
            if let Some(&c) = cells.get(j + 16)
                && c != u32::MAX
            {
                prefetch(&self.cells[c as usize]);
            }
            if let Some(at) = cells.get(j + 8).and_then(|&c| self.list_at(c)) {
                prefetch(&self.lists[at]);
            }
            // The edges follow the entries, often in the list's next cache line.
            let first_edge = |c: u32| -> Option<&u32> {
                let at = self.list_at(c)?;
                self.list(at).1.first()
            };
            if let Some(w) = cells.get(j + 4).and_then(|&c| first_edge(c)) {
                prefetch(w);
            }
            if let Some(&w) = cells.get(j + 2).and_then(|&c| first_edge(c))
                && let Some(c) = self.set.coords.get((w >> EDGE_SHIFT) as usize)
            {
                prefetch(c);
            }
            out.push(if cells[j] == u32::MAX {
                None
            } else {
                self.polygon_at(points[j])
            });
        }
    }

    /// Offset of the candidate list of cell `c`, when it has one.
    #[inline]
    fn list_at(&self, c: u32) -> Option<usize> {
        match Cell::of(*self.cells.get(c as usize)?) {
            Cell::List(at) => Some(at),
            _ => None,
        }
    }

    /// The lowest-index polygon containing `p`, if any. The hot path of every lookup.
    #[inline]
    pub fn polygon_at(&self, p: Coord<f64>) -> Option<u32> {
        let (ix, iy) = self.grid.cell_of(p)?;
        let at = match Cell::of(self.cells[iy * self.grid.nx + ix]) {
            Cell::Empty => return None,
            Cell::Interior { poly, .. } => return Some(poly),
            Cell::List(at) => at,
        };
        let (entries, mut edges) = self.list(at);
        for &entry in entries {
            let (inside, rest) = self.crossing_parity(entry, edges, p);
            if inside {
                return Some(entry & POLY);
            }
            edges = rest;
        }
        None
    }

    /// Every polygon containing `p`, in index order (more than one only where polygons
    /// overlap).
    pub fn polygons_at(&self, p: Coord<f64>, out: &mut Vec<u32>) {
        out.clear();
        let Some((ix, iy)) = self.grid.cell_of(p) else {
            return;
        };
        let at = match Cell::of(self.cells[iy * self.grid.nx + ix]) {
            Cell::Empty => return,
            Cell::Interior { poly, .. } => return out.push(poly),
            Cell::List(at) => at,
        };
        let (entries, mut edges) = self.list(at);
        for &entry in entries {
            let (inside, rest) = self.crossing_parity(entry, edges, p);
            if inside {
                out.push(entry & POLY);
            }
            edges = rest;
        }
    }

    /// Locates `p`: the containing polygon, or the nearest one when outside, with the
    /// proximity flags described on [`Location`].
    pub fn locate(&self, p: Coord<f64>, options: &LocateOptions) -> Location {
        match self.polygon_at(p) {
            Some(i) => {
                let mut loc = Location {
                    polygon: Some(i),
                    ..Location::default()
                };
                let radius = options.near_boundary_m;
                // A negative or NaN radius proves nothing: the exact scan decides.
                let proven_clear = radius >= 0.0
                    && (self.clear_of_edges_within(p, radius)
                        || self.clear_of_subcells_within(p, radius));
                if !proven_clear {
                    let scale = LocalScale::at(p.y);
                    let near = self.nearest_edges_in_window(p, options.near_boundary_m, &scale, i);
                    if let Some((d2, _)) = near.own {
                        loc.boundary_distance_m = Some(d2.sqrt());
                    }
                    if let Some((d2, j)) = near.other {
                        loc.neighbour = Some((j, d2.sqrt()));
                        loc.near_boundary = true;
                    }
                    if loc.boundary_distance_m.is_some() {
                        loc.near_boundary = true;
                    }
                }
                if options.boundary_distance && loc.boundary_distance_m.is_none() {
                    loc.boundary_distance_m = self.boundary_distance(i, p);
                }
                loc
            }
            None => {
                let scale = LocalScale::at(p.y);
                let near = self.nearest_edges_in_window(p, options.max_outside_m, &scale, u32::MAX);
                match near.other {
                    Some((d2, j)) => Location {
                        polygon: Some(j),
                        outside: true,
                        boundary_distance_m: Some(d2.sqrt()),
                        near_boundary: false,
                        neighbour: None,
                    },
                    None => Location {
                        outside: true,
                        ..Location::default()
                    },
                }
            }
        }
    }

    /// [`Self::locate`] for many points, answered in input order, with the memory
    /// the points a few places ahead will need fetched while the current one is
    /// answered (see [`Self::polygon_at_many`]). The answers equal `locate`'s.
    pub fn locate_many(
        &self,
        points: &[Coord<f64>],
        options: &LocateOptions,
        out: &mut Vec<Location>,
    ) {
        out.clear();
        out.reserve(points.len());
        let cells = self.cell_numbers(points);
        for (j, &p) in points.iter().enumerate() {
            if let Some(&c) = cells.get(j + 16)
                && c != u32::MAX
            {
                prefetch(&self.cells[c as usize]);
            }
            // A point its cell word alone cannot answer will read its candidate list
            // (and maybe its neighbours' words and lists).
            if let Some(at) = cells.get(j + 8).and_then(|&c| self.list_at(c)) {
                prefetch(&self.lists[at]);
            }
            out.push(self.locate(p, options));
        }
    }

    /// The raster cell number of each point, `u32::MAX` outside the raster.
    fn cell_numbers(&self, points: &[Coord<f64>]) -> Vec<u32> {
        points
            .iter()
            .map(|&p| {
                self.grid
                    .cell_of(p)
                    .map_or(u32::MAX, |(ix, iy)| (iy * self.grid.nx + ix) as u32)
            })
            .collect()
    }

    /// Whether the raster proves that no edge lies within `radius_m` of `p`: `p` sits
    /// in a block of cells that no edge passes through (the interior cell's reach, or
    /// its own cell when that has no edges), at least `radius_m` from the block's
    /// border. Distances use the raster's least scale, so the proof holds at any
    /// latitude of the raster without a trigonometric call.
    #[inline]
    fn clear_of_edges_within(&self, p: Coord<f64>, radius_m: f64) -> bool {
        let Some((ix, iy)) = self.grid.cell_of(p) else {
            return false;
        };
        let cell = iy * self.grid.nx + ix;
        let around = match Cell::of(self.cells[cell]) {
            Cell::Interior { reach, .. } if reach >= 1 => (reach - 1) as f64,
            _ if self.edges_of_cell(cell).is_empty() => 0.0,
            _ => return false,
        };
        let g = &self.grid;
        let x0 = g.x0 + (ix as f64 - around) * g.cw;
        let x1 = g.x0 + (ix as f64 + 1.0 + around) * g.cw;
        let y0 = g.y0 + (iy as f64 - around) * g.ch;
        let y1 = g.y0 + (iy as f64 + 1.0 + around) * g.ch;
        let dx = (p.x - x0).min(x1 - p.x) * self.min_scale.x;
        let dy = (p.y - y0).min(y1 - p.y) * self.min_scale.y;
        dx.min(dy) >= radius_m
    }

    /// Whether the sub-cell maps prove that no edge lies within `radius_m` of `p`: no
    /// sub-cell that an edge passes through meets the square of half-side `radius_m`
    /// around `p` (at the raster's least scale, so the square holds the circle).
    fn clear_of_subcells_within(&self, p: Coord<f64>, radius_m: f64) -> bool {
        let g = &self.grid;
        if !(self.min_scale.x > 0.0 && self.min_scale.y > 0.0) {
            return false;
        }
        // Grown by a hair more than the sub-cells were, against rounding.
        let (rx, ry) = (
            radius_m / self.min_scale.x + g.cw * 2e-6,
            radius_m / self.min_scale.y + g.ch * 2e-6,
        );
        let (x0, x1, y0, y1) = (p.x - rx, p.x + rx, p.y - ry, p.y + ry);
        let (c0, c1) = (g.col(x0), g.col(x1));
        let (r0, r1) = (g.row(y0), g.row(y1));
        // A window of many cells (a large radius, or a raster reaching towards a pole,
        // where the least scale is tiny) is left to the exact scan, which has to read
        // those cells anyway: the proof is for the common case of a few.
        if (c1 - c0 + 1) * (r1 - r0 + 1) > MAX_PROOF_CELLS {
            return false;
        }
        let (sw, sh) = (g.cw / SUB as f64, g.ch / SUB as f64);
        let sub = CellGrid::sub_index;
        for iy in r0..=r1 {
            let cy0 = g.y0 + iy as f64 * g.ch;
            let (s0, s1) = (sub(y0, cy0, sh), sub(y1, cy0, sh));
            // Rows s0..=s1 of the 8 × 8 map, one byte per row.
            let rows = (u64::MAX >> (8 * (SUB - 1 - s1))) & (u64::MAX << (8 * s0));
            for ix in c0..=c1 {
                let Cell::List(at) = Cell::of(self.cells[iy * g.nx + ix]) else {
                    continue;
                };
                let bits = self.lists[at] as u64 | (self.lists[at + 1] as u64) << 32;
                if bits == 0 {
                    continue;
                }
                let cx0 = g.x0 + ix as f64 * g.cw;
                let (t0, t1) = (sub(x0, cx0, sw), sub(x1, cx0, sw));
                let columns = (0xFFu64 >> (SUB - 1 - t1)) & (0xFFu64 << t0);
                if bits & rows & (columns * 0x0101_0101_0101_0101) != 0 {
                    return false;
                }
            }
        }
        true
    }

    /// Nearest edge of polygon `own` and nearest edge of any other polygon, both within
    /// `radius_m` of `p` (squared metres, polygon index). Ties go to the lower index.
    fn nearest_edges_in_window(
        &self,
        p: Coord<f64>,
        radius_m: f64,
        scale: &LocalScale,
        own: u32,
    ) -> Nearest {
        let mut best = Nearest::default();
        if self.set.is_empty() {
            return best;
        }
        let r2 = radius_m * radius_m;
        let (rx, ry) = (radius_m / scale.x, radius_m / scale.y);
        let (gmin, gmax) = (self.grid.bbox.min(), self.grid.bbox.max());
        if p.x + rx < gmin.x || p.x - rx > gmax.x || p.y + ry < gmin.y || p.y - ry > gmax.y {
            return best;
        }
        let own_range = if own == u32::MAX {
            0..0
        } else {
            self.set.polys[own as usize].coord_range(&self.set)
        };
        let (c0, c1) = (self.grid.col(p.x - rx), self.grid.col(p.x + rx));
        let (r0, r1) = (self.grid.row(p.y - ry), self.grid.row(p.y + ry));
        for iy in r0..=r1 {
            for ix in c0..=c1 {
                for &w in self.edges_of_cell(iy * self.grid.nx + ix) {
                    let k = w >> EDGE_SHIFT;
                    let (a, b) = self.set.edge(k);
                    let d2 = scale.segment_distance2(p, a, b);
                    if d2 > r2 {
                        continue;
                    }
                    if own_range.contains(&k) {
                        if best.own.is_none_or(|(bd, _)| d2 < bd) {
                            best.own = Some((d2, own));
                        }
                    } else if best.other.is_none_or(|(bd, _)| d2 <= bd) {
                        let j = self.owner(k);
                        if best.other.is_none_or(|(bd, bj)| d2 < bd || j < bj) {
                            best.other = Some((d2, j));
                        }
                    }
                }
            }
        }
        best
    }

    /// A point that [`Self::polygon_at`] answers with polygon `i`, taken inside
    /// `polygon` (the one `i` was built from): where a map pin or a label can stand.
    /// The centre of the bounding box is not one: it can lie outside a concave polygon,
    /// in its neighbour. Tries the interior point of the whole, then, part by part from
    /// the largest, the middle of the widest inside stretch of horizontal lines at 1/2,
    /// 1/4, 3/4, … of the part's height. `None` when the polygon has no area or other
    /// polygons claim every candidate (an overlapping plan).
    ///
    /// ```
    /// use geo_types::{polygon, MultiPolygon};
    /// use wangge::spatial::partition::Partition;
    /// // An L whose bounding-box centre (1, 1) lies in the square filling its notch.
    /// let l = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 2.0, y: 0.0), (x: 2.0, y: 0.8),
    ///     (x: 0.8, y: 0.8), (x: 0.8, y: 2.0), (x: 0.0, y: 2.0)]]);
    /// let notch = MultiPolygon(vec![polygon![(x: 0.8, y: 0.8), (x: 2.0, y: 0.8), (x: 2.0, y: 2.0),
    ///     (x: 0.8, y: 2.0)]]);
    /// let partition = Partition::build(&[l.clone(), notch]);
    /// let p = partition.point_inside(0, &l).unwrap();
    /// assert_eq!(partition.polygon_at(p), Some(0));
    /// ```
    pub fn point_inside(&self, i: u32, polygon: &MultiPolygon<f64>) -> Option<Coord<f64>> {
        use geo::{Area, BoundingRect, InteriorPoint};
        let mut parts: Vec<&geo_types::Polygon<f64>> = polygon.0.iter().collect();
        parts.sort_by(|a, b| b.unsigned_area().total_cmp(&a.unsigned_area()));
        let lines = |part: &geo_types::Polygon<f64>| -> Vec<Coord<f64>> {
            let Some(r) = part.bounding_rect() else {
                return Vec::new();
            };
            const HEIGHTS: [f64; 7] = [0.5, 0.25, 0.75, 0.125, 0.375, 0.625, 0.875];
            HEIGHTS
                .iter()
                .filter_map(|f| widest_stretch_middle(part, r.min().y + f * r.height()))
                .collect()
        };
        polygon
            .interior_point()
            .map(|p| p.0)
            .into_iter()
            .chain(parts.into_iter().flat_map(lines))
            .find(|&p| self.polygon_at(p) == Some(i))
    }

    /// Exact distance in metres from `p` to the boundary of polygon `i`, found by
    /// scanning rings of cells outwards from `p` until no nearer edge can exist.
    pub fn boundary_distance(&self, i: u32, p: Coord<f64>) -> Option<f64> {
        let scale = LocalScale::at(p.y);
        let range = self.set.polys.get(i as usize)?.coord_range(&self.set);
        let g = &self.grid;
        let (cx, cy) = (g.col(p.x) as isize, g.row(p.y) as isize);
        let mut best = f64::INFINITY;
        let max_r = g.nx.max(g.ny) as isize;
        for r in 0..=max_r {
            if r > 0 {
                // Every cell of ring r lies outside the block of rings < r around p's cell.
                let bx0 = g.x0 + (cx - r + 1) as f64 * g.cw;
                let bx1 = g.x0 + (cx + r) as f64 * g.cw;
                let by0 = g.y0 + (cy - r + 1) as f64 * g.ch;
                let by1 = g.y0 + (cy + r) as f64 * g.ch;
                let lb = ((p.x - bx0).min(bx1 - p.x) * scale.x)
                    .min((p.y - by0).min(by1 - p.y) * scale.y);
                if lb.max(0.0).powi(2) > best {
                    break;
                }
            }
            for (ix, iy) in ring_cells(cx, cy, r, g.nx as isize, g.ny as isize) {
                let edges = self.edges_of_cell(iy * g.nx + ix);
                // Edge words are ordered by edge, whatever their flags.
                let at = edges.partition_point(|&w| w >> EDGE_SHIFT < range.start);
                let own = edges[at..].iter().map(|&w| w >> EDGE_SHIFT);
                for k in own.take_while(|&k| k < range.end) {
                    let (a, b) = self.set.edge(k);
                    best = best.min(scale.segment_distance2(p, a, b));
                }
            }
        }
        best.is_finite().then(|| best.sqrt())
    }

    /// The polygon owning the edge that starts at coordinate offset `k`.
    fn owner(&self, k: u32) -> u32 {
        owner_in(&self.poly_coord_starts, k)
    }
}

/// The polygon whose coordinates (starting at `starts[i]`) include offset `k`.
#[inline]
fn owner_in(starts: &[u32], k: u32) -> u32 {
    (starts.partition_point(|&s| s <= k) - 1) as u32
}

/// Asks the CPU to start loading the cache line holding `r`.
#[inline(always)]
fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// For polygon `poly` and its edges `own` in the cell `rect`: the crossing parity at
/// `(X, Y0)`, the cell's bottom right corner, of the edges that do not enter the cell.
fn outside_parity(set: &PolygonSet, poly: u32, own: &[u32], rect: &Rect<f64>) -> bool {
    let corner = Coord {
        x: rect.max().x,
        y: rect.min().y,
    };
    let mut parity = set.contains(poly, corner);
    for &k in own {
        let (a, b) = set.edge(k);
        if crosses_ray(a, b, corner) {
            parity = !parity;
        }
    }
    parity
}

/// Pushes `(cell, edge word)` for polygon `poly`'s edges `own` (sorted) in the cell
/// `rect`: a vertex right of the cell's right border `X` and above its bottom `Y0`,
/// where an edge of the cell meets one of the polygon's edges that is not, is a break
/// (the outside crossing count changes there by one); the last edge is marked.
fn push_edge_words(
    set: &PolygonSet,
    poly: u32,
    own: &[u32],
    rect: &Rect<f64>,
    cell: u32,
    out: &mut Vec<(u32, u32)>,
) {
    let (x, y0) = (rect.max().x, rect.min().y);
    let is_own = |k: u32| own.binary_search(&k).is_ok();
    for (n, &k) in own.iter().enumerate() {
        let (a, b) = set.edge(k);
        let mut word = k << EDGE_SHIFT;
        if a.x > x && a.y > y0 && !is_own(set.prev_edge_of(poly, k)) {
            word |= BREAK_A;
        }
        if b.x > x && b.y > y0 && !is_own(set.next_edge_of(poly, k)) {
            word |= BREAK_B;
        }
        if n + 1 == own.len() {
            word |= LAST;
        }
        out.push((cell, word));
    }
}

/// One thread's share of the rasterised polygons.
#[derive(Default)]
struct Rasterised {
    /// (cell, edge word) for every cell an edge passes through.
    edges: Vec<(u32, u32)>,
    /// (cell, polygon | BASE) for every cell a polygon's boundary crosses.
    entries: Vec<(u32, u32)>,
    /// (cell, polygon) for every cell a polygon contains wholly.
    full: Vec<(u32, u32)>,
}

/// The middle of the widest stretch of the horizontal line at `y` inside `part` (even-odd
/// over all its rings), if the line crosses it.
fn widest_stretch_middle(part: &geo_types::Polygon<f64>, y: f64) -> Option<Coord<f64>> {
    let mut xs: Vec<f64> = std::iter::once(part.exterior())
        .chain(part.interiors())
        .flat_map(|ring| ring.lines())
        .filter(|l| (l.start.y > y) != (l.end.y > y))
        .map(|l| l.start.x + (y - l.start.y) / (l.end.y - l.start.y) * (l.end.x - l.start.x))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.chunks_exact(2)
        .max_by(|a, b| (a[1] - a[0]).total_cmp(&(b[1] - b[0])))
        .filter(|s| s[1] > s[0])
        .map(|s| Coord {
            x: (s[0] + s[1]) / 2.0,
            y,
        })
}

impl Rasterised {
    /// Records the cells polygon `i` contains wholly, given the sorted cells its
    /// boundary crosses. Two neighbouring cells that none of the polygon's edges touch
    /// are both inside or both outside (the segment between their centres lies in the
    /// two cells, which no edge meets), so the status spreads along a run of untouched
    /// cells and down to the run below; an exact point-in-polygon test is needed only
    /// for a run with no untouched cell above.
    fn full_cells(
        &mut self,
        set: &PolygonSet,
        grid: &CellGrid,
        i: u32,
        touched: &[u32],
        scratch: &mut Vec<bool>,
    ) {
        if set.polys[i as usize].rings.is_empty() {
            return;
        }
        let b = set.bbox(i);
        let (c0, c1) = (grid.col(b.min().x), grid.col(b.max().x));
        let (r0, r1) = (grid.row(b.min().y), grid.row(b.max().y));
        let width = c1 - c0 + 1;
        // The bounding box's cells, marked where the boundary passes.
        scratch.clear();
        scratch.resize(width * (r1 - r0 + 1), false);
        for &cell in touched {
            let (ix, iy) = (cell as usize % grid.nx, cell as usize / grid.nx);
            if (c0..=c1).contains(&ix) && (r0..=r1).contains(&iy) {
                scratch[(iy - r0) * width + ix - c0] = true;
            }
        }
        let touches = |ix: usize, iy: usize| scratch[(iy - r0) * width + ix - c0];
        // Status of each column's cell in the row above (None: touched).
        let mut above: Vec<Option<bool>> = vec![None; width];
        let mut row: Vec<Option<bool>> = vec![None; width];
        for iy in r0..=r1 {
            let mut ix = c0;
            while ix <= c1 {
                if touches(ix, iy) {
                    row[ix - c0] = None;
                    ix += 1;
                    continue;
                }
                let start = ix;
                while ix <= c1 && !touches(ix, iy) {
                    ix += 1;
                }
                let inside = above[start - c0..ix - c0]
                    .iter()
                    .find_map(|&s| s)
                    .unwrap_or_else(|| set.contains(i, grid.centre(start, iy)));
                for x in start..ix {
                    row[x - c0] = Some(inside);
                    if inside {
                        self.full.push(((iy * grid.nx + x) as u32, i));
                    }
                }
            }
            std::mem::swap(&mut above, &mut row);
        }
    }
}

/// Counts describing a partition's raster (see [`Partition::raster_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RasterStats {
    pub cells: usize,
    /// Cells wholly inside one polygon: a lookup there is one memory access.
    pub interior: usize,
    /// Interior cells whose eight neighbours no edge passes through either: a lookup
    /// there also proves, in the same access, that the nearest boundary is at least a
    /// cell away.
    pub interior_far: usize,
    pub empty: usize,
    pub boundary: usize,
    /// Sum of candidate polygons over boundary cells.
    pub candidates: usize,
    pub cell_edges: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::synth::{SynthOptions, tile};
    use geo_types::polygon;
    use rand::{Rng, SeedableRng};

    fn synthetic(cells: usize, seed: u64) -> Vec<MultiPolygon<f64>> {
        let parent = MultiPolygon(vec![
            polygon![(x: 118.0, y: 37.0), (x: 118.1, y: 37.0), (x: 118.1, y: 37.08), (x: 118.0, y: 37.08)],
        ]);
        tile(
            &parent,
            cells,
            &SynthOptions {
                seed,
                densify: 5,
                ..Default::default()
            },
        )
        .unwrap()
        .cells
    }

    #[test]
    fn every_polygon_of_a_tiling_has_a_point_inside_that_looks_up_to_it() {
        for seed in 0..6 {
            let polys = synthetic(200, seed);
            let partition = Partition::build(&polys);
            for (i, poly) in polys.iter().enumerate() {
                let p = partition
                    .point_inside(i as u32, poly)
                    .unwrap_or_else(|| panic!("seed {seed}: polygon {i} has no point"));
                assert_eq!(partition.polygon_at(p), Some(i as u32), "seed {seed}");
                assert!(geo::Contains::contains(poly, &geo::Point(p)), "seed {seed}");
            }
        }
    }

    #[test]
    fn a_polygon_wholly_covered_by_an_earlier_one_has_no_point_of_its_own() {
        let big = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: 4.0, y: 0.0), (x: 4.0, y: 4.0), (x: 0.0, y: 4.0)],
        ]);
        let small = MultiPolygon(vec![
            polygon![(x: 1.0, y: 1.0), (x: 2.0, y: 1.0), (x: 2.0, y: 2.0), (x: 1.0, y: 2.0)],
        ]);
        let partition = Partition::build(&[big.clone(), small.clone()]);
        assert_eq!(partition.point_inside(1, &small), None);
        assert!(partition.point_inside(0, &big).is_some());
    }

    #[test]
    fn a_parallel_build_equals_a_single_threaded_one() {
        let polys = synthetic(300, 11);
        let build = |threads| {
            Partition::build_with(
                &polys,
                BuildOptions {
                    threads,
                    ..BuildOptions::default()
                },
            )
        };
        let one = build(1);
        for threads in [2, 3, 7] {
            let many = build(threads);
            assert_eq!(one.cells, many.cells, "{threads} threads");
            assert_eq!(one.lists, many.lists, "{threads} threads");
        }
    }

    /// Each interior cell records the chessboard distance to the nearest cell that
    /// an edge passes through, as a scan of every such cell finds it.
    #[test]
    fn interior_cells_record_the_distance_to_the_nearest_cell_with_edges() {
        for (seed, per_poly) in [(4, 96.0), (5, 2_000.0)] {
            let cells = synthetic(40, seed);
            let part = Partition::build_with(
                &cells,
                BuildOptions {
                    cells_per_polygon: per_poly,
                    threads: 2,
                },
            );
            let nx = part.grid.nx;
            let with_edges: Vec<(usize, usize)> = (0..part.cells.len())
                .filter(|&c| !part.edges_of_cell(c).is_empty())
                .map(|c| (c % nx, c / nx))
                .collect();
            let mut far = 0;
            for (c, &w) in part.cells.iter().enumerate() {
                let Cell::Interior { reach, .. } = Cell::of(w) else {
                    continue;
                };
                let (ix, iy) = (c % nx, c / nx);
                let nearest = with_edges
                    .iter()
                    .map(|&(x, y)| x.abs_diff(ix).max(y.abs_diff(iy)))
                    .min()
                    .unwrap_or(usize::MAX)
                    .min(REACH_MAX as usize);
                assert_eq!(reach as usize, nearest, "cell {c}");
                far += (reach >= 2) as usize;
            }
            assert!(far > 0, "seed {seed}: some cells are far from every edge");
        }
    }

    /// Where polygons overlap, a cell's list mixes polygons containing it wholly with
    /// polygons crossing it, and each crossing one reads its own run of the cell's
    /// edges: every polygon containing a point is still found, in index order.
    #[test]
    fn overlapping_polygons_are_all_found_by_the_cell_local_test() {
        let shifted = |polys: Vec<MultiPolygon<f64>>, dx: f64, dy: f64| {
            polys
                .into_iter()
                .map(|mp| geo::Translate::translate(&mp, dx, dy))
                .collect::<Vec<_>>()
        };
        let cover = MultiPolygon(vec![
            polygon![(x: 118.02, y: 37.01), (x: 118.09, y: 37.01), (x: 118.09, y: 37.07), (x: 118.02, y: 37.07)],
        ]);
        let mut polys = vec![cover.clone()];
        polys.extend(synthetic(40, 8));
        polys.push(cover.clone());
        polys.extend(shifted(synthetic(30, 9), 0.013, 0.007));
        polys.push(cover);
        for per_poly in [4.0, 96.0] {
            let part = Partition::build_with(
                &polys,
                BuildOptions {
                    cells_per_polygon: per_poly,
                    threads: 2,
                },
            );
            let full = PolygonSet::new(&polys);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let (mut all, mut deepest) = (Vec::new(), 0);
            for _ in 0..20_000 {
                let p = Coord {
                    x: rng.random_range(117.99..118.13),
                    y: rng.random_range(36.99..37.10),
                };
                let truth: Vec<u32> = (0..polys.len() as u32)
                    .filter(|&i| full.contains(i, p))
                    .collect();
                part.polygons_at(p, &mut all);
                assert_eq!(all, truth, "at {p:?}");
                assert_eq!(part.polygon_at(p), truth.first().copied(), "at {p:?}");
                deepest = deepest.max(truth.len());
            }
            assert!(deepest >= 4, "the probes reached {deepest} layers only");
        }
    }

    /// The raster's cell-local test must agree with the full crossing test everywhere,
    /// including exactly on vertices, where degenerate cases live.
    #[test]
    fn cell_local_test_equals_the_full_crossing_test() {
        for (seed, per_poly) in [(1, 8.0), (2, 48.0), (3, 300.0)] {
            let cells = synthetic(60, seed);
            let part = Partition::build_with(
                &cells,
                BuildOptions {
                    cells_per_polygon: per_poly,
                    // Several threads: the parallel build must be exact too.
                    threads: 3,
                },
            );
            let full = PolygonSet::new(&cells);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut probes: Vec<Coord<f64>> = (0..20_000)
                .map(|_| Coord {
                    x: rng.random_range(117.99..118.11),
                    y: rng.random_range(36.99..37.09),
                })
                .collect();
            probes.extend(
                cells
                    .iter()
                    .flat_map(|c| geom::rings(c).flat_map(|r| r.0.iter().copied())),
            );
            let mut all = Vec::new();
            let (mut batch, mut expected) = (Vec::new(), Vec::new());
            for p in probes {
                let truth: Vec<u32> = (0..cells.len() as u32)
                    .filter(|&i| full.contains(i, p))
                    .collect();
                part.polygons_at(p, &mut all);
                assert_eq!(all, truth, "at {p:?}");
                assert_eq!(part.polygon_at(p), truth.first().copied());
                batch.push(p);
                expected.push(truth.first().copied());
            }
            let mut got = Vec::new();
            part.polygon_at_many(&batch, &mut got);
            assert_eq!(got, expected);
        }
    }
}

#[derive(Default)]
struct Nearest {
    own: Option<(f64, u32)>,
    other: Option<(f64, u32)>,
}

/// Writes into each interior cell's word the chessboard distance (in cells, capped at
/// [`REACH_MAX`]) to the nearest cell that an edge passes through: a two-pass distance
/// transform over the raster. Outside the raster no edge passes, so the border is no
/// obstacle.
fn record_reach(cells: &mut [u32], lists: &[u32], grid: &CellGrid) {
    let (nx, ny) = (grid.nx, grid.ny);
    let far = REACH_MAX as u8;
    let mut reach: Vec<u8> = cells
        .iter()
        .map(|&w| match Cell::of(w) {
            Cell::List(at) if lists[at + 2] > 0 => 0,
            _ => far,
        })
        .collect();
    // Forward: from the left and the row below; backward: from the right and above.
    for iy in 0..ny {
        for ix in 0..nx {
            let c = iy * nx + ix;
            let mut r = reach[c];
            if ix > 0 {
                r = r.min(reach[c - 1].saturating_add(1));
            }
            if iy > 0 {
                let below = c - nx;
                r = r.min(reach[below].saturating_add(1));
                if ix > 0 {
                    r = r.min(reach[below - 1].saturating_add(1));
                }
                if ix + 1 < nx {
                    r = r.min(reach[below + 1].saturating_add(1));
                }
            }
            reach[c] = r.min(far);
        }
    }
    for iy in (0..ny).rev() {
        for ix in (0..nx).rev() {
            let c = iy * nx + ix;
            let mut r = reach[c];
            if ix + 1 < nx {
                r = r.min(reach[c + 1].saturating_add(1));
            }
            if iy + 1 < ny {
                let above = c + nx;
                r = r.min(reach[above].saturating_add(1));
                if ix > 0 {
                    r = r.min(reach[above - 1].saturating_add(1));
                }
                if ix + 1 < nx {
                    r = r.min(reach[above + 1].saturating_add(1));
                }
            }
            reach[c] = r;
        }
    }
    for (w, r) in cells.iter_mut().zip(reach) {
        if let Cell::Interior { poly, .. } = Cell::of(*w) {
            *w = poly | (r as u32) << REACH_SHIFT;
        }
    }
}

/// Cells on the square ring at Chebyshev distance `r` around (cx, cy), clipped to the raster.
fn ring_cells(
    cx: isize,
    cy: isize,
    r: isize,
    nx: isize,
    ny: isize,
) -> impl Iterator<Item = (usize, usize)> {
    let inside = move |x: isize, y: isize| x >= 0 && y >= 0 && x < nx && y < ny;
    let cells: Box<dyn Iterator<Item = (isize, isize)>> = if r == 0 {
        Box::new(std::iter::once((cx, cy)))
    } else {
        let top = (cx - r..=cx + r).map(move |x| (x, cy - r));
        let bottom = (cx - r..=cx + r).map(move |x| (x, cy + r));
        let left = (cy - r + 1..cy + r).map(move |y| (cx - r, y));
        let right = (cy - r + 1..cy + r).map(move |y| (cx + r, y));
        Box::new(top.chain(bottom).chain(left).chain(right))
    };
    cells
        .filter(move |&(x, y)| inside(x, y))
        .map(|(x, y)| (x as usize, y as usize))
}

/// Counting sort of (cell, value) pairs into CSR offsets and values, stable.
fn group_by_cell<'a, T: Copy + Default + 'a>(
    ncells: usize,
    parts: impl Iterator<Item = &'a [(u32, T)]> + Clone,
) -> (Vec<u32>, Vec<T>) {
    // Parts are read in order without concatenating them first: at city scale they
    // hold hundreds of megabytes.
    let mut offsets = vec![0u32; ncells + 1];
    for &(c, _) in parts.clone().flatten() {
        offsets[c as usize + 1] += 1;
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let mut fill = offsets.clone();
    let mut values = vec![T::default(); offsets[ncells] as usize];
    for &(c, v) in parts.flatten() {
        values[fill[c as usize] as usize] = v;
        fill[c as usize] += 1;
    }
    (offsets, values)
}
