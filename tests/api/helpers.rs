//! Shared helpers: fixtures, synthetic partitions, validation shortcuts.

use geo_types::{MultiPolygon, polygon};
use std::path::PathBuf;
use wangge::domain::Grid;
use wangge::io::geojson::{ReadOptions, read_grids_file};
use wangge::spatial::coverage::{Report, ValidateOptions, validate};
use wangge::spatial::synth::{SynthOptions, tile};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads a real fixture as stored (no CRS conversion), ids from `id_field`.
pub fn real(name: &str, id_field: &str) -> Vec<Grid> {
    let opts = ReadOptions {
        id_field: id_field.into(),
        allow_duplicate_ids: true,
        ..ReadOptions::default()
    };
    read_grids_file(&fixture(&format!("real/{name}")), &opts).expect("fixture reads")
}

pub fn square(x0: f64, y0: f64, w: f64, h: f64) -> MultiPolygon<f64> {
    MultiPolygon(vec![
        polygon![(x: x0, y: y0), (x: x0 + w, y: y0), (x: x0 + w, y: y0 + h), (x: x0, y: y0 + h)],
    ])
}

/// A clean partition of a ~2 km square near Binzhou.
pub fn synthetic(
    cells: usize,
    seed: u64,
    densify: usize,
) -> (MultiPolygon<f64>, Vec<MultiPolygon<f64>>) {
    let parent = square(118.0, 37.3, 0.02, 0.016);
    let t = tile(
        &parent,
        cells,
        &SynthOptions {
            seed,
            densify,
            ..SynthOptions::default()
        },
    )
    .expect("tiling");
    (parent, t.cells)
}

pub fn lenient() -> ValidateOptions {
    ValidateOptions {
        min_area_m2: 0.0,
        ..ValidateOptions::default()
    }
}

pub fn check(
    cells: &[MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    options: &ValidateOptions,
) -> Report {
    let ids: Vec<String> = (0..cells.len()).map(|i| format!("g{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let cells: Vec<&MultiPolygon<f64>> = cells.iter().collect();
    validate(&cells, &ids, parent, options)
}

/// Cases per property test: `PROPTEST_CASES` when set (scripts/test raises it), else
/// `default` (quick enough for a developer's `cargo test`).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `from=…&to=…` a day either side of now: report windows relative to today, never
/// fixed calendar dates.
pub fn a_day_around_now() -> String {
    let now = chrono::Utc::now();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "from={}&to={}",
        at(now - chrono::Duration::days(1)),
        at(now + chrono::Duration::days(1))
    )
}

/// Zips the parts of Shapefile `shp` with these extensions into `zip` (python3's
/// zipfile, as a planner's tool would).
pub fn zip_shapefile_parts(shp: &std::path::Path, extensions: &[&str], zip: &std::path::Path) {
    let o = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(zip)
        .args(extensions.iter().map(|e| shp.with_extension(e)))
        .output()
        .expect("python3 zips");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
