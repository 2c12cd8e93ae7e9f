//! The validator on real boundaries, against what GEOS finds on the same bytes
//! (`tests/fixtures/geos_expected.json`, made by `geos_expected.py`).

use crate::helpers::{check, real};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use wangge::domain::Grid;
use wangge::spatial::coverage::{ProblemKind, Report, ValidateOptions};

fn expected(file: &str) -> Value {
    let text = std::fs::read_to_string(crate::helpers::fixture("geos_expected.json"))
        .expect("expectation");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["files"][file].clone()
}

/// Validates without a parent and with no sliver classification, as GEOS sees it.
fn run(grids: &[Grid]) -> Report {
    let polys: Vec<_> = grids.iter().map(|g| g.boundary.clone()).collect();
    check(
        &polys,
        None,
        &ValidateOptions {
            sliver_width_m: 0.0,
            min_area_m2: 0.0,
            require_cover: true,
        },
    )
}

fn invalid(report: &Report) -> BTreeSet<u32> {
    report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::InvalidGeometry)
        .map(|p| p.grids[0])
        .collect()
}

fn overlaps(report: &Report) -> BTreeMap<(u32, u32), f64> {
    report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Overlap)
        .map(|p| ((p.grids[0], p.grids[1]), p.area_m2.unwrap_or(0.0)))
        .collect()
}

fn gaps_over_1m2(report: &Report) -> (usize, f64) {
    let g: Vec<f64> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Gap)
        .filter_map(|p| p.area_m2)
        .filter(|&a| a > 1.0)
        .collect();
    (g.len(), g.iter().sum())
}

fn geos_pairs(e: &Value) -> BTreeMap<(u32, u32), f64> {
    e["overlaps"]
        .as_array()
        .expect("overlaps")
        .iter()
        .map(|o| {
            (
                (
                    o["pair"][0].as_u64().unwrap() as u32,
                    o["pair"][1].as_u64().unwrap() as u32,
                ),
                o["area_m2"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn assert_gaps_match(report: &Report, e: &Value) {
    let (n, total) = gaps_over_1m2(report);
    let g = &e["gaps_over_1m2"];
    assert_eq!(n as u64, g["count"].as_u64().unwrap(), "gap count");
    let t = g["total_m2"].as_f64().unwrap();
    assert!(
        (total - t).abs() / t.max(1.0) < 0.005,
        "gap area {total} vs GEOS {t}"
    );
}

#[test]
fn binzhou_counties_from_one_source_tile_exactly() {
    let grids = real("binzhou_371600_full.datav.geojson", "adcode");
    let report = run(&grids);
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    // Only the warning that Zhanhua (371603) has an islet.
    assert_eq!(kinds, vec![ProblemKind::Disconnected]);
    assert_eq!(grids[report.problems[0].grids[0] as usize].id, "371603");
}

#[test]
fn binzhou_counties_digitised_separately_have_the_overlaps_and_gaps_geos_finds() {
    let grids = real("binzhou_counties_bound.datav.geojson", "adcode");
    let report = run(&grids);
    let e = expected("binzhou_counties_bound.datav.geojson");
    let ours = overlaps(&report);
    let geos = geos_pairs(&e);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        geos.keys().collect::<Vec<_>>()
    );
    for (pair, a) in &geos {
        assert!(
            (ours[pair] - a).abs() / a < 0.005,
            "{pair:?}: {} vs GEOS {a}",
            ours[pair]
        );
    }
    assert!(invalid(&report).is_empty());
    assert_gaps_match(&report, &e);
}

#[test]
fn shenzhen_streets_have_the_sliver_gaps_geos_finds() {
    let grids = real("shenzhen_streets.geojson", "ID");
    let report = run(&grids);
    let e = expected("shenzhen_streets.geojson");
    assert!(overlaps(&report).is_empty());
    assert_gaps_match(&report, &e);
}

#[test]
fn taiwan_villages_have_the_invalid_polygons_and_overlaps_geos_finds() {
    let grids = real("taiwan_villages.geojson", "VILLAGESN");
    let report = run(&grids);
    let e = expected("taiwan_villages.geojson");
    let geos_invalid: BTreeSet<u32> = e["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["index"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(invalid(&report), geos_invalid);
    assert_eq!(
        invalid(&report).len(),
        8,
        "wangge finds the 8 invalid villages"
    );

    // Overlaps: the same pairs. Two kinds of pair may differ and are left out: those
    // with a self-intersecting polygon (GEOS repairs it with make_valid, we read it
    // with the non-zero rule) and specks below 1 cm² (below either engine's precision).
    let keep = |m: BTreeMap<(u32, u32), f64>| -> BTreeSet<(u32, u32)> {
        m.into_iter()
            .filter(|(p, a)| {
                *a >= 1e-4 && !geos_invalid.contains(&p.0) && !geos_invalid.contains(&p.1)
            })
            .map(|(p, _)| p)
            .collect()
    };
    let geos = geos_pairs(&e);
    let ours = keep(overlaps(&report));
    assert_eq!(ours, keep(geos));
    assert!(
        ours.len() > 100,
        "wangge finds the overlapping pairs ({})",
        ours.len()
    );
    assert_gaps_match(&report, &e);
}
