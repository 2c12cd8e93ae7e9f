//! Each problem kind injected into an otherwise clean plan is reported with the right
//! kind and grids, and nothing else is.

use crate::helpers::{check, lenient, square};
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use wangge::spatial::coverage::{ProblemKind, ValidateOptions, validate};

const XS: [f64; 4] = [118.0, 118.0005, 118.005, 118.01];
const YS: [f64; 4] = [37.3, 37.305, 37.31, 37.315];

/// A 3×3 plan (cell = row * 3 + col, row 0 south) and its parent. Column 0 is narrow.
fn plan() -> (MultiPolygon<f64>, Vec<MultiPolygon<f64>>) {
    let mut cells = Vec::new();
    for r in 0..3 {
        for c in 0..3 {
            cells.push(square(XS[c], YS[r], XS[c + 1] - XS[c], YS[r + 1] - YS[r]));
        }
    }
    (square(XS[0], YS[0], XS[3] - XS[0], YS[3] - YS[0]), cells)
}

fn ring(points: &[(f64, f64)]) -> MultiPolygon<f64> {
    let mut v: Vec<Coord<f64>> = points.iter().map(|&(x, y)| Coord { x, y }).collect();
    v.push(v[0]);
    MultiPolygon(vec![Polygon::new(LineString(v), vec![])])
}

fn kinds(
    cells: &[MultiPolygon<f64>],
    parent: &MultiPolygon<f64>,
    o: &ValidateOptions,
) -> Vec<(ProblemKind, Vec<u32>)> {
    check(cells, Some(parent), o)
        .problems
        .into_iter()
        .map(|p| (p.kind, p.grids))
        .collect()
}

#[test]
fn the_clean_plan_has_no_problem() {
    let (parent, cells) = plan();
    assert_eq!(kinds(&cells, &parent, &lenient()), vec![]);
}

#[test]
fn an_overlap_names_both_grids_and_its_area() {
    let (parent, mut cells) = plan();
    let d = 0.0002; // ~18 m
    cells[4] = ring(&[
        (XS[1], YS[1]),
        (XS[2] + d, YS[1]),
        (XS[2] + d, YS[2]),
        (XS[1], YS[2]),
    ]);
    let report = check(&cells, Some(&parent), &lenient());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(
        (p.kind, p.grids.clone()),
        (ProblemKind::Overlap, vec![4, 5])
    );
    let expected = 0.0002 * 0.005 * 88_600.0 * 110_990.0; // ≈ 9 800 m²
    assert!(
        (p.area_m2.unwrap() - expected).abs() / expected < 0.01,
        "{:?}",
        p.area_m2
    );
    assert!((p.width_m.unwrap() - 17.0).abs() < 1.5, "{:?}", p.width_m);
}

#[test]
fn a_gap_is_reported_with_the_grids_around_it() {
    let (parent, mut cells) = plan();
    let d = 0.0002;
    cells[4] = ring(&[
        (XS[1], YS[1]),
        (XS[2] - d, YS[1]),
        (XS[2] - d, YS[2]),
        (XS[1], YS[2]),
    ]);
    let found = kinds(&cells, &parent, &lenient());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, ProblemKind::Gap);
    assert!(
        found[0].1.contains(&4) && found[0].1.contains(&5),
        "{found:?}"
    );
}

#[test]
fn a_grid_reaching_past_its_parent_is_outside_parent() {
    let (parent, mut cells) = plan();
    cells[0] = ring(&[
        (XS[0] - 0.0003, YS[0]),
        (XS[1], YS[0]),
        (XS[1], YS[1]),
        (XS[0] - 0.0003, YS[1]),
    ]);
    assert_eq!(
        kinds(&cells, &parent, &lenient()),
        vec![(ProblemKind::OutsideParent, vec![0])]
    );
}

#[test]
fn a_spike_along_an_edge_is_invalid_geometry_only() {
    let (parent, mut cells) = plan();
    // From the north-east corner west along the top edge and straight back.
    cells[4] = ring(&[
        (XS[1], YS[1]),
        (XS[2], YS[1]),
        (XS[2], YS[2]),
        (XS[2] - 0.0001, YS[2]),
        (XS[2], YS[2]),
        (XS[1], YS[2]),
    ]);
    assert_eq!(
        kinds(&cells, &parent, &lenient()),
        vec![(ProblemKind::InvalidGeometry, vec![4])]
    );
}

