//! The store at city scale: importing 100 000 grids end to end (GeoPackage file → GDAL →
//! validation → plan → activation) into PostGIS and SQLite, and loading the current
//! partition from each into the engine: in the bench's warm process, and as the first
//! load of a fresh `wangge serve` (start to listening, median of five starts).
//!
//! PostGIS comes from the cluster `scripts/bench` starts (WANGGE_TEST_DATABASE_URL);
//! without it only SQLite is measured. `WANGGE_BENCH_GRIDS` changes the size.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use geo_types::{MultiPolygon, polygon};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wangge::domain::{Layer, Level};
use wangge::io::gdal_files::{self, ExportFormat, ImportOptions, OutFeature, OutValue};
use wangge::spatial::synth::{SynthOptions, tile};
use wangge::store::{PgStore, PlanStatus, RegionRecord, SqliteStore, Store};
use wangge::workflow::{live, plans};

const GRIDS_PER_COMMUNITY: usize = 100;

/// Communities as a block of 0.06° × 0.045° rectangles (≈ 5 km × 5 km), each tiled into
/// 100 grids of ~120 vertices, written to a GeoPackage like a planner's file.
fn dataset(n: usize, dir: &Path) -> (Vec<RegionRecord>, std::path::PathBuf, usize) {
    let communities = n.div_ceil(GRIDS_PER_COMMUNITY);
    let cols = (communities as f64).sqrt().ceil() as usize;
    let mut regions = Vec::new();
    let mut features = Vec::new();
    for k in 0..communities {
        let (i, j) = (k % cols, k / cols);
        let (x0, y0) = (117.0 + 0.06 * i as f64, 36.5 + 0.045 * j as f64);
        let rect = MultiPolygon(vec![polygon![
            (x: x0, y: y0), (x: x0 + 0.06, y: y0), (x: x0 + 0.06, y: y0 + 0.045), (x: x0, y: y0 + 0.045)
        ]]);
        let code = format!("371602{:03}{:03}", k / 100 + 1, k % 100 + 1);
        let cells = tile(
            &rect,
            GRIDS_PER_COMMUNITY.min(n - k * GRIDS_PER_COMMUNITY),
            &SynthOptions {
                seed: k as u64,
                points_per_cell: 6.0,
                densify: 11,
            },
        )
        .expect("synthetic community")
        .cells;
        for (s, cell) in cells.into_iter().enumerate() {
            features.push(OutFeature {
                attributes: vec![
                    (
                        "grid_id",
                        Some(OutValue::Text(format!("{code}{:03}", s + 1))),
                    ),
                    ("name", Some(OutValue::Text(format!("第{}网格", s + 1)))),
                    ("households", Some(OutValue::Integer(300))),
                ],
                boundary: cell,
            });
        }
        regions.push(RegionRecord {
            parent_code: Some(code[..9].to_string()),
            name: format!("社区{k}"),
            level: Level::Community,
            code,
            boundary: Some(rect),
        });
    }
    let path = dir.join("grids.gpkg");
    gdal_files::write_features(&path, ExportFormat::GeoPackage, "grids", &features)
        .expect("write gpkg");
    eprintln!(
        "dataset: {} grids, {:.0} vertices/grid, {} communities",
        features.len(),
        common::mean_vertices(
            &features
                .iter()
                .map(|f| f.boundary.clone())
                .collect::<Vec<_>>()
        ),
        regions.len()
    );
    (regions, path, features.len())
}

