//! `wangge import` / `export` on real files made here with `ogr2ogr` from the Binzhou
//! county boundaries in `data/`: a Shapefile in a CGCS2000 Gauss–Krüger zone with GBK
//! attributes (also zipped, without .cpg, without .prj), a GeoPackage and a KML.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wangge::domain::Layer;
use wangge::store::{AccessStore, SqliteStore, Store, Validity};

fn wangge(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("WANGGE_ACTOR", "test")
        .output()
        .expect("wangge runs")
}

fn ogr2ogr(args: &[&str]) {
    let o = Command::new("ogr2ogr")
        .args(args)
        .output()
        .expect("ogr2ogr runs (gdal-bin is installed by scripts/test)");
    assert!(
        o.status.success(),
        "ogr2ogr {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Zips a Shapefile's parts (python3's zipfile, as a planner's tool would).
fn zip_shapefile(shp: &str, zip: &str) {
    crate::helpers::zip_shapefile_parts(
        Path::new(shp),
        &["shp", "shx", "dbf", "prj", "cpg"],
        Path::new(zip),
    );
}

/// Synthetic townships, communities and grids inside the real counties, as GeoJSON.
struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/binzhou_371600_full.datav.geojson"
        );
        let db = dir.path().join("wangge.db");
        let o = wangge(
            &db,
            &[
                "synth",
                "--counties",
                data,
                "--coord-sys",
                "gcj02",
                "--townships",
                "1",
                "--communities",
                "2",
                "--grids",
                "4",
                "-o",
                dir.path().to_str().expect("utf-8 path"),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        Fixture { dir, db }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Counties as a Shapefile in CGCS2000 3-degree Gauss–Krüger zone 39 (EPSG:4527)
    /// with GBK (code page 936) attributes.
    fn gauss_kruger_gbk_shapefile(&self) -> String {
        let shp = self.path("counties_gk.shp");
        ogr2ogr(&[
            "-f",
            "ESRI Shapefile",
            "-t_srs",
            "EPSG:4527",
            "-lco",
            "ENCODING=CP936",
            "-select",
            "code,name",
            &shp,
            &self.path("counties.geojson"),
        ]);
        shp
    }

    async fn store(&self) -> SqliteStore {
        let s = SqliteStore::open(&self.db).await.expect("open");
        s.migrate().await.expect("migrate");
        s
    }
}

fn read_json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn first_coord(feature: &Value) -> (f64, f64) {
    let mut g = &feature["geometry"]["coordinates"];
    while g[0].is_array() {
        g = &g[0];
    }
    (g[0].as_f64().unwrap(), g[1].as_f64().unwrap())
}

#[tokio::test]
async fn a_gauss_kruger_shapefile_with_gbk_attributes_imports_names_and_lon_lat() {
    let f = Fixture::new();
    let shp = f.gauss_kruger_gbk_shapefile();
    assert!(
        std::fs::read_to_string(shp.replace(".shp", ".prj"))
            .unwrap()
            .contains("Gauss")
    );
    let o = wangge(&f.db, &["import", "regions", &shp, "--level", "county"]);
    assert!(o.status.success(), "{}", text(&o));
    let regions = f.store().await.regions(None).await.unwrap();
    let original = read_json(&f.path("counties.geojson"));
    let features = original["features"].as_array().unwrap();
    assert_eq!(regions.len(), features.len());
    for feature in features {
        let code = feature["properties"]["code"].as_str().unwrap();
        let r = regions
            .iter()
            .find(|r| r.code == code)
            .expect("county stored");
        assert_eq!(r.name, feature["properties"]["name"].as_str().unwrap());
        assert_eq!(r.parent_code.as_deref(), Some("3716"));
        // Through Gauss–Krüger metres and back: the same lon/lat to ~1 cm.
        let (x, y) = first_coord(feature);
        let stored = r.boundary.as_ref().unwrap();
        let near = stored
            .0
            .iter()
            .flat_map(|p| p.exterior().0.iter())
            .any(|c| (c.x - x).abs() < 1e-7 && (c.y - y).abs() < 1e-7);
        assert!(
            near,
            "county {code}: ({x}, {y}) not found after the round trip"
        );
    }
    assert!(regions.iter().any(|r| r.name == "滨城区"));
}

#[tokio::test]
async fn undeclared_gbk_is_an_error_until_the_encoding_is_given() {
    let f = Fixture::new();
    let shp = f.gauss_kruger_gbk_shapefile();
    std::fs::remove_file(shp.replace(".shp", ".cpg")).unwrap();
    let o = wangge(&f.db, &["import", "regions", &shp, "--level", "county"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not valid UTF-8") && err.contains("--encoding"),
        "{err}"
    );
    assert!(
        f.store().await.regions(None).await.unwrap().is_empty(),
        "nothing stored"
    );
    let o = wangge(
        &f.db,
        &[
            "import",
            "regions",
            &shp,
            "--level",
            "county",
            "--encoding",
            "GBK",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let regions = f.store().await.regions(None).await.unwrap();
    assert!(regions.iter().any(|r| r.name == "滨城区"), "{regions:?}");
}

/// `wangge validate` reads what `import` reads: a zipped GBK Shapefile in a
/// Gauss–Krüger zone validates (instead of "stream did not contain valid UTF-8") and the
/// report says which CRS and encoding it was read with.
#[tokio::test]
async fn validate_reads_a_zipped_gbk_gauss_kruger_shapefile_like_import() {
    let f = Fixture::new();
    let shp = f.path("grids_gk.shp");
    ogr2ogr(&[
        "-f",
        "ESRI Shapefile",
        "-t_srs",
        "EPSG:4527",
        "-lco",
        "ENCODING=CP936",
        &shp,
        &f.path("grids.geojson"),
    ]);
    let zip = f.path("grids_gk.zip");
    zip_shapefile(&shp, &zip);
    let o = wangge(&f.db, &["validate", &zip, "--json"]);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["stats"]["grids"], 66, "{report}");
    let source = &report["stats"]["source"];
    assert_eq!(source["driver"], "ESRI Shapefile", "{source}");
    assert!(
        source["source_crs"].as_str().unwrap().contains("4527"),
        "{source}"
    );
    assert!(
        source["encoding"].as_str().unwrap().contains("declared"),
        "{source}"
    );
    // Plain, with the encoding named, on stderr for people.
    let o = wangge(&f.db, &["validate", &shp, "--encoding", "GBK"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("coordinates from EPSG:4527"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn a_zipped_shapefile_imports_like_the_unzipped_one() {
    let f = Fixture::new();
    let shp = f.gauss_kruger_gbk_shapefile();
    let zip = f.path("counties.zip");
    zip_shapefile(&shp, &zip);
    let o = wangge(&f.db, &["import", "regions", &zip, "--level", "county"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(f.store().await.regions(None).await.unwrap().len(), 7);
}

#[tokio::test]
async fn a_file_without_crs_in_metres_is_rejected_with_the_likely_zone() {
    let f = Fixture::new();
    let shp = f.gauss_kruger_gbk_shapefile();
    std::fs::remove_file(shp.replace(".shp", ".prj")).unwrap();
    let o = wangge(&f.db, &["import", "regions", &shp, "--level", "county"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no coordinate system") && err.contains("EPSG:4527"),
        "{err}"
    );
    assert!(f.store().await.regions(None).await.unwrap().is_empty());
    // Naming the CRS fixes it.
    let o = wangge(
        &f.db,
        &[
            "import",
            "regions",
            &shp,
            "--level",
            "county",
            "--crs",
            "EPSG:4527",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[tokio::test]
async fn grids_from_kml_validate_dry_run_then_import_keeping_their_codes() {
    let f = Fixture::new();
    // Communities as a GeoPackage, grids as KML.
    let gpkg = f.path("communities.gpkg");
    ogr2ogr(&["-f", "GPKG", &gpkg, &f.path("communities.geojson")]);
    let kml = f.path("grids.kml");
    ogr2ogr(&["-f", "KML", &kml, &f.path("grids.geojson")]);
    let o = wangge(&f.db, &["import", "regions", &gpkg, "--level", "community"]);
    assert!(o.status.success(), "{}", text(&o));
    let grids = read_json(&f.path("grids.geojson"));
    let in_bincheng: Vec<&Value> = grids["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["properties"]["grid_id"]
                .as_str()
                .unwrap()
                .starts_with("371602")
        })
        .collect();
    let expected: Vec<String> = in_bincheng
        .iter()
        .map(|g| g["properties"]["grid_id"].as_str().unwrap().to_string())
        .collect();
    // Only Bincheng's grids: a KML of one county's grids.
    let kml_one = f.path("bincheng.kml");
    ogr2ogr(&[
        "-f",
        "KML",
        "-where",
        "grid_id LIKE '371602%'",
        &kml_one,
        &f.path("grids.geojson"),
    ]);

    let o = wangge(
        &f.db,
        &[
            "import",
            "grids",
            &kml_one,
            "--scope",
            "371602",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(report["valid"], Value::Bool(true), "{report}");
    assert_eq!(report["stored"], Value::Bool(false));
    assert_eq!(
        report["stats"]["features"].as_u64(),
        Some(expected.len() as u64)
    );
    assert!(report["stats"]["driver"].as_str().unwrap().contains("KML"));
    let store = f.store().await;
    assert!(
        store.plans(None, None).await.unwrap().is_empty(),
        "a dry run stores nothing"
    );

    let o = wangge(
        &f.db,
        &[
            "import",
            "grids",
            &kml_one,
            "--scope",
            "371602",
            "--effective",
            "2026-01-01",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plans = store.plans(None, None).await.unwrap();
    assert_eq!(plans.len(), 1);
    let mut codes: Vec<String> = store
        .plan_grids(plans[0].id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.code)
        .collect();
    codes.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(
        codes, expected,
        "never-used 15-digit codes arriving with the grids are kept"
    );

    // Through the lifecycle on the command line, then export what is current.
    let id = plans[0].id.to_string();
    let o = wangge(&f.db, &["plan", "submit", &id]);
    assert!(o.status.success(), "{}", text(&o));
    // The submitter does not approve their own plan, on the command line either.
    let o = wangge(&f.db, &["plan", "approve", &id]);
    assert!(!o.status.success());
    assert!(text(&o).contains("four-eyes"), "{}", text(&o));
    for args in [
        vec!["plan", "approve", &id, "--actor", "county.wang"],
        vec!["plan", "activate", &id],
    ] {
        let o = wangge(&f.db, &args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    // Each step is in the audit log under the plan's scope, as the service files it.
    let steps: Vec<(String, String, String)> = store
        .audit(&wangge::store::AuditQuery {
            under: Some("371602".into()),
            actor: None,
            after_id: None,
            limit: 100,
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.resource == format!("plans/{id}"))
        .map(|e| (e.action, e.actor, e.scope_code))
        .collect();
    let want = |a: &str, who: &str| (a.to_string(), who.to_string(), "371602".to_string());
    assert_eq!(
        steps,
        [
            want("plan_draft", "test"),
            want("plan_submit", "test"),
            want("plan_approve", "county.wang"),
            want("plan_activate", "test"),
        ]
    );
    assert_eq!(
        store
            .grids(Validity::Current, Some(Layer::Comprehensive), None)
            .await
            .unwrap()
            .len(),
        expected.len()
    );
    let out = f.path("current.gpkg");
    let o = wangge(&f.db, &["export", &out, "--as-of", "2026-02-01"]);
    assert!(o.status.success(), "{}", text(&o));
    let back = f.path("back.geojson");
    ogr2ogr(&["-f", "GeoJSON", &back, &out]);
    let exported = read_json(&back);
    assert_eq!(
        exported["features"].as_array().unwrap().len(),
        expected.len()
    );
    let o = wangge(
        &f.db,
        &["export", &f.path("before.gpkg"), "--as-of", "2025-12-31"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 features"));
    // Shapefile export declares UTF-8.
    let shp = f.path("grids_out.shp");
    let o = wangge(&f.db, &["export", &shp, "--under", "371602"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(f.path("grids_out.cpg"))
            .unwrap()
            .trim(),
        "UTF-8"
    );
}

#[tokio::test]
async fn a_rejected_import_stores_nothing() {
    let f = Fixture::new();
    let gpkg = f.path("communities.gpkg");
    ogr2ogr(&["-f", "GPKG", &gpkg, &f.path("communities.geojson")]);
    let o = wangge(&f.db, &["import", "regions", &gpkg, "--level", "community"]);
    assert!(o.status.success(), "{}", text(&o));
    // Two grids of one community overlapping: validation errors, nothing stored.
    let grids = read_json(&f.path("grids.geojson"));
    let mut feats: Vec<Value> = grids["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["properties"]["grid_id"]
                .as_str()
                .unwrap()
                .starts_with("371602001001")
        })
        .cloned()
        .collect();
    let copy = feats[0].clone();
    feats[1]["geometry"] = copy["geometry"].clone();
    let bad = f.path("bad.geojson");
    std::fs::write(
        &bad,
        serde_json::json!({"type": "FeatureCollection", "features": feats}).to_string(),
    )
    .unwrap();
    let o = wangge(&f.db, &["import", "grids", &bad, "--scope", "371602001001"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing stored"),
        "{}",
        text(&o)
    );
    let store = f.store().await;
    assert!(store.plans(None, None).await.unwrap().is_empty());
    // A point where a grid should be: a clear error naming the feature.
    let point = f.path("point.geojson");
    std::fs::write(&point, r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"grid_id":"x"},"geometry":{"type":"Point","coordinates":[118,37]}}]}"#).unwrap();
    let o = wangge(
        &f.db,
        &["import", "grids", &point, "--scope", "371602001001"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"x\"") && err.contains("point"), "{err}");
    assert!(store.plans(None, None).await.unwrap().is_empty());
}

#[test]
fn migrate_creates_the_embedded_store_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/wangge.db");
    for _ in 0..2 {
        let o = wangge(&db, &["migrate"]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("up to date"));
    }
    assert!(db.exists());
    let o = Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["migrate", "--database-url", "mysql://nowhere"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsupported database URL"));
}
