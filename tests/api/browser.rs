//! The web app in a real browser: `wangge serve --demo` on an SQLite file, Debian's
//! Chromium driven by playwright-core (web/tests/browser.mjs). This side starts the
//! server, makes the users and the draft files, runs the script and checks what it left
//! in the store. Fails, naming what is missing, when Node, the built app or Chromium is
//! not there (scripts/test installs and builds them): never a silent pass. To run the
//! rest without them: `cargo test -- --skip browser`.

use crate::service::{Server, account, client};
use geo::{InteriorPoint, Translate};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use wangge::domain::UserRole;
use wangge::store::{Store, Validity};

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser tests, if anything.
fn missing() -> Option<String> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node".into());
    }
    for need in [
        web.join("node_modules/playwright-core"),
        web.join("dist/index.html"),
        chromium(),
    ] {
        if !need.exists() {
            return Some(need.display().to_string());
        }
    }
    None
}

async fn staff(store: &dyn Store, name: &str, password: &str, role: UserRole, scope: &str) {
    let hash = wangge::auth::hash_password(password).expect("hash");
    account(store, name, Some(&hash), role, scope).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_app_serves_residents_planners_and_dispatchers_in_a_real_browser() {
    if let Some(what) = missing() {
        panic!(
            "the browser test cannot run: {what} is missing (scripts/test installs Chromium \
             and builds the app; `cargo test -- --skip browser` runs the rest)"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("wangge.db").display());
    let demo_dir = dir.path().join("demo");
    let server = Server::start_with(
        &url,
        &[],
        &[
            "--demo",
            "--demo-dir",
            demo_dir.to_str().expect("utf-8 path"),
        ],
    );
    let store = wangge::store::open(&url).await.expect("store");

    // A community of the demo with its current grids: the planner redraws it.
    let community = "371602001001";
    let grids: Vec<wangge::domain::Grid> = store
        .grids(Validity::Current, None, Some(community))
        .await
        .expect("grids")
        .into_iter()
        .map(|v| v.into_grid())
        .collect();
    assert!(grids.len() >= 3, "the demo community has grids");
    let first = &grids[0];
    let inside = first.boundary.interior_point().expect("interior point");
    let search_point = grids[1].boundary.interior_point().expect("interior point");
    // The clean draft: the current grids, their names under 标注 (a field wangge does
    // not read by default, so the planner chooses it in the view).
    let named: Vec<wangge::domain::Grid> = grids
        .iter()
        .cloned()
        .map(|mut g| {
            let name = g.name.take().unwrap_or_default();
            g.properties.remove("name");
            g.properties.insert("标注".into(), Value::from(name));
            g
        })
        .collect();
    assert!(
        grids.iter().all(|g| g.name.is_some()),
        "demo grids have names"
    );
    let fixed = dir.path().join("fixed.geojson");
    std::fs::write(
        &fixed,
        wangge::io::geojson::grids_to_json(&named).to_string(),
    )
    .expect("write");
    // The first grid shifted by about 40 m: it overlaps a neighbour on one side and
    // leaves a gap on the other.
    let mut broken_grids = grids.clone();
    broken_grids[0].boundary = broken_grids[0].boundary.translate(0.0004, 0.0003);
    let broken = dir.path().join("broken.geojson");
    std::fs::write(
        &broken,
        wangge::io::geojson::grids_to_json(&broken_grids).to_string(),
    )
    .expect("write");

    staff(
        store.as_ref(),
        "planner.t",
        "pw-township-1",
        UserRole::Planner,
        "371602001",
    )
    .await;
    staff(
        store.as_ref(),
        "planner.c",
        "pw-county-1",
        UserRole::Planner,
        "371602",
    )
    .await;
    staff(
        store.as_ref(),
        "dispatcher.c",
        "pw-dispatch-1",
        UserRole::Dispatcher,
        "371602",
    )
    .await;

    // A fresh directory per run: an old run's screenshots cannot pass for this one's.
    let run = format!(
        "run-{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
        std::process::id()
    );
    let shots = root.join("target/browser-screenshots").join(run);
    assert!(!shots.exists());
    let out = Command::new("node")
        .arg(root.join("web/tests/browser.mjs"))
        .current_dir(root.join("web"))
        .env("WANGGE_URL", &server.url)
        .env("CHROMIUM", chromium())
        .env("SHOTS", &shots)
        .env("GRID_CODE", &first.id)
        .env("SEARCH_CODE", &grids[1].id)
        .env(
            "SEARCH_POINT",
            format!("{},{}", search_point.x(), search_point.y()),
        )
        .env("SEARCH_MANY", community)
        .env("NAME_FIELD", "标注")
        .env("UNCHANGED", grids.len().to_string())
        .env("GRID_POINT", format!("{},{}", inside.x(), inside.y()))
        .env("PLAN_SCOPE", community)
        .env("BROKEN", &broken)
        .env("FIXED", &fixed)
        .env("PLANNER", "planner.t:pw-township-1")
        .env("COUNTY_PLANNER", "planner.c:pw-county-1")
        .env("DISPATCHER", "dispatcher.c:pw-dispatch-1")
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser script failed:\n{stdout}");
    println!("screenshots in {}", shots.display());

    // What the clicks did, read back from the service.
    let plans = store.plans(Some(community), None).await.expect("plans");
    let plan = plans.first().expect("the planner's plan");
    assert_eq!(plan.status.as_str(), "active", "approved, then activated");
    assert_eq!(plan.error_count, 0);
    assert_eq!(
        plan.warning_count, 0,
        "the chosen name field left no warning"
    );
    let mut drafted: Vec<(Option<String>, String)> = store
        .plan_grids(plan.id)
        .await
        .expect("plan grids")
        .into_iter()
        .map(|g| (g.name, g.code))
        .collect();
    let mut current: Vec<(Option<String>, String)> = grids
        .iter()
        .map(|g| (g.name.clone(), g.id.clone()))
        .collect();
    drafted.sort();
    current.sort();
    assert_eq!(drafted, current, "names and codes kept through the mapping");
    // The three reports, each in the grid its form showed: the searched grid's from its
    // card (accepted later on a phone), the tapped grid's (accepted and assigned by the
    // dispatcher at a desk), and the phone's at its location.
    let mut filed = Vec::new();
    for id in 1..=3 {
        let case: Value = client()
            .get(format!("{}/v1/public/reports/{id}", server.url))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        filed.push((
            case["grid_code"].as_str().unwrap_or_default().to_string(),
            case["state"].as_str().unwrap_or_default().to_string(),
        ));
    }
    let at = |g: &wangge::domain::Grid, state: &str| (g.id.clone(), state.to_string());
    assert_eq!(
        filed,
        [
            at(&grids[1], "accepted"),
            at(first, "assigned"),
            at(first, "reported")
        ]
    );
    for shot in [
        "1-public-map",
        "5-planner-overlap",
        "5-planner-gap",
        "7-planner-mapping",
        "8-county-approved",
        "9-dispatcher-board",
        "12-assessment",
        "phone-3-card",
        "phone-8-dispatcher-case",
        "phone-9-assessment",
        "phone-10-planner-plan",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).exists(),
            "screenshot {shot}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_bundle_is_served_gzipped_as_built_to_browsers_that_take_gzip() {
    if let Some(what) = missing() {
        panic!("the built app is needed: {what} is missing (scripts/web builds it)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("wangge.db").display());
    let server = Server::start(&url, &[]);
    let page = client()
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("index")
        .text()
        .await
        .expect("text");
    let script = page
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("the page names its script");
    let fetch = |encoding: Option<&'static str>| {
        let mut r = client().get(format!("{}{script}", server.url));
        if let Some(e) = encoding {
            r = r.header("accept-encoding", e);
        }
        async move {
            let resp = r.send().await.expect("script");
            let headers = resp.headers().clone();
            (headers, resp.bytes().await.expect("bytes"))
        }
    };
    let (headers, gzipped) = fetch(Some("br, gzip;q=0.8")).await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["vary"], "accept-encoding");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(&gzipped[..2], &[0x1f, 0x8b], "gzip's magic number");
    let (headers, aliased) = fetch(Some("x-gzip")).await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(aliased, gzipped);
    // Refused, not offered, or only codings not prebuilt: the plain file, never
    // compressed per request.
    for encoding in [
        Some("gzip;q=0"),
        None,
        Some("deflate, br"),
        Some("gzip;q=0, *"),
    ] {
        let (headers, plain) = fetch(encoding).await;
        assert!(headers.get("content-encoding").is_none(), "{encoding:?}");
        assert!(plain.len() > gzipped.len() * 2, "{encoding:?}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
    }
    // The prebuilt file is not a file of its own.
    let direct = client()
        .get(format!("{}{script}.gz", server.url))
        .send()
        .await
        .expect("gz");
    assert_eq!(direct.status(), reqwest::StatusCode::NOT_FOUND);
}
