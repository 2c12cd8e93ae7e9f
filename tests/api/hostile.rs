//! The service as an attacker meets it: hostile files uploaded as plans, oversized and
//! repeated public input, password guessing, streams that outlive their token, forged
//! proxy headers and floods of past-date reads. Each refusal is checked for its
//! problem type, and for what did not happen (nothing stored, nothing fetched).

use crate::backends::Backend;
use crate::service::{Server, account, client, get, logout, second_plan_geojson, seeded, user};
use crate::store_contract::COMMUNITY;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wangge::domain::UserRole;

fn hostile(name: &str) -> String {
    std::fs::read_to_string(crate::helpers::fixture(&format!("hostile/{name}")))
        .expect("hostile fixture")
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    for (name, bytes) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(bytes.len() > u32::MAX as usize / 2);
        w.start_file(*name, options).expect("zip entry");
        w.write_all(bytes).expect("zip write");
    }
    w.finish().expect("zip finish");
    out.into_inner()
}

/// A listener on loopback that counts every connection made to it.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, count)
}

async fn upload_bytes(
    url: &str,
    token: &str,
    file_name: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("scope", COMMUNITY.to_string())
        .text("title", "hostile")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string()),
        );
    let resp = client()
        .post(format!("{url}/v1/plans"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn ogr(args: &[&str]) {
    let out = std::process::Command::new("ogr2ogr")
        .args(args)
        .output()
        .expect("ogr2ogr (Debian gdal-bin, installed by scripts/test)");
    assert!(
        out.status.success(),
        "ogr2ogr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ogrinfo_sql(file: &Path, sql: &str) {
    let out = std::process::Command::new("ogrinfo")
        .arg(file)
        .args(["-sql", sql])
        .output()
        .expect("ogrinfo");
    assert!(
        out.status.success(),
        "ogrinfo {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The plan's grids converted by ogr2ogr into `dir/grids.<ext>` with `driver`.
fn plan_file(dir: &Path, driver: &str, ext: &str) -> std::path::PathBuf {
    let src = dir.join("grids.geojson");
    std::fs::write(&src, second_plan_geojson()).expect("write");
    let out = dir.join(format!("grids.{ext}"));
    let _ = std::fs::remove_file(&out);
    ogr(&[
        "-f",
        driver,
        out.to_str().unwrap(),
        src.to_str().unwrap(),
        "-nln",
        "grids",
    ]);
    out
}

/// A GeoPackage of the plan's grids with a view and a custom trigger added.
fn geopackage_with_view_and_trigger(dir: &Path) -> Vec<u8> {
    let gpkg = plan_file(dir, "GPKG", "gpkg");
    ogrinfo_sql(&gpkg, "CREATE VIEW leak AS SELECT * FROM grids");
    ogrinfo_sql(
        &gpkg,
        "CREATE TRIGGER evil AFTER INSERT ON grids BEGIN SELECT 1; END",
    );
    std::fs::read(&gpkg).expect("read gpkg")
}

/// A GeoPackage of the plan's grids with a SpatiaLite `VirtualText` table over `target`
/// slipped into its schema and listed as a layer (the way to make SQLite read any file).
async fn geopackage_with_virtual_text(dir: &Path, target: &str) -> Vec<u8> {
    use sqlx::ConnectOptions;
    let gpkg = plan_file(dir, "GPKG", "gpkg");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&gpkg)
        .connect()
        .await
        .expect("open gpkg");
    let create = format!(
        "CREATE VIRTUAL TABLE a USING VirtualText('{target}', 'UTF-8', 0, POINT, NONE, ',')"
    );
    for sql in [
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES ('a', 'attributes', 'a', 0)".to_string(),
        "PRAGMA writable_schema = ON".to_string(),
        format!("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('table', 'a', 'a', 0, '{}')", create.replace('\'', "''")),
        "PRAGMA writable_schema = OFF".to_string(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.expect("hostile schema");
    }
    drop(conn);
    std::fs::read(&gpkg).expect("read gpkg")
}

/// A file of one grid of the community with this outer ring.
fn one_grid(ring: Vec<[f64; 2]>) -> Vec<u8> {
    json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"grid_id": "NW", "community": COMMUNITY},
        "geometry": {"type": "Polygon", "coordinates": [ring]}}]})
    .to_string()
    .into_bytes()
}

/// One grid whose boundary is the star polygon {n / (n/2 - 1)}: O(n²) self-crossings.
fn star_polygon(n: usize) -> Vec<u8> {
    let ring: Vec<[f64; 2]> = (0..=n)
        .map(|i| {
            let a = std::f64::consts::TAU * ((i % n) * (n / 2 - 1)) as f64 / n as f64;
            [118.01 + 0.004 * a.cos(), 37.31 + 0.004 * a.sin()]
        })
        .collect();
    one_grid(ring)
}

