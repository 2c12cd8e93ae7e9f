//! Dispatch under load, over loopback HTTP against the release server on PostGIS (the
//! cluster `scripts/bench` starts, with fsync on): case submissions per second with
//! 64 concurrent clients (and their p99 latency), the latency of submissions offered
//! at a fixed 2 000/s (`WANGGE_BENCH_RATE`, for `WANGGE_BENCH_RATE_SECS` = 30 s), and the
//! dispatcher's lists with a million cases stored. `WANGGE_BENCH_CASES` changes the million.
//!
//! The server is `wangge serve --demo` (the Binzhou demo: 4 019 grids, the demo matters
//! list and departments), started on a fresh database.

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use geo::InteriorPoint;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wangge::domain::{Grant, UserRole};
use wangge::store::{PgStore, Store, Validity};

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(url: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env("WANGGE_SWEEP_SECS", "3600")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wangge serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("server exited").expect("stdout");
        if let Some(at) = line.find("http://") {
            break line[at..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server(child, base)
}

async fn fresh_database() -> Option<(String, Arc<dyn Store>)> {
    let template = std::env::var("WANGGE_TEST_DATABASE_URL").ok()?;
    let admin = sqlx::PgPool::connect(&template.replacen("/wangge_template", "/postgres", 1))
        .await
        .expect("admin connection");
    let name = format!("bench_dispatch_{}", std::process::id());
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
    Some((url, Arc::new(store)))
}

async fn token(store: &dyn Store, name: &str, role: UserRole, scope: &str) -> String {
    store.create_user(name, None).await.expect("user");
    store
        .grant(
            name,
            &Grant {
                role,
                scope: scope.into(),
            },
        )
        .await
        .expect("grant");
    let t = wangge::auth::issue_token(name, "bench", chrono::Duration::hours(4));
    store.store_token(&t.record).await.expect("token");
    t.secret
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Offers `rate` submissions a second for `seconds` and prints what was answered: the
/// rate achieved, how many were not a 201 (by status, or the client's error), and the
/// latency percentiles.
async fn offered_load(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    points: &[(f64, f64)],
    rate: f64,
    seconds: f64,
) {
    let total = (rate * seconds) as u32;
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2000);
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(total as usize);
    for k in 0..total {
        let due = start + every * k;
        tokio::time::sleep_until(due).await;
        let (lon, lat) = points[rng.random_range(0..points.len())];
        let request = http
            .post(format!("{base}/v1/cases"))
            .bearer_auth(token)
            .json(&json!({"lon": lon, "lat": lat, "matter": "WG-005", "description": format!("offered {k}")}));
        sent.push(tokio::spawn(async move {
            let outcome = match request.send().await {
                Ok(r) if r.status() == 201 => None,
                Ok(r) => Some(r.status().as_u16().to_string()),
                Err(e) if e.is_timeout() => Some("timeout".to_string()),
                Err(e) if e.is_connect() => Some("connect error".to_string()),
                Err(_) => Some("other error".to_string()),
            };
            (outcome, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(sent.len());
    let mut refused: std::collections::BTreeMap<String, usize> = Default::default();
    for task in sent {
        let (outcome, latency) = task.await.expect("submission task");
        if let Some(what) = outcome {
            *refused.entry(what).or_default() += 1;
        }
        latencies.push(latency);
    }
    let failed: usize = refused.values().sum();
    let why: Vec<String> = refused
        .iter()
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    eprintln!(
        "offered {rate:.0} submissions/s for {seconds:.0} s: {} answered in {elapsed:.1} s \
         ({:.0}/s), {failed} not 201 ({}); latency from the scheduled send: p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        why.join(", "),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |l| l.as_secs_f64() * 1e3),
    );
}

/// A million cases over the demo's grids: 85 % closed, the rest reported, assigned or
/// acknowledged with deadlines from a week ago to a week ahead.
async fn fill(url: &str, n: i64) {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let t = Instant::now();
    sqlx::raw_sql(&format!(
        "WITH g AS (SELECT array_agg(code ORDER BY code) AS codes FROM grid_versions WHERE valid_to IS NULL),
              d AS (SELECT array_agg(code ORDER BY code) AS codes FROM departments)
         INSERT INTO cases (state, source, matter_code, description, photos, lon, lat, coord_sys,
             grid_code, community_code, township_code, county_code, city_code, near_boundary,
             outside, centre_code, department_code, deadline, assigned_at, reported_at, updated_at)
         SELECT s.state, 'resident', 'WG-001', 'bulk case ' || i, '[]'::jsonb, 118.0, 37.4, 'wgs84',
             gc, substr(gc, 1, 12), substr(gc, 1, 9), substr(gc, 1, 6), substr(gc, 1, 4), false,
             false, substr(gc, 1, 9),
             CASE WHEN s.state IN ('assigned', 'acknowledged') THEN d.codes[1 + (i % array_length(d.codes, 1))] END,
             CASE WHEN s.state IN ('assigned', 'acknowledged') THEN now_ms + ((i % 14) - 7) * 86400000 END,
             CASE WHEN s.state IN ('assigned', 'acknowledged') THEN now_ms - 86400000 END,
             now_ms - (i % 365) * 86400000, now_ms
         FROM generate_series(1::bigint, {n}::bigint) AS i, g, d,
              LATERAL (SELECT g.codes[1 + (i * 7919 % array_length(g.codes, 1))] AS gc,
                              (extract(epoch from now()) * 1000)::bigint AS now_ms) x,
              LATERAL (SELECT CASE WHEN i % 20 < 17 THEN 'closed' WHEN i % 20 = 17 THEN 'reported'
                                   WHEN i % 20 = 18 THEN 'assigned' ELSE 'acknowledged' END AS state) s;
         ANALYZE cases;"
    ))
    .execute(&pool)
    .await
    .expect("bulk cases");
    eprintln!("stored {n} cases in {:.1} s", t.elapsed().as_secs_f64());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some((url, store)) = rt.block_on(fresh_database()) else {
        eprintln!("no PostGIS cluster: run scripts/bench --bench dispatch");
        return;
    };
    let server = start(&url);
    let base = server.1.clone();
    let (hotline, township, county, points, township_code, county_code) = rt.block_on(async {
        let hotline = token(store.as_ref(), "hotline", UserRole::Dispatcher, "3716").await;
        let grids = store
            .grids(Validity::Current, None, None)
            .await
            .expect("grids");
        let points: Vec<(f64, f64)> = grids
            .iter()
            .filter_map(|g| g.boundary.interior_point())
            .map(|p| (p.x(), p.y()))
            .collect();
        let township_code = grids[grids.len() / 2].code[..9].to_string();
        let county_code = township_code[..6].to_string();
        let township = token(
            store.as_ref(),
            "disp.t",
            UserRole::Dispatcher,
            &township_code,
        )
        .await;
        let county = token(store.as_ref(), "disp.c", UserRole::Dispatcher, &county_code).await;
        (
            hotline,
            township,
            county,
            points,
            township_code,
            county_code,
        )
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");

    // Submissions: 2 000 per iteration, 64 in flight.
    const BATCH: usize = 2000;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let mut group = c.benchmark_group("dispatch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(criterion::Throughput::Elements(BATCH as u64));
    group.bench_function("submit_cases_c64", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for it in 0..iters {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(it);
                    let bodies: Vec<_> = (0..BATCH)
                        .map(|k| {
                            let (lon, lat) = points[rng.random_range(0..points.len())];
                            json!({"lon": lon, "lat": lat, "matter": "WG-005", "description": format!("bench {it}-{k}")})
                        })
                        .collect();
                    let t = Instant::now();
                    let lat: Vec<Duration> = futures_util::stream::iter(bodies)
                        .map(|body| {
                            let (http, base, hotline) = (&http, &base, &hotline);
                            async move {
                                let t = Instant::now();
                                let r = http
                                    .post(format!("{base}/v1/cases"))
                                    .bearer_auth(hotline)
                                    .json(&body)
                                    .send()
                                    .await
                                    .expect("submit");
                                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
                                t.elapsed()
                            }
                        })
                        .buffer_unordered(64)
                        .collect()
                        .await;
                    total += t.elapsed();
                    latencies.lock().expect("latencies").extend(lat);
                }
                total
            })
        })
    });
    {
        let mut l = latencies.lock().expect("latencies");
        l.sort();
        if !l.is_empty() {
            eprintln!(
                "submission latency over {} requests: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.len(),
                percentile(&l, 0.5).as_secs_f64() * 1e3,
                percentile(&l, 0.99).as_secs_f64() * 1e3,
                l[l.len() - 1].as_secs_f64() * 1e3
            );
        }
    }
    group.finish();

    // Submissions offered at a fixed rate (open loop): each is sent on its schedule
    // whatever the others do, and its latency counts from that scheduled time, so a stall
    // counts against every submission it delays (no coordinated omission).
    let rate: f64 = env_number("WANGGE_BENCH_RATE", 2000.0);
    let seconds: f64 = env_number("WANGGE_BENCH_RATE_SECS", 30.0);
    rt.block_on(async {
        // A server that has been up a while reuses its WAL segments after each checkpoint;
        // a fresh cluster instead creates and zero-fills a new 16 MB segment every few
        // seconds at this rate, and every commit waits ~50-100 ms for it (periodic spikes
        // that a running system does not have). The checkpoint makes the segments the
        // phase above wrote reusable.
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::raw_sql("CHECKPOINT")
            .execute(&pool)
            .await
            .expect("checkpoint");
        offered_load(&http, &base, &hotline, &points, rate, seconds).await
    });

    // The dispatcher's lists with a million cases.
    let n: i64 = std::env::var("WANGGE_BENCH_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    rt.block_on(fill(&url, n));
    let mut group = c.benchmark_group(format!("lists_{n}_cases"));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    let lists = [
        (
            "township_new_cases",
            township.clone(),
            "/v1/cases?state=reported&limit=100".to_string(),
        ),
        (
            "township_overdue",
            township.clone(),
            format!("/v1/centres/{township_code}/overdue?limit=100"),
        ),
        (
            "township_due_soon",
            township.clone(),
            format!("/v1/centres/{township_code}/due-soon?limit=100"),
        ),
        (
            "county_overdue",
            county.clone(),
            format!("/v1/centres/{county_code}/overdue?limit=100"),
        ),
        (
            "county_assigned",
            county.clone(),
            "/v1/cases?state=assigned,acknowledged&limit=100".to_string(),
        ),
        (
            "city_new_cases",
            hotline.clone(),
            "/v1/cases?state=reported&limit=100".to_string(),
        ),
    ];
    for (name, token, path) in lists {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = http
                        .get(format!("{base}{path}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("list");
                    assert_eq!(r.status(), 200);
                    r.bytes().await.expect("body").len()
                })
            })
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