/// The whole import: file → grids → prepared plan → stored → approved → active.
async fn import(store: &dyn Store, file: &Path, phases: bool) {
    let t = Instant::now();
    let read = gdal_files::read_grids(file, &ImportOptions::default(), |_, _| {}).expect("read");
    let t_read = t.elapsed();
    let prepared = plans::prepare(store, "371602", Layer::Comprehensive, read.grids)
        .await
        .expect("prepare");
    assert!(prepared.validation.is_valid(), "synthetic plan is clean");
    let t_prepare = t.elapsed();
    let plan = store
        .create_plan(
            &wangge::store::NewPlan {
                scope_code: "371602".into(),
                layer: Layer::Comprehensive,
                title: "bench".into(),
                effective_date: Some("2026-01-01".parse().expect("date")),
                actor: "bench".into(),
            },
            &prepared.content,
            None,
        )
        .await
        .expect("store plan");
    let t_store = t.elapsed();
    for to in [PlanStatus::Submitted, PlanStatus::Approved] {
        plans::transition(store, plan.id, to, "bench", None, None)
            .await
            .expect("transition");
    }
    store
        .activate(plan.id, "bench", None)
        .await
        .expect("activate");
    if phases {
        eprintln!(
            "{}: read {:.1} s, prepare (validate, lineage, codes) {:.1} s, store plan {:.1} s, activate {:.1} s, total {:.1} s",
            store.backend(),
            t_read.as_secs_f64(),
            (t_prepare - t_read).as_secs_f64(),
            (t_store - t_prepare).as_secs_f64(),
            (t.elapsed() - t_store).as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
}

/// A store and the `DATABASE_URL` that opens it.
type Opened = (Arc<dyn Store>, String);

async fn fresh_postgis(n: u64) -> Option<Opened> {
    let template = std::env::var("WANGGE_TEST_DATABASE_URL").ok()?;
    let admin = sqlx::PgPool::connect(&template.replacen("/wangge_template", "/postgres", 1))
        .await
        .expect("admin connection");
    let name = format!("bench_{}_{n}", std::process::id());
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .expect("drop");
    sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE wangge_template"))
        .execute(&admin)
        .await
        .expect("create");
    let url = template.replacen("/wangge_template", &format!("/{name}"), 1);
    let store = PgStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    Some((Arc::new(store), url))
}

async fn fresh_sqlite(dir: &Path, n: u64) -> Opened {
    let path = dir.join(format!("bench_{n}.db"));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let store = SqliteStore::open(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    (Arc::new(store), format!("sqlite://{}", path.display()))
}

/// Seconds from starting `wangge serve` on `database_url` to its saying where it
/// listens: a fresh process's first load of the grids (it loads them before binding),
/// with its memory faulted in from nothing.
fn fresh_server_start(database_url: &str, dir: &Path) -> f64 {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wangge serve");
    let stdout = child.stdout.take().expect("stdout");
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("http://"));
    let seconds = t.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "wangge serve exited before listening");
    seconds
}

fn bench(c: &mut Criterion) {
    wangge::memory::keep_freed_pages_for_reuse();
    let n: usize = std::env::var("WANGGE_BENCH_GRIDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (regions, file, count) = dataset(n, dir.path());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if std::env::var_os("WANGGE_TEST_DATABASE_URL").is_none() {
        eprintln!("no PostGIS cluster (run scripts/bench): measuring SQLite only");
    }
    let mut counter = 0u64;
    let mut group = c.benchmark_group(format!("import_{n}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(1));
    for backend in ["postgis", "sqlite"] {
        let mut first = true;
        group.bench_function(backend, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    counter += 1;
                    total += rt.block_on(async {
                        let store = match backend {
                            "postgis" => fresh_postgis(counter).await,
                            _ => Some(fresh_sqlite(dir.path(), counter).await),
                        };
                        let Some((store, _)) = store else {
                            return Duration::ZERO;
                        };
                        store.upsert_regions(&regions).await.expect("regions");
                        let t = Instant::now();
                        import(store.as_ref(), &file, first).await;
                        first = false;
                        t.elapsed()
                    });
                }
                total
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("load_current_{n}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(1));
    for backend in ["postgis", "sqlite"] {
        let opened = rt.block_on(async {
            counter += 1;
            let (store, url) = match backend {
                "postgis" => fresh_postgis(counter).await,
                _ => Some(fresh_sqlite(dir.path(), counter).await),
            }?;
            store.upsert_regions(&regions).await.expect("regions");
            import(store.as_ref(), &file, false).await;
            Some((store, url))
        });
        let Some((store, url)) = opened else { continue };
        let mut starts: Vec<f64> = (0..5)
            .map(|_| fresh_server_start(&url, dir.path()))
            .collect();
        starts.sort_by(f64::total_cmp);
        eprintln!(
            "{backend}: a fresh `wangge serve` listens after {:.2} s (median of 5; {:.2}–{:.2} s)",
            starts[2], starts[0], starts[4]
        );
        let (_, timings) = rt
            .block_on(live::load_locator_timed(store.as_ref()))
            .expect("load");
        eprintln!(
            "{backend}: fetch and decode {:.2} s, build the index {:.2} s",
            timings.fetch.as_secs_f64(),
            timings.index.as_secs_f64()
        );
        group.bench_function(backend, |b| {
            b.iter(|| {
                let locator = rt
                    .block_on(live::load_locator(store.as_ref()))
                    .expect("load");
                assert_eq!(locator.grids().len(), count);
                locator
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