/// One grid whose boundary zig-zags through `n` vertices.
fn grid_with_vertices(n: usize) -> Vec<u8> {
    let ring: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            let r = if i % 2 == 0 { 0.004 } else { 0.0039 };
            [118.01 + r * a.cos(), 37.31 + r * a.sin()]
        })
        .chain(std::iter::once([118.014, 37.31]))
        .collect();
    one_grid(ring)
}

/// A zipped Shapefile of the plan's grids whose `.dbf` header claims 10⁹ records.
fn shapefile_claiming_a_billion_records(dir: &Path) -> Vec<u8> {
    plan_file(dir, "ESRI Shapefile", "shp");
    let mut dbf = std::fs::read(dir.join("grids.dbf")).expect("dbf");
    dbf[4..8].copy_from_slice(&1_000_000_000u32.to_le_bytes());
    let part = |ext: &str| std::fs::read(dir.join(format!("grids.{ext}"))).expect("part");
    zip_of(&[
        ("grids.shp", &part("shp")),
        ("grids.shx", &part("shx")),
        ("grids.dbf", &dbf),
        ("grids.prj", &part("prj")),
    ])
}

pub async fn hostile_files_are_refused_and_nothing_is_read_stored_or_fetched(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    account(
        store,
        "victim",
        Some(&wangge::auth::hash_password("a long password").unwrap()),
        UserRole::Dispatcher,
        "371602",
    )
    .await;
    let planner = user(store, "li", UserRole::Planner, "371602001").await;
    let plans_before = store.plans(None, None).await.unwrap().len();
    let s = Server::start(&b.url, &[("WANGGE_UPLOAD_UNPACKED_LIMIT_BYTES", "1000000")]);
    let (port, connections) = counting_listener();
    let dir = tempfile::tempdir().unwrap();

    // The store's own file (SQLite), or any local file the server can read.
    let target = b
        .url
        .strip_prefix("sqlite://")
        .map(str::to_string)
        .unwrap_or_else(|| "/etc/passwd".into());
    let store_vrt = hostile("store.vrt").replace("{TARGET}", &target);
    let curl_vrt = hostile("vsicurl.vrt").replace("{PORT}", &port.to_string());
    let bomb = zip_of(&[("grids.geojson", &vec![0u8; 64 << 20])]);
    assert!(bomb.len() < 1 << 20, "the bomb is small packed");
    let corpus: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "VRT naming the store",
            "grids.vrt",
            store_vrt.clone().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "VRT reading a URL",
            "grids.vrt",
            curl_vrt.clone().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "VRT named .geojson",
            "grids.geojson",
            store_vrt.clone().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "zipped VRT",
            "grids.zip",
            zip_of(&[("grids.vrt", store_vrt.as_bytes())]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "zipped VRT named .geojson",
            "grids.zip",
            zip_of(&[("grids.geojson", curl_vrt.as_bytes())]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "zip bomb",
            "grids.zip",
            bomb,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
        ),
        (
            "zip with ../",
            "grids.zip",
            zip_of(&[("../../grids.geojson", b"{}")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "KML with an external entity",
            "grids.kml",
            hostile("xxe.kml").into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "KML billion laughs",
            "grids.kml",
            hostile("billion_laughs.kml").into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "GeoPackage with a view and a trigger",
            "grids.gpkg",
            geopackage_with_view_and_trigger(dir.path()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "Shapefile claiming a billion records",
            "grids.zip",
            shapefile_claiming_a_billion_records(dir.path()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
        (
            "GeoPackage with a VirtualText table over /etc/passwd",
            "grids.gpkg",
            geopackage_with_virtual_text(dir.path(), "/etc/passwd").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-format",
        ),
    ];
    for (what, name, bytes, status, kind) in corpus {
        let (st, problem) = upload_bytes(&s.url, &planner, name, bytes).await;
        assert_eq!(st, status, "{what}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:wangge:problem:{kind}"),
            "{what}: {problem}"
        );
        let text = problem.to_string();
        for leak in ["argon2", "victim", "/tmp", "root:", &target] {
            assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
        }
    }
    // The zip entry that escapes is named; a view is named.
    let (_, p) = upload_bytes(
        &s.url,
        &planner,
        "g.zip",
        zip_of(&[("../../grids.geojson", b"{}")]),
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("../../grids.geojson"),
        "{p}"
    );
    let (_, p) = upload_bytes(
        &s.url,
        &planner,
        "g.gpkg",
        geopackage_with_view_and_trigger(dir.path()),
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("leak"), "{p}");

    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no request left the server"
    );
    assert_eq!(
        store.plans(None, None).await.unwrap().len(),
        plans_before,
        "nothing stored"
    );

    // The formats planners use still upload: GeoJSON, and the same as a GeoPackage.
    let (st, plan) = upload_bytes(
        &s.url,
        &planner,
        "draft.geojson",
        second_plan_geojson().into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
    let gpkg = plan_file(dir.path(), "GPKG", "gpkg");
    let (st, plan) = upload_bytes(
        &s.url,
        &planner,
        "clean.gpkg",
        std::fs::read(&gpkg).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
}

pub async fn a_reader_that_crashes_or_overruns_fails_its_upload_and_the_server_lives(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let planner = user(store, "li", UserRole::Planner, "371602001").await;
    let plans_before = store.plans(None, None).await.unwrap().len();
    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_UPLOAD_READER_MEMORY_MB", "512"),
            ("WANGGE_UPLOAD_READER_CPU_SECS", "5"),
        ],
    );
    // Debug builds' test hooks: the reader aborts, eats memory, or spins.
    for (hook, reason) in [
        ("WANGGE-TEST-CRASH", "crashed"),
        ("WANGGE-TEST-MEMORY", "memory"),
        ("WANGGE-TEST-SPIN", "time limit"),
    ] {
        let started = Instant::now();
        let (st, p) =
            upload_bytes(&s.url, &planner, "grids.geojson", hook.as_bytes().to_vec()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{hook}: {p}");
        assert_eq!(
            p["type"], "urn:wangge:problem:unreadable-file",
            "{hook}: {p}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains(reason),
            "{hook}: {p}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{hook} was stopped"
        );
        let (st, _) = get(&format!("{}/healthz", s.url), None).await;
        assert_eq!(st, StatusCode::OK, "the server answers after {hook}");
    }
    // Whatever a format library is tricked into opening, the kernel refuses files
    // outside the upload (Landlock): the server's own store, or any system file.
    let store_file = b
        .url
        .strip_prefix("sqlite://")
        .unwrap_or("/etc/hostname")
        .to_string();
    for target in ["/etc/passwd", store_file.as_str()] {
        let (st, p) = upload_bytes(
            &s.url,
            &planner,
            "grids.geojson",
            format!("WANGGE-TEST-READ:{target}").into_bytes(),
        )
        .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("permission denied"),
            "reading {target}: {p}"
        );
    }
    // A star polygon of 4 001 vertices crosses itself millions of times: its cost is
    // paid in the reader, under its CPU limit, and the server's checker stays free.
    let started = Instant::now();
    let (st, p) = upload_bytes(&s.url, &planner, "star.geojson", star_polygon(4001)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["type"], "urn:wangge:problem:unreadable-file", "{p}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // A boundary of more vertices than a grid may have is refused before any check.
    let (st, p) = upload_bytes(&s.url, &planner, "g.geojson", grid_with_vertices(25_000)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("25001 vertices"),
        "{p}"
    );
    assert_eq!(store.plans(None, None).await.unwrap().len(), plans_before);
    let (st, plan) = upload_bytes(
        &s.url,
        &planner,
        "draft.geojson",
        second_plan_geojson().into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
}

fn report(address: &str, name: &str) -> Value {
    json!({"lon": 118.015, "lat": 37.315, "description": "路灯不亮", "address": address,
        "contact": {"name": name, "phone": "13800000000"}})
}

pub async fn public_input_is_bounded_and_limited_before_it_is_read(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let dispatcher = user(store, "disp", UserRole::Dispatcher, "371602").await;
    let planner = user(store, "zhou", UserRole::Planner, "371602002").await;
    let s = Server::start(&b.url, &[("WANGGE_PUBLIC_REPORTS_PER_MINUTE", "3")]);
    let post = |body: Vec<u8>, path: &'static str, content_type: &'static str| {
        let url = format!("{}{path}", s.url);
        async move {
            let resp = client()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("post");
            let st = resp.status();
            let retry = resp.headers().get("retry-after").cloned();
            (st, resp.json::<Value>().await.unwrap_or(Value::Null), retry)
        }
    };
    // Each field has a length; the problem names it.
    let (st, p, _) = post(
        report(&"地".repeat(300), "张").to_string().into_bytes(),
        "/v1/public/reports",
        "application/json",
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("address"), "{p}");
    let (st, p, _) = post(
        format!(
            "service_code=WG-001&lat=37.315&long=118.015&description=x&first_name={}",
            "a".repeat(100)
        )
        .into_bytes(),
        "/open311/v2/requests.json",
        "application/x-www-form-urlencoded",
    )
    .await;
    assert!(st.is_client_error(), "{p}");
    assert!(
        p[0]["description"]
            .as_str()
            .unwrap()
            .contains("contact.name"),
        "{p}"
    );
    // Larger than the public body limit: refused unread.
    let huge = report(&"x".repeat(100_000), "张").to_string().into_bytes();
    let (st, _, _) = post(huge.clone(), "/v1/public/reports", "application/json").await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // The report limit (3 a minute) is checked before the body: the 4th submission is
    // refused as rate-limited, not as too large.
    let (st, p, _) = post(
        report("滨州", "张").to_string().into_bytes(),
        "/v1/public/reports",
        "application/json",
    )
    .await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "three counted already: {p}"
    );
    let (st, p, retry) = post(huge, "/v1/public/reports", "application/json").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert!(retry.is_some(), "429 says when to retry");

    // Open311 id lists: repeats collapse, at most 100 distinct.
    let many_same = vec!["1"; 5000].join(",");
    let (st, list) = get(
        &format!(
            "{}/open311/v2/requests.json?service_request_id={many_same}",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert!(list.as_array().unwrap().len() <= 1);
    let distinct: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    let (st, p) = get(
        &format!(
            "{}/open311/v2/requests.json?service_request_id={}",
            s.url,
            distinct.join(",")
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    let (st, list) = get(
        &format!(
            "{}/open311/v2/requests.json?page={}&page_size=1000",
            s.url,
            i64::MAX
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list, json!([]));
    let (st, list) = get(
        &format!(
            "{}/open311/v2/requests.json?page=99999999999999999999999999",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "page numbers saturate: {list}");
    assert_eq!(list, json!([]));
    // axum's own rejections are problem documents too (Open311: its error list).
    let resp = client()
        .get(format!(
            "{}/v1/public/reports/99999999999999999999999",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (st, e) = get(
        &format!(
            "{}/open311/v2/requests.json?start_date=99999-01-01T00:00:00Z",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e[0]["code"], 400, "{e}");

    // Plan uploads are authorised before the body is read: the server answers while
    // 99 % of a declared 100 MB body has not even been sent.
    for (token, expected) in [
        (None, 401),
        (Some(dispatcher.clone()), 403),
        (Some(planner.clone()), 403),
    ] {
        let url = s.url.clone();
        let status =
            tokio::task::spawn_blocking(move || answer_before_body(&url, token.as_deref()))
                .await
                .unwrap();
        assert_eq!(status, Some(expected), "refused before the file was read");
    }
}

/// Sends the head of a multipart upload declaring 100 MB (the scope field and the start
/// of the file), then waits up to 10 s for an answer without sending more. The status
/// line's code, or `None` if the server waited for the body.
fn answer_before_body(url: &str, token: Option<&str>) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let boundary = "wanggeboundary";
    let start = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"scope\"\r\n\r\n{COMMUNITY}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"g.geojson\"\r\n\r\n{{"
    );
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /v1/plans HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: 100000000\r\n\r\n{start}"
    );
    conn.write_all(head.as_bytes()).ok()?;
    conn.write_all(&vec![b' '; 64 << 10]).ok()?;
    let mut answer = [0u8; 12];
    conn.read_exact(&mut answer).ok()?;
    std::str::from_utf8(&answer[9..12]).ok()?.parse().ok()
}

pub async fn logins_are_throttled_audited_and_unknown_names_cost_the_same(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let hash = wangge::auth::hash_password("correct horse battery").unwrap();
    account(store, "zhang", Some(&hash), UserRole::Dispatcher, "371602").await;
    let auditor = user(store, "audit", UserRole::Auditor, "3716").await;
    let login = |url: String, name: &'static str, password: &'static str| async move {
        let resp = client()
            .post(format!("{url}/v1/auth/login"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .await
            .expect("login");
        let st = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        (st, retry, resp.json::<Value>().await.unwrap_or(Value::Null))
    };

    // Timing: a name that is no account costs a password check too.
    let s = Server::start(&b.url, &[("WANGGE_LOGIN_FREE_FAILURES", "1000")]);
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        assert_eq!(
            login(s.url.clone(), "zhang", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
        known.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            login(s.url.clone(), "nobody", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
        unknown.push(t.elapsed());
    }
    let (known, unknown) = (median(known), median(unknown));
    assert!(
        unknown * 3 > known,
        "an unknown name answers in {unknown:?}, a known one in {known:?}"
    );
    drop(s);

    // Throttling: 3 free failures, then waits; a correct password during a wait is
    // refused too, and accepted once the wait is over.
    let s = Server::start(&b.url, &[("WANGGE_LOGIN_FREE_FAILURES", "3")]);
    for _ in 0..3 {
        assert_eq!(
            login(s.url.clone(), "zhang", "guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (st, retry, p) = login(s.url.clone(), "zhang", "correct horse battery").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert_eq!(p["type"], "urn:wangge:problem:login-throttled");
    let wait = retry.expect("Retry-After");
    // A second refused attempt at once: refusals are audited once a minute, not each.
    assert_eq!(
        login(s.url.clone(), "zhang", "guess").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!((1..=900).contains(&wait));
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(200)).await;
    let (st, _, answer) = login(s.url.clone(), "zhang", "correct horse battery").await;
    assert_eq!(st, StatusCode::OK, "{answer}");
    let token = answer["token"].as_str().unwrap().to_string();
    assert_eq!(logout(&s.url, &token).await, StatusCode::NO_CONTENT);

    // Every login, failure and logout is in the audit log the city's auditor reads.
    let (st, log) = get(&format!("{}/v1/audit?limit=1000", s.url), Some(&auditor)).await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let count = |action: &str, actor: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["actor"] == actor)
            .count()
    };
    assert_eq!(count("login", "zhang"), 1, "{log}");
    assert_eq!(count("login_throttled", "zhang"), 1, "{log}");
    assert_eq!(count("logout", "zhang"), 1, "{log}");
    assert!(count("login_failed", "zhang") >= 10, "{log}");
    assert!(count("login_failed", "nobody") >= 7, "{log}");
}

pub async fn streams_end_with_their_token_and_are_capped_per_account(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let token = user(store, "disp", UserRole::Dispatcher, "371602").await;
    let s = Server::start(&b.url, &[("WANGGE_MAX_STREAMS_PER_ACCOUNT", "2")]);
    let open = || {
        client()
            .get(format!("{}/v1/cases/stream", s.url))
            .bearer_auth(&token)
            .send()
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open().await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let p: Value = third.json().await.unwrap();
    assert_eq!(p["type"], "urn:wangge:problem:too-many-streams");

    assert_eq!(logout(&s.url, &token).await, StatusCode::NO_CONTENT);
    // Both streams end within the token cache's lifetime (5 s) of the logout.
    for mut stream in [first, second] {
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "the stream ended after the logout");
    }
}

pub async fn forwarded_addresses_count_only_from_trusted_proxies(b: Backend) {
    seeded(b.store.as_ref()).await;
    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_TRUSTED_PROXIES", "[127.0.0.1]"),
            ("WANGGE_PUBLIC_RATE_PER_MINUTE", "2"),
        ],
    );
    let card = |forwarded: &'static str| {
        client()
            .get(format!(
                "{}/v1/public/grids/{}",
                s.url,
                crate::store_contract::code(1)
            ))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    // The right-most address the proxy added is the client: a forged left-most entry
    // changes nothing.
    for forged in ["1.1.1.1, 198.51.100.7", "2.2.2.2, 198.51.100.7"] {
        assert_eq!(card(forged).await.unwrap().status(), StatusCode::OK);
    }
    let limited = card("3.3.3.3, 198.51.100.7").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    // Another client behind the same proxy has its own allowance.
    assert_eq!(card("198.51.100.8").await.unwrap().status(), StatusCode::OK);
}

pub async fn ogc_pages_and_tiles_are_limited_per_address_by_their_cost(b: Backend) {
    seeded(b.store.as_ref()).await;
    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_OGC_RATE_PER_MINUTE", "150"),
            ("WANGGE_TILE_RATE_PER_MINUTE", "3"),
        ],
    );
    let items = |limit: u32| format!("{}/ogc/collections/grids/items?limit={limit}", s.url);
    // A page of 10 000 costs 101 units of 150: the first is served, the second not.
    let (st, _) = get(&items(10_000), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, p) = get(&items(10_000), None).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{p}");
    // Small pages still fit in what is left.
    let (st, _) = get(&items(10), None).await;
    assert_eq!(st, StatusCode::OK);
    let tile = format!("{}/tiles/grids/14/13757/6237.mvt", s.url);
    for _ in 0..3 {
        let st = client().get(&tile).send().await.unwrap().status();
        assert!(st.is_success(), "{st}");
    }
    let limited = client().get(&tile).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
}

pub async fn past_date_reads_are_limited_per_address(b: Backend) {
    seeded(b.store.as_ref()).await;
    let s = Server::start(&b.url, &[("WANGGE_HISTORIC_READS_PER_MINUTE", "2")]);
    let items = |date: &str| format!("{}/ogc/collections/grids/items?datetime={date}", s.url);
    for date in ["2026-01-02", "2026-01-03"] {
        let (st, body) = get(&items(date), None).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let (st, p) = get(&items("2026-01-04"), None).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{p}");
    // Today's grids are not past reads.
    let (st, _) = get(&format!("{}/ogc/collections/grids/items", s.url), None).await;
    assert_eq!(st, StatusCode::OK);
}

/// What a client controls in a request's framing leaves no trace: a forged `Host`
/// puts nothing in links others may be served from a cache, a made-up method adds no
/// metric series, and the token a login hands out is kept by no cache.
pub async fn forged_hosts_and_methods_leave_no_trace_and_logins_are_not_cached(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let hash = wangge::auth::hash_password("correct horse battery").unwrap();
    account(store, "wei", Some(&hash), UserRole::Dispatcher, "371602").await;
    let s = Server::start(&b.url, &[]);
    let forged = "evil.example\"><script>";
    for path in ["/tiles/grids.json", "/ogc", "/open311/v2/discovery.json"] {
        let body = client()
            .get(format!("{}{path}", s.url))
            .header("host", forged)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains("evil.example"), "{path}: {body}");
    }
    // An ordinary host name is used as given, so links work behind any name.
    let (_, tilejson) = get(&format!("{}/tiles/grids.json", s.url), None).await;
    assert!(
        tilejson["tiles"][0].as_str().unwrap().starts_with(&s.url),
        "{tilejson}"
    );

    let made_up = reqwest::Method::from_bytes(b"XYZZYMETHOD").unwrap();
    let st = client()
        .request(made_up, format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let metrics = client()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("XYZZYMETHOD"), "a series per method");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    // Only the addresses metrics_allow names read them.
    let elsewhere = Server::start(&b.url, &[("WANGGE_METRICS_ALLOW", "[10.0.0.0/8]")]);
    let refused = client()
        .get(format!("{}/metrics", elsewhere.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = refused.text().await.unwrap();
    assert!(!body.contains("wangge_"), "{body}");

    let login = client()
        .post(format!("{}/v1/auth/login", s.url))
        .json(&json!({"name": "wei", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["cache-control"], "no-store");
}

crate::contract!(
    forged_hosts_and_methods_leave_no_trace_and_logins_are_not_cached,
    hostile_files_are_refused_and_nothing_is_read_stored_or_fetched,
    a_reader_that_crashes_or_overruns_fails_its_upload_and_the_server_lives,
    public_input_is_bounded_and_limited_before_it_is_read,
    logins_are_throttled_audited_and_unknown_names_cost_the_same,
    streams_end_with_their_token_and_are_capped_per_account,
    forwarded_addresses_count_only_from_trusted_proxies,
    past_date_reads_are_limited_per_address,
    ogc_pages_and_tiles_are_limited_per_address_by_their_cost,
    a_department_cannot_be_taken_over_from_another_county,
    a_department_holding_open_cases_does_not_move,
);

/// A department's open cases belong to the area it served: moving it would hand them to
/// the new area's people, so it moves only once they are returned or reassigned.
pub async fn a_department_holding_open_cases_does_not_move(b: Backend) {
    use crate::dispatch::{COUNTY, IN_NE, T_URBAN, TOWNSHIP, seed_dispatch};
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admin = user(store, "admin", UserRole::CityAdmin, "3716").await;
    let disp = user(store, "town.disp", UserRole::Dispatcher, TOWNSHIP).await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let resp = client()
        .post(url("/v1/public/reports"))
        .json(&json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001",
            "description": "井盖缺失"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for step in [json!({"action": "accept"}), json!({"action": "assign"})] {
        let resp = client()
            .post(url(&format!("/v1/cases/{id}/actions")))
            .bearer_auth(&disp)
            .json(&step)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{step}");
    }
    let moved = json!({"code": T_URBAN, "name": "城区城管", "kind": "urban_management",
        "region_code": COUNTY});
    let resp = client()
        .put(url(&format!("/v1/departments/{T_URBAN}")))
        .bearer_auth(&admin)
        .json(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = resp.json::<Value>().await.unwrap();
    assert_eq!(
        problem["type"], "urn:wangge:problem:department-busy",
        "{problem}"
    );
    let departments = client()
        .get(url("/v1/departments"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let stored = departments
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == T_URBAN)
        .cloned()
        .unwrap();
    assert_eq!(stored["region_code"], TOWNSHIP, "nothing moved");
}

#[test]
fn the_cli_refuses_grants_of_unknown_regions_and_token_lifetimes_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wangge"))
            .args(args)
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .output()
            .expect("wangge")
    };
    // A grant names a region that exists: on an empty store the CLI says how to load
    // them; afterwards a code that names nothing is refused.
    let add = |scope: &str| {
        run(&[
            "user",
            "add",
            "sys",
            "--role",
            "dispatcher",
            "--scope",
            scope,
        ])
    };
    let out = add("371602");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no regions are loaded yet"),
        "{out:?}"
    );
    let counties = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/binzhou_371600_full.datav.geojson"
    );
    let out = run(&[
        "import",
        "regions",
        counties,
        "--level",
        "county",
        "--id-field",
        "adcode",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = add("999999");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("names no loaded region"),
        "{out:?}"
    );
    assert!(add("371602").status.success());
    let out = run(&["token", "issue", "sys", "--ttl", "1000000000d"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ttl must be at most"));
    assert!(
        run(&["token", "issue", "sys", "--ttl", "30d"])
            .status
            .success()
    );
}

pub async fn a_department_cannot_be_taken_over_from_another_county(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    // 沾化区, so that a department can move there.
    store
        .upsert_regions(&[wangge::store::RegionRecord {
            code: "371603".into(),
            name: "沾化区".into(),
            level: wangge::domain::Level::County,
            parent_code: Some("3716".into()),
            boundary: None,
        }])
        .await
        .expect("region");
    let admin = user(store, "admin", UserRole::CityAdmin, "3716").await;
    let own = user(store, "bincheng", UserRole::Dispatcher, "371602").await;
    let other = user(store, "zhanhua", UserRole::Dispatcher, "371603").await;
    let s = Server::start(&b.url, &[("WANGGE_WEBHOOK_ALLOW_HOSTS", "[10.0.0.0/8]")]);
    let put = |token: String, region: &'static str, hook: &'static str| {
        let url = format!("{}/v1/departments/371602-public_security", s.url);
        async move {
            client()
                .put(url)
                .bearer_auth(token)
                .json(
                    &json!({"code": "371602-public_security", "name": "滨城区公安分局",
                    "kind": "public_security", "region_code": region, "webhook_url": hook}),
                )
                .send()
                .await
                .expect("put")
                .status()
        }
    };
    assert_eq!(
        put(admin.clone(), "371602", "https://10.1.2.3/hook").await,
        StatusCode::OK
    );
    // Another county's dispatcher re-homes it into their county and re-hooks it: refused.
    assert_eq!(
        put(other.clone(), "371603001", "https://127.0.0.1:9/steal").await,
        StatusCode::FORBIDDEN
    );
    // The county's own dispatcher may change it, but not move it to another county.
    assert_eq!(
        put(own.clone(), "371602001", "https://10.1.2.4/hook").await,
        StatusCode::OK
    );
    assert_eq!(
        put(own.clone(), "371603", "https://10.1.2.4/hook").await,
        StatusCode::FORBIDDEN
    );
    // Not to a region that is not loaded, whoever asks.
    assert_eq!(
        put(admin.clone(), "371699", "https://10.1.2.5/hook").await,
        StatusCode::BAD_REQUEST
    );
    // The city may.
    assert_eq!(
        put(admin.clone(), "371603", "https://10.1.2.5/hook").await,
        StatusCode::OK
    );
    // Nobody aims a webhook at this machine or an internal address not allowed.
    for inward in [
        "https://127.0.0.1:9/x",
        "https://192.168.0.1/x",
        "https://169.254.169.254/x",
        // Plain http, even to an allowed host, unless webhook_allow_http.
        "http://10.1.2.6/hook",
    ] {
        assert_eq!(
            put(admin.clone(), "371603", inward).await,
            StatusCode::BAD_REQUEST,
            "{inward}"
        );
    }
    let dept = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["code"] == "371602-public_security")
            .cloned()
            .unwrap()
    };
    // Webhook URLs are shown to those who manage the department only.
    let (_, list) = get(&format!("{}/v1/departments", s.url), Some(&own)).await;
    assert_eq!(dept(&list)["webhook_url"], Value::Null, "{list}");
    let (_, list) = get(&format!("{}/v1/departments", s.url), Some(&other)).await;
    assert_eq!(dept(&list)["webhook_url"], "https://10.1.2.5/hook");
    assert_eq!(dept(&list)["region_code"], "371603");
    // The auditors of the county it left see where its case data goes now.
    let bc_audit = user(store, "bc.audit", UserRole::Auditor, "371602").await;
    let (_, log) = get(&format!("{}/v1/audit?limit=1000", s.url), Some(&bc_audit)).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "department_put"
                && e["detail"]["webhook_url"] == "https://10.1.2.5/hook"),
        "{log}"
    );

    // New departments: a code that reads as another county's, or no sensible name,
    // is refused.
    let create = |token: String, code: &'static str, body: Value| {
        let url = format!("{}/v1/departments/{code}", s.url);
        async move {
            let r = client()
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("put");
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    let housing = |name: String, region: &str| json!({"code": "x", "name": name, "kind": "housing", "region_code": region, "webhook_url": null});
    for (code, body) in [
        ("371602-housing", housing("滨城区住建局".into(), "371603")),
        ("371603-housing", housing("名".repeat(101), "371603")),
        ("371603-Housing!", housing("沾化区住建局".into(), "371603")),
        (
            "371603-housing",
            housing("沾化区\u{202e}局建住".into(), "371603"),
        ),
    ] {
        let (st, text) = create(other.clone(), code, body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{code}: {text}");
    }
    let (st, text) = create(
        other.clone(),
        "371603-housing",
        housing("沾化区住建局".into(), "371603"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{text}");

    // Staff come from the department's own area.
    user(store, "zh.handler", UserRole::DepartmentHandler, "371603").await;
    user(store, "bc.handler", UserRole::DepartmentHandler, "371602").await;
    let enlist = |who: &'static str| {
        let url = format!("{}/v1/departments/371603-housing/staff", s.url);
        let token = other.clone();
        async move {
            let r = client()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"user": who}))
                .send()
                .await
                .expect("post");
            (r.status(), r.text().await.unwrap_or_default())
        }
    };
    let (st, text) = enlist("bc.handler").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("bad-staff"), "{text}");
    assert_eq!(enlist("zh.handler").await.0, StatusCode::NO_CONTENT);
    // A name that is no account gets the same answer: no county lists another's people.
    let (st, nobody) = enlist("nobody").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        nobody.replace("nobody", "NAME"),
        text.replace("bc.handler", "NAME")
    );

    // A department the city moves to another county leaves behind the staff who do not
    // serve there, and both counties' auditors see the move.
    let (st, text) = create(
        admin.clone(),
        "371602-water",
        json!({"code": "x", "name": "滨城区水利局",
        "kind": "water", "region_code": "371602", "webhook_url": null}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let st = client()
        .post(format!("{}/v1/departments/371602-water/staff", s.url))
        .bearer_auth(&admin)
        .json(&json!({"user": "bc.handler"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, text) = create(
        admin.clone(),
        "371602-water",
        json!({"code": "x", "name": "水利局",
        "kind": "water", "region_code": "371603", "webhook_url": "https://10.1.2.9/hook"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    assert!(
        store
            .department_staff("371602-water")
            .await
            .unwrap()
            .is_empty(),
        "bc.handler serves 371602 only"
    );
    let zh_audit = user(store, "zh.audit", UserRole::Auditor, "371603").await;
    let (_, log) = get(&format!("{}/v1/audit?limit=1000", s.url), Some(&zh_audit)).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "department_put"
                && e["resource"] == "departments/371602-water"
                && e["detail"]["webhook_url"] == "https://10.1.2.9/hook"
                && e["detail"]["staff_dismissed"] == json!(["bc.handler"])),
        "{log}"
    );
    let (_, log) = get(&format!("{}/v1/audit?limit=1000", s.url), Some(&bc_audit)).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "staff_remove"
                && e["resource"] == "departments/371602-water/staff/bc.handler"),
        "{log}"
    );
}

/// Reads from `tcp` until the server closes it; how long that took, or `None` if it
/// was still open after `patience`.
fn closed_within(tcp: &mut std::net::TcpStream, patience: Duration) -> Option<Duration> {
    use std::io::Read;
    tcp.set_read_timeout(Some(patience)).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_half_sent_connections_are_closed_and_one_address_holds_a_few() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("wangge.db").display());
    let s = Server::start(
        &url,
        &[
            ("WANGGE_HEADER_READ_TIMEOUT_SECS", "1"),
            ("WANGGE_MAX_CONNECTIONS_PER_ADDRESS", "3"),
        ],
    );
    let addr = s.url.trim_start_matches("http://").to_string();
    let connect = || std::net::TcpStream::connect(&addr).expect("connect");
    let patience = Duration::from_secs(20);

    // Nothing sent, half a head sent, or idle after an answer: closed, not kept.
    let mut silent = connect();
    assert!(closed_within(&mut silent, patience).is_some(), "silent");
    let mut half = connect();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    assert!(closed_within(&mut half, patience).is_some(), "half a head");
    let mut kept = connect();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(
        closed_within(&mut kept, patience).is_some(),
        "idle keep-alive"
    );

    // Three held open: a fourth from the same address is closed unanswered.
    let held: Vec<_> = (0..3).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = connect();
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok();
    let mut answer = Vec::new();
    fourth
        .set_read_timeout(Some(patience))
        .expect("read timeout");
    let _ = std::io::Read::read_to_end(&mut fourth, &mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // Their places given back, the address is served again.
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        if client()
            .get(format!("{}/healthz", s.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "served again once the held connections closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_reads_nothing_of_its_answers_is_disconnected() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("wangge.db").display());
    let s = Server::start(&url, &[("WANGGE_WRITE_STALL_TIMEOUT_SECS", "1")]);
    let size = client()
        .get(format!("{}/openapi.json", s.url))
        .send()
        .await
        .expect("openapi")
        .bytes()
        .await
        .expect("bytes")
        .len();
    // Far more than the sockets' buffers hold, asked for at once and not read.
    let asked = (64 << 20) / size + 1;
    let mut tcp =
        std::net::TcpStream::connect(s.url.trim_start_matches("http://")).expect("connect");
    let one = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    tcp.write_all(&one.repeat(asked)).expect("requests");
    std::thread::sleep(Duration::from_secs(5));
    // Read now: what the buffers held arrives, then the end the server put there.
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after 20 s ({got} bytes read): {e}"),
        }
    }
    assert!(
        got < asked * size,
        "all {asked} answers were sent: the stalled connection was kept"
    );
}
