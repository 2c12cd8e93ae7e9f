//! The `wangge` command as a user runs it: exit codes, output formats, errors.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn wangge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(args)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

const TWO_GRIDS: &str = r#"{"type":"FeatureCollection","features":[
 {"type":"Feature","properties":{"grid_id":"W"},"geometry":{"type":"Polygon","coordinates":[[[118.0,37.0],[118.01,37.0],[118.01,37.01],[118.0,37.01],[118.0,37.0]]]}},
 {"type":"Feature","properties":{"grid_id":"E"},"geometry":{"type":"Polygon","coordinates":[[[118.01,37.0],[118.02,37.0],[118.02,37.01],[118.01,37.01],[118.01,37.0]]]}}]}"#;
const PARENT: &str = r#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[118.0,37.0],[118.02,37.0],[118.02,37.01],[118.0,37.01],[118.0,37.0]]]}}"#;

#[test]
fn a_clean_plan_exits_0_with_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(dir.path(), "g.geojson", TWO_GRIDS);
    let parent = write(dir.path(), "p.geojson", PARENT);
    let o = wangge(&["validate", &grids, "--parent", &parent, "--json", "--stats"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).expect("exactly one JSON object");
    assert_eq!(v["valid"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    let stats: Value = serde_json::from_str(stderr(&o).trim()).expect("stats line");
    for key in ["parse_ms", "validate_ms", "grids", "vertices"] {
        assert!(stats.get(key).is_some(), "{key} missing in {stats}");
    }
    assert_eq!(stats["grids"], 2);
}

#[test]
fn problems_exit_1_and_are_written_as_geojson() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(
        dir.path(),
        "g.geojson",
        &TWO_GRIDS
            .replacen("[118.01,37.0],[118.02", "[118.0105,37.0],[118.02", 1)
            .replacen(
                "[118.01,37.01],[118.01,37.0]]",
                "[118.0105,37.01],[118.0105,37.0]]",
                1,
            ),
    );
    let parent = write(dir.path(), "p.geojson", PARENT);
    let out = dir.path().join("problems.geojson");
    let o = wangge(&[
        "validate",
        &grids,
        "--parent",
        &parent,
        "--json",
        "--problems-out",
        &out.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["valid"], false);
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "gap");
    assert_eq!(p["severity"], "error");
    assert_eq!(p["grids"], serde_json::json!(["W", "E"]));
    assert!(p["area_m2"].as_f64().unwrap() > 40_000.0);
    assert!((p["width_m"].as_f64().unwrap() - 44.0).abs() < 2.0);
    assert_eq!(p["geometry"]["type"], "Polygon");
    let fc: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(fc["features"][0]["properties"]["kind"], "gap");
}

#[test]
fn rejected_input_exits_2_naming_feature_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(
        dir.path(),
        "g.geojson",
        &TWO_GRIDS.replacen("[118.02,37.01]", "[118.02,97.01]", 1),
    );
    let o = wangge(&["validate", &grids]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains(
            r#"feature #1 (id "E"), polygon 0, ring 0, vertex 2: latitude 97.01 is outside -90..90"#
        ),
        "{e}"
    );
}

