//! A uniform grid of square cells over the plane's integer units, for the noding's
//! two questions: which hot pixels lie by this segment, and which pieces may cross
//! it. A segment is filed under the cells it passes through (widened by a margin),
//! not under every cell of its bounding box, so a long diagonal edge costs its
//! length, not its area; and filing is a push, so the pieces a round cuts join the
//! same grid instead of each round building a tree of its own.

use rustc_hash::FxHashMap;

/// A point on the integer grid.
pub(super) type P = [i64; 2];

/// How far (units) from a segment the cells it is filed under reach. A pixel the
/// segment meets has its centre within √½ of it; a crossing lies on it, and the
/// integer point below a crossing within √2.
pub(super) const MARGIN: i64 = 2;

/// How many cells' worth of length the segments may have on average.
const CELLS_PER_SEGMENT: f64 = 8.0;

#[derive(Clone)]
pub(super) struct Cells {
    size: i64,
    cells: FxHashMap<(i64, i64), Vec<u32>>,
}

impl Cells {
    /// A grid of cells about as wide as a typical one of `segments` is long: each is
    /// then filed under a few cells, and a cell holds a few of them. Where a few
    /// segments are far longer than the rest, the cells grow until all of them
    /// together span at most [`CELLS_PER_SEGMENT`] cells a segment, so that one
    /// segment across the world cannot be filed under billions of cells.
    pub fn for_segments(segments: &[(P, P)]) -> Cells {
        let mut spans: Vec<i64> = segments
            .iter()
            .map(|(a, b)| (a[0] - b[0]).abs().max((a[1] - b[1]).abs()))
            .collect();
        let total: f64 = spans.iter().map(|&s| s as f64).sum();
        let mid = spans.len() / 2;
        let median = if spans.is_empty() {
            0
        } else {
            *spans.select_nth_unstable(mid).1
        };
        let bound = (total / (CELLS_PER_SEGMENT * spans.len().max(1) as f64)).ceil() as i64;
        Cells {
            size: median.max(bound).max(64),
            cells: FxHashMap::default(),
        }
    }

    fn cell(&self, p: P) -> (i64, i64) {
        (p[0].div_euclid(self.size), p[1].div_euclid(self.size))
    }

    /// Files `id` under the cell of `p`.
    pub fn insert_point(&mut self, id: u32, p: P) {
        let cell = self.cell(p);
        self.cells.entry(cell).or_default().push(id);
    }

    /// Files `id` under every cell that holds a point within [`MARGIN`] of segment
    /// `a b`.
    pub fn insert_segment(&mut self, id: u32, a: P, b: P) {
        let mut cells = Vec::new();
        self.walk(a, b, |c| cells.push(c));
        for c in cells {
            self.cells.entry(c).or_default().push(id);
        }
    }

    /// What is filed under the cell of `p`.
    pub fn at(&self, p: P) -> &[u32] {
        self.cells.get(&self.cell(p)).map_or(&[], Vec::as_slice)
    }

    /// Calls `f` with what is filed under every cell that holds a point within
    /// [`MARGIN`] of segment `a b` (a segment filed under several of them, once for
    /// each).
    pub fn along(&self, a: P, b: P, mut f: impl FnMut(u32)) {
        self.walk(a, b, |c| {
            if let Some(ids) = self.cells.get(&c) {
                ids.iter().for_each(|&id| f(id));
            }
        });
    }