#[test]
fn a_repeated_id_is_duplicate_id_only() {
    let (parent, cells) = plan();
    let ids = ["a", "b", "c", "d", "e", "f", "g", "b", "i"];
    let cells: Vec<_> = cells.iter().collect();
    let r = validate(&cells, &ids, Some(&parent), &lenient());
    let found: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.kind, p.grids.clone()))
        .collect();
    assert_eq!(found, vec![(ProblemKind::DuplicateId, vec![1, 7])]);
}

#[test]
fn a_copied_grid_is_duplicate_geometry_only() {
    let (parent, mut cells) = plan();
    cells.push(cells[4].clone());
    assert_eq!(
        kinds(&cells, &parent, &lenient()),
        vec![(ProblemKind::DuplicateGeometry, vec![4, 9])]
    );
}

#[test]
fn a_vertex_on_one_side_of_a_shared_edge_is_an_edge_mismatch() {
    let (parent, mut cells) = plan();
    let mid = (YS[1] + YS[2]) / 2.0;
    cells[4] = ring(&[
        (XS[1], YS[1]),
        (XS[2], YS[1]),
        (XS[2], mid),
        (XS[2], YS[2]),
        (XS[1], YS[2]),
    ]);
    let r = check(&cells, Some(&parent), &lenient());
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(
        (r.problems[0].kind, r.problems[0].grids.clone()),
        (ProblemKind::EdgeMismatch, vec![4, 5])
    );
    assert_eq!(r.problems[0].area_m2, Some(0.0));
}

#[test]
fn a_sliver_thinner_than_the_tolerance_is_an_edge_mismatch() {
    let (parent, mut cells) = plan();
    let d = 0.000001; // ~9 cm
    cells[4] = ring(&[
        (XS[1], YS[1]),
        (XS[2] - d, YS[1]),
        (XS[2] - d, YS[2]),
        (XS[1], YS[2]),
    ]);
    let r = check(&cells, Some(&parent), &lenient());
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let p = &r.problems[0];
    assert_eq!(p.kind, ProblemKind::EdgeMismatch);
    assert!(p.grids.contains(&4) && p.grids.contains(&5));
    assert!(p.width_m.unwrap() < 0.1, "{:?}", p.width_m);
    // With a tolerance below its width it is a gap.
    let strict = ValidateOptions {
        sliver_width_m: 0.01,
        ..lenient()
    };
    assert_eq!(
        check(&cells, Some(&parent), &strict).problems[0].kind,
        ProblemKind::Gap
    );
}

#[test]
fn a_grid_in_two_separate_pieces_is_a_disconnected_warning() {
    let (parent, mut cells) = plan();
    let far = cells.remove(8);
    cells[0].0.extend(far.0);
    let r = check(&cells, Some(&parent), &lenient());
    assert!(r.is_valid());
    let found: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.kind, p.grids.clone()))
        .collect();
    assert_eq!(found, vec![(ProblemKind::Disconnected, vec![0])]);
}

#[test]
fn grids_below_the_minimum_area_are_small_grid_warnings() {
    let (parent, cells) = plan();
    // Column 0 is ~44 m × 555 m ≈ 24 500 m².
    let o = ValidateOptions {
        min_area_m2: 30_000.0,
        ..ValidateOptions::default()
    };
    let r = check(&cells, Some(&parent), &o);
    assert!(r.is_valid());
    let found: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.kind, p.grids.clone()))
        .collect();
    assert_eq!(
        found,
        vec![
            (ProblemKind::SmallGrid, vec![0]),
            (ProblemKind::SmallGrid, vec![3]),
            (ProblemKind::SmallGrid, vec![6])
        ]
    );
}

#[test]
fn dedicated_grids_may_leave_gaps_but_not_overlap() {
    let (parent, _) = plan();
    let park = square(XS[1], YS[1], 0.002, 0.002);
    let school = square(XS[1] + 0.001, YS[1] + 0.001, 0.002, 0.002);
    let o = ValidateOptions {
        require_cover: false,
        ..lenient()
    };
    assert_eq!(kinds(std::slice::from_ref(&park), &parent, &o), vec![]);
    assert_eq!(
        kinds(&[park, school], &parent, &o),
        vec![(ProblemKind::Overlap, vec![0, 1])]
    );
}