#[test]
fn a_human_summary_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(dir.path(), "g.geojson", TWO_GRIDS);
    let o = wangge(&["validate", &grids]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("valid: the grids tile their parents exactly"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn locate_prints_one_csv_line_per_point_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(dir.path(), "g.geojson", TWO_GRIDS);
    let pts = write(
        dir.path(),
        "p.csv",
        "lon,lat\n118.015,37.005\n118.005,37.005\n119,38\n118.01,37.005\n",
    );
    let o = wangge(&["locate", "--grids", &grids, "--points", &pts, "--stats"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "lon,lat,grid_id,flags");
    assert_eq!(lines[1], "118.015,37.005,E,");
    assert_eq!(lines[2], "118.005,37.005,W,");
    assert_eq!(lines[3], "119,38,,outside");
    // On the shared edge: east grid, flagged.
    assert_eq!(lines[4], "118.01,37.005,E,near_boundary");
    let stats: Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["points"], 4);
    // The rate is the count over the time it reports (not any positive number).
    let (rate, ms) = (
        stats["points_per_s"].as_f64().expect("points_per_s"),
        stats["locate_ms"].as_f64().expect("locate_ms"),
    );
    if ms > 0.0 {
        let expected = 4.0 / (ms / 1e3);
        assert!((rate - expected).abs() <= 1e-6 * expected, "{stats}");
    }
}

#[test]
fn locate_converts_gcj02_before_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(dir.path(), "g.geojson", TWO_GRIDS);
    // The true position is in W, 250 m west of the shared edge; its GCJ-02 form is
    // ~560 m further east, inside E.
    let (x, y) = wangge::spatial::crs::gcj02::wgs84_to_gcj02(118.0072, 37.005);
    assert!(x > 118.01);
    let p = format!("{x},{y}");
    let raw = wangge(&["locate", "--grids", &grids, "--point", &p]);
    assert!(stdout(&raw).lines().nth(1).unwrap().contains(",E,"));
    let conv = wangge(&[
        "locate",
        "--grids",
        &grids,
        "--point",
        &p,
        "--coord-sys",
        "gcj02",
    ]);
    assert!(
        stdout(&conv).lines().nth(1).unwrap().contains(",W,"),
        "{}",
        stdout(&conv)
    );
}

#[cfg(feature = "proj")]
#[test]
fn locate_accepts_a_gauss_kruger_crs_through_proj() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(dir.path(), "g.geojson", TWO_GRIDS);
    // 118.005E 37.005N in CGCS2000 / 3-degree Gauss-Kruger zone 40 (EPSG:4528).
    let gk = proj::Proj::new_known_crs("EPSG:4490", "EPSG:4528", None).unwrap();
    let (e, n) = gk.convert((118.005, 37.005)).unwrap();
    let o = wangge(&[
        "locate",
        "--grids",
        &grids,
        "--point",
        &format!("{e},{n}"),
        "--crs",
        "EPSG:4528",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["grid"]["id"], "W");
}

#[test]
fn synth_output_validates_clean_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cells.geojson").display().to_string();
    let o = wangge(&[
        "synth",
        "--rect",
        "118.0,37.0,118.05,37.04",
        "--cells",
        "200",
        "--densify",
        "4",
        "-o",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let parent = write(
        dir.path(),
        "p.geojson",
        r#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[118.0,37.0],[118.05,37.0],[118.05,37.04],[118.0,37.04],[118.0,37.0]]]}}"#,
    );
    let v = wangge(&["validate", &out, "--parent", &parent, "--min-area-m2", "0"]);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
}

/// The demo's input travels inside the binary: from an empty directory, with no
/// arguments, `wangge demo` builds, loads and locates (issue 19.7).
#[test]
fn the_demo_builds_validates_and_locates_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        Command::new(env!("CARGO_BIN_EXE_wangge"))
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .arg("demo")
            .output()
            .expect("runs")
    };
    let o = demo();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("grids tile their community"), "{out}");
    assert!(out.contains("loaded 402 regions and plan 1"), "{out}");
    assert!(dir.path().join("var/wangge.db").exists());
    // The second run finds the store loaded and locates from it.
    let again = stdout(&demo());
    assert!(!again.contains("loaded 402"), "{again}");
    assert!(again.contains("4019 current grids"), "{again}");
    // 滨城区 sample lands in a Bincheng grid (county code 371602).
    assert!(
        out.lines()
            .any(|l| l.starts_with("滨城区") && l.contains(" 371602")),
        "{out}"
    );
}

/// The offline commands refuse what they cannot do, saying what, with exit 2.
#[test]
fn locate_synth_and_export_refuse_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let grids = write(dir.path(), "g.geojson", TWO_GRIDS);
    let o = wangge(&["locate", "--grids", &grids, "--point", "500,37"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("500"), "{}", stderr(&o));
    let o = wangge(&["locate", "--grids", &grids, "--point", "east"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = wangge(&[
        "synth",
        "--rect",
        "nonsense",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("x.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["export", out.to_str().unwrap()])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("w.db").display()),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists(), "nothing written");
}