    /// Every cell that holds an integer point within [`MARGIN`] of segment `a b`
    /// (and perhaps a few more), each once: column by column, the rows the segment
    /// spans over that column's x range widened by the margin.
    fn walk(&self, a: P, b: P, mut f: impl FnMut((i64, i64))) {
        let (min_x, max_x) = (a[0].min(b[0]), a[0].max(b[0]));
        let (min_y, max_y) = (a[1].min(b[1]), a[1].max(b[1]));
        let s = self.size;
        let first = (min_x - MARGIN).div_euclid(s);
        let last = (max_x + MARGIN).div_euclid(s);
        for column in first..=last {
            // The part of the segment a point of this column can be within the
            // margin of.
            let x0 = (column * s - MARGIN).max(min_x);
            let x1 = (column * s + s - 1 + MARGIN).min(max_x);
            let (y0, y1) = if a[0] == b[0] {
                (min_y, max_y)
            } else {
                let y_at = |x: i64| {
                    a[1] as f64 + (x - a[0]) as f64 * (b[1] - a[1]) as f64 / (b[0] - a[0]) as f64
                };
                let (p, q) = (y_at(x0), y_at(x1));
                // One unit more for the floating point, well under it in error.
                (
                    (p.min(q).floor() as i64 - 1).max(min_y),
                    (p.max(q).ceil() as i64 + 1).min(max_y),
                )
            };
            let rows = (y0 - MARGIN).div_euclid(s)..=(y1 + MARGIN).div_euclid(s);
            for row in rows {
                f((column, row));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Squared distance from `p` to segment `a b`, exactly enough for small numbers.
    fn distance2(p: P, a: P, b: P) -> f64 {
        let (px, py) = (p[0] as f64, p[1] as f64);
        let (ax, ay, bx, by) = (a[0] as f64, a[1] as f64, b[0] as f64, b[1] as f64);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        let t = if len2 == 0.0 {
            0.0
        } else {
            (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
        };
        let (qx, qy) = (ax + t * dx, ay + t * dy);
        (px - qx).powi(2) + (py - qy).powi(2)
    }

    proptest! {
        #[test]
        fn a_segment_is_found_from_every_point_within_the_margin(
            a in (-2_000i64..2_000, -2_000i64..2_000),
            b in (-2_000i64..2_000, -2_000i64..2_000),
            size in 1i64..300,
            offsets in prop::collection::vec((0.0f64..1.0, -2i64..=2, -2i64..=2), 1..40),
        ) {
            let (a, b) = ([a.0, a.1], [b.0, b.1]);
            let mut cells = Cells { size, cells: FxHashMap::default() };
            cells.insert_segment(7, a, b);
            for (t, ox, oy) in offsets {
                let on = [
                    a[0] + ((b[0] - a[0]) as f64 * t).round() as i64 + ox,
                    a[1] + ((b[1] - a[1]) as f64 * t).round() as i64 + oy,
                ];
                if distance2(on, a, b) <= (MARGIN * MARGIN) as f64 {
                    prop_assert!(cells.at(on).contains(&7), "{on:?} by {a:?} {b:?}, cells of {size}");
                }
            }
        }
    }

    #[test]
    fn a_long_diagonal_is_filed_under_a_band_of_cells_not_its_whole_box() {
        let mut cells = Cells {
            size: 10,
            cells: FxHashMap::default(),
        };
        cells.insert_segment(1, [0, 0], [10_000, 10_000]);
        // The box holds 1 000 000 cells; the band along the diagonal a few thousand.
        assert!(cells.cells.len() < 4_000, "{}", cells.cells.len());
        assert!(cells.at([5_000, 5_001]).contains(&1));
        assert!(cells.at([5_000, 5_100]).is_empty());
    }

    #[test]
    fn one_segment_across_the_world_does_not_shrink_the_cells_to_the_short_ones() {
        let mut segments: Vec<(P, P)> = (0..1_000)
            .map(|i| ([i * 100, 0], [i * 100 + 100, 0]))
            .collect();
        segments.push(([0, 0], [360_000_000_000, 180_000_000_000]));
        let mut cells = Cells::for_segments(&segments);
        for (i, &(a, b)) in segments.iter().enumerate() {
            cells.insert_segment(i as u32, a, b);
        }
        let filed: usize = cells.cells.values().map(Vec::len).sum();
        assert!(filed < 40 * segments.len(), "{filed} filings");
    }
}
