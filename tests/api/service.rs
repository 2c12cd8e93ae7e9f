//! The service as clients meet it: `wangge serve` started as a process on a random port
//! over a real SQLite file and a real PostGIS database, spoken to over HTTP.

use crate::backends::Backend;
use crate::store_contract::{
    COMMUNITY, approved_plan, code, first_grids, second_grids, seed_regions,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wangge::domain::{Grant, UserRole};
use wangge::store::{NewMember, Role, Store, Validity};

/// A running `wangge serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Server {
        Server::start_with(database_url, env, &[])
    }

    /// [`Server::start`] with more arguments to `serve` (e.g. `--demo`).
    pub fn start_with(database_url: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wangge"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::listening(cmd)
    }

    /// Starts `cmd` (a `wangge serve … --listen 127.0.0.1:0`) and waits until it says
    /// where it listens.
    pub fn listening(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start wangge serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("wangge serve exited before listening")
                .expect("read stdout");
            if let Some(at) = line.find("http://") {
                break line[at..].trim_end_matches('/').to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    /// SIGKILL: the crash path.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        // SIGTERM: the graceful path.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait");
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store with the four-grid community of the contract suite active, a member on duty
/// in each grid and a supervision phone for the county.
pub async fn seeded(store: &dyn Store) {
    seed_regions(store).await;
    let id = approved_plan(store, first_grids(), "2026-01-01").await;
    wangge::workflow::plans::activate(
        store,
        id,
        "city.zhao",
        crate::store_contract::date("2030-01-01"),
        None,
    )
    .await
    .expect("activate");
    for seq in 1..=4 {
        store
            .add_member(
                &NewMember {
                    scope_code: code(seq),
                    role: Role::GridLeader,
                    name: format!("李网格{seq}"),
                    phone: Some(format!("1380000000{seq}")),
                    duty_schedule: json!({}),
                },
                None,
            )
            .await
            .expect("member");
    }
    store
        .set_supervision_phone("371602", "0543-1234567")
        .await
        .expect("phone");
}

/// An account with one grant (and a password hash, for logging in through a form).
pub async fn account(
    store: &dyn Store,
    name: &str,
    password_hash: Option<&str>,
    role: UserRole,
    scope: &str,
) {
    store.create_user(name, password_hash).await.expect("user");
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
}

/// A user with one grant and a fresh token.
pub async fn user(store: &dyn Store, name: &str, role: UserRole, scope: &str) -> String {
    account(store, name, None, role, scope).await;
    // Ten days: long enough for a server whose clock a test set days ahead (WANGGE_NOW).
    let issued = wangge::auth::issue_token(name, "test", chrono::Duration::days(10));
    store.store_token(&issued.record).await.expect("token");
    issued.secret
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub(crate) async fn get(url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut r = client().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Logs a token out (`POST /v1/auth/logout`).
pub(crate) async fn logout(url: &str, token: &str) -> StatusCode {
    client()
        .post(format!("{url}/v1/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .expect("logout")
        .status()
}

/// Sends a request; answers its status and body as JSON (a body that is not JSON as a
/// JSON string, so a failing assertion shows it).
pub(crate) async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn post(url: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let resp = client()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

// 118.015, 37.315 lies inside NE (code 002); 118.005, 37.305 inside SW (003).
const IN_NE: (f64, f64) = (118.015, 37.315);

pub async fn locate_answers_grid_ancestors_member_and_phone(b: Backend) {
    seeded(b.store.as_ref()).await;
    let token = user(b.store.as_ref(), "disp", UserRole::Dispatcher, "3716").await;
    let s = Server::start(&b.url, &[]);
    let (status, _) = get(&format!("{}/healthz", s.url), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ready) = get(&format!("{}/readyz", s.url), None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["grids"], 4);

    let url = format!("{}/v1/locate?lon={}&lat={}", s.url, IN_NE.0, IN_NE.1);
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["type"], "urn:wangge:problem:unauthenticated");

    let (status, a) = get(&url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["grid"]["code"], code(2));
    assert_eq!(a["ancestors"][0]["name"], "黄河社区");
    assert_eq!(a["ancestors"][2]["code"], "371602");
    assert_eq!(a["member_on_duty"]["name"], "李网格2");
    assert_eq!(a["member_on_duty"]["phone"], "13800000002");
    assert_eq!(a["supervision_phone"], "0543-1234567");
    assert_eq!(a["outside"], false);
    assert!(a["boundaries"]["version"].as_i64().unwrap() > 0);

    // Near the NE/SE edge (37.31): flagged, with the neighbour and its distance.
    let (_, near) = get(
        &format!("{}/v1/locate?lon=118.015&lat=37.31003", s.url),
        Some(&token),
    )
    .await;
    assert_eq!(near["near_boundary"], true, "{near}");
    assert_eq!(near["neighbour"]["grid"]["code"], code(4));
    let d = near["neighbour"]["distance_m"].as_f64().unwrap();
    assert!((2.0..5.0).contains(&d), "{d}");

    // A GCJ-02 point is converted first: the same place sent from a phone.
    let gcj = wangge::spatial::crs::CoordSys::Gcj02.from_wgs84(geo_types::Coord {
        x: IN_NE.0,
        y: IN_NE.1,
    });
    let (_, g) = get(
        &format!(
            "{}/v1/locate?lon={}&lat={}&coord_sys=gcj02",
            s.url, gcj.x, gcj.y
        ),
        Some(&token),
    )
    .await;
    assert_eq!(g["grid"]["code"], code(2));

    // Bad input: a clear problem, naming the parameter.
    let (status, bad) = get(
        &format!("{}/v1/locate?lon=118&lat=37&coord_sys=mars", s.url),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["parameter"], "coord_sys");
    let (status, _) = get(&format!("{}/v1/locate?lon=500&lat=37", s.url), Some(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Batches, in input order, in each accepted shape.
    let pairs = json!([[118.005, 37.305], [IN_NE.0, IN_NE.1], [117.0, 36.0]]);
    let (status, batch) = post(&format!("{}/v1/locate", s.url), &token, pairs).await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let grids: Vec<Value> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["grid"].clone())
        .collect();
    assert_eq!(grids, vec![json!(code(3)), json!(code(2)), Value::Null]);
    assert_eq!(batch["results"][2]["outside"], true);
    assert!(
        batch["results"][0].get("outside").is_none(),
        "false flags are left out"
    );
    let fc = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [IN_NE.0, IN_NE.1]}}]});
    let (_, batch) = post(&format!("{}/v1/locate", s.url), &token, fc).await;
    assert_eq!(batch["results"][0]["grid"], code(2));
    let (status, bad) = post(
        &format!("{}/v1/locate", s.url),
        &token,
        json!([[118.0, 37.3], [999.0, 1.0]]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["index"], 1);

    // Historic: before the plan took effect there was no grid.
    let (_, past) = get(
        &format!(
            "{}/v1/locate?lon={}&lat={}&as_of=2025-06-01",
            s.url, IN_NE.0, IN_NE.1
        ),
        Some(&token),
    )
    .await;
    assert_eq!(past["grid"], Value::Null, "{past}");
    assert_eq!(past["boundaries"]["as_of"], "2025-06-01");

    // Metrics count requests per route.
    let metrics = client()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wangge_http_requests_total{route=\"/v1/locate\""),
        "{metrics}"
    );
    assert!(metrics.contains("wangge_partition_grids 4"), "{metrics}");
    // The OpenAPI document lists the endpoints, and has a page.
    let (_, doc) = get(&format!("{}/openapi.json", s.url), None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/locate"]["get"].is_object());
    assert!(doc["paths"]["/v1/public/grids/{code}"]["get"].is_object());
    assert!(doc["paths"]["/ogc/collections/{id}/items"]["get"].is_object());
    let page = client()
        .get(format!("{}/docs", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(s.stop().success(), "SIGTERM ends the server cleanly");
}

pub async fn public_cards_show_published_contacts_and_are_rate_limited(b: Backend) {
    seeded(b.store.as_ref()).await;
    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_PUBLIC_RATE_PER_MINUTE", "4"),
            ("WANGGE_MASK_PUBLIC_PHONES", "true"),
        ],
    );
    let (status, card) = get(&format!("{}/v1/public/grids/{}", s.url, code(2)), None).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["grid"]["code"], code(2));
    assert_eq!(card["members"][0]["name"], "李网格2");
    assert_eq!(card["members"][0]["phone"], "138****0002");
    assert_eq!(card["supervision_phone"], "0543-1234567");
    assert_eq!(card["scope"]["type"], "MultiPolygon");
    let (status, card) = get(
        &format!("{}/v1/public/locate?lon={}&lat={}", s.url, IN_NE.0, IN_NE.1),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card["grid"]["code"], code(2));
    let (status, _) = get(&format!("{}/v1/public/grids/371602001001999", s.url), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&format!("{}/v1/public/grids/{}", s.url, code(1)), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the 4th request a minute is allowed"
    );
    let (status, limited) = get(&format!("{}/v1/public/grids/{}", s.url, code(1)), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{limited}");
    assert_eq!(limited["type"], "urn:wangge:problem:rate-limited");
}

pub async fn each_role_is_held_to_its_actions_and_jurisdiction(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let other_community = "371602002001";
    store
        .add_member(
            &NewMember {
                scope_code: format!("{other_community}001"),
                role: Role::GridLeader,
                name: "王别处".into(),
                phone: Some("13900000000".into()),
                duty_schedule: json!({}),
            },
            None,
        )
        .await
        .unwrap();
    let admin = user(store, "admin", UserRole::CityAdmin, "3716").await;
    let disp = user(store, "disp", UserRole::Dispatcher, "371602001").await;
    let member = user(store, "member", UserRole::GridMember, &code(2)).await;
    let planner = user(store, "planner", UserRole::Planner, "371602001").await;
    let handler = user(store, "handler", UserRole::DepartmentHandler, "371602").await;
    let auditor = user(store, "auditor", UserRole::Auditor, "371602").await;
    let s = Server::start(&b.url, &[]);
    let members = |scope: String| format!("{}/v1/members?scope={scope}", s.url);

    // Personal data: unmasked for roles that need it, inside their jurisdiction only.
    for (token, scope, status, masked) in [
        (&admin, code(2), StatusCode::OK, false),
        (&disp, code(2), StatusCode::OK, false),
        (
            &disp,
            format!("{other_community}001"),
            StatusCode::FORBIDDEN,
            false,
        ),
        (&member, code(2), StatusCode::OK, false),
        (&member, code(3), StatusCode::FORBIDDEN, false),
        (&planner, code(2), StatusCode::OK, true),
        (
            &planner,
            format!("{other_community}001"),
            StatusCode::FORBIDDEN,
            false,
        ),
        (&handler, code(2), StatusCode::OK, true),
        (&auditor, code(2), StatusCode::OK, true),
    ] {
        let (got, body) = get(&members(scope.clone()), Some(token)).await;
        assert_eq!(got, status, "{scope}: {body}");
        if got == StatusCode::OK {
            assert_eq!(body[0]["masked"], masked, "{body}");
            let name = body[0]["name"].as_str().unwrap();
            assert_eq!(name == "李网格2", !masked, "{name}");
        } else {
            assert_eq!(body["type"], "urn:wangge:problem:forbidden");
        }
    }

    // Writes: city admins add members in their tree; nobody else does.
    let new_member = json!({"scope_code": code(1), "role": "part_time", "name": "赵兼职", "phone": "13700000000"});
    let (st, _) = post(&format!("{}/v1/members", s.url), &admin, new_member.clone()).await;
    assert_eq!(st, StatusCode::CREATED);
    for t in [&disp, &member, &planner, &handler, &auditor] {
        let (st, _) = post(&format!("{}/v1/members", s.url), t, new_member.clone()).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }

    // The audit log: every unmasked read and every write, for auditors only.
    let (st, log) = get(&format!("{}/v1/audit", s.url), Some(&auditor)).await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let actions: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("admin", "read_personal"),
        ("disp", "read_personal"),
        ("member", "read_personal"),
        ("admin", "member_add"),
    ] {
        assert!(
            actions.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {actions:?}"
        );
    }
    assert!(
        !actions.iter().any(|(a, _)| a == "planner"),
        "masked reads are not personal reads"
    );
    for t in [&admin, &disp, &member, &planner, &handler] {
        let (st, _) = get(&format!("{}/v1/audit", s.url), Some(t)).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    let (st, _) = get(&format!("{}/v1/audit?under=3716", s.url), Some(&auditor)).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "an auditor of a county cannot read the city's log"
    );

    // Locate: every operational role may; a revoked token may not.
    for t in [&admin, &disp, &member, &planner, &handler] {
        let (st, _) = get(
            &format!("{}/v1/locate?lon={}&lat={}", s.url, IN_NE.0, IN_NE.1),
            Some(t),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, _) = get(
        &format!("{}/v1/locate?lon={}&lat={}", s.url, IN_NE.0, IN_NE.1),
        Some(&auditor),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(logout(&s.url, &handler).await, StatusCode::NO_CONTENT);
    let (st, _) = get(&format!("{}/v1/me", s.url), Some(&handler)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = get(&format!("{}/v1/me", s.url), Some("wg_not_a_token")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The audit log cannot be rewritten, even by SQL (checked with the server stopped,
    // so no lock it holds can pass for the refusal).
    assert!(s.stop().success());
    b.assert_append_only("audit_log", "actor").await;
}

pub async fn login_issues_tokens_that_expire_and_passwords_stay_hashed(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let hash = wangge::auth::hash_password("s3cret-password").unwrap();
    store.create_user("zhang", Some(&hash)).await.unwrap();
    store
        .grant(
            "zhang",
            &Grant {
                role: UserRole::Dispatcher,
                scope: "371602".into(),
            },
        )
        .await
        .unwrap();
    let s = Server::start(&b.url, &[]);
    let login = |password: &'static str| {
        client()
            .post(format!("{}/v1/auth/login", s.url))
            .json(&json!({"name": "zhang", "password": password}))
            .send()
    };
    let bad = login("wrong").await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let ok: Value = login("s3cret-password")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = ok["token"].as_str().unwrap().to_string();
    assert_eq!(ok["user"]["grants"][0]["role"], "dispatcher");
    let (st, me) = get(&format!("{}/v1/me", s.url), Some(&token)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["name"], "zhang");
    // Stored: the argon2 hash and the token's SHA-256, never the secrets.
    let stored = store.user("zhang").await.unwrap().unwrap();
    assert!(stored.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(store.token(&token).await.unwrap().is_none());
    // An expired token is refused.
    let expired = wangge::auth::issue_token("zhang", "test", chrono::Duration::seconds(-1));
    store.store_token(&expired.record).await.unwrap();
    let (st, p) = get(&format!("{}/v1/me", s.url), Some(&expired.secret)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(p["detail"].as_str().unwrap().contains("expired"));
}

/// Grids as a planner's GeoJSON: ids are their names, communities left to the service.
pub(crate) fn as_geojson(mut grids: Vec<wangge::domain::Grid>) -> String {
    for g in &mut grids {
        g.id = g.name.clone().unwrap_or_default();
    }
    wangge::io::geojson::grids_to_json(&grids).to_string()
}

pub(crate) fn second_plan_geojson() -> String {
    as_geojson(second_grids("NW-bigger"))
}

pub(crate) async fn upload(
    url: &str,
    token: &str,
    scope: &str,
    body: String,
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("scope", scope.to_string())
        .text("title", "NW takes a strip of NE")
        .part(
            "file",
            reqwest::multipart::Part::text(body).file_name("draft.geojson"),
        );
    let resp = client()
        .post(format!("{url}/v1/plans"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn a_township_drafts_and_submits_a_county_approves_and_the_map_changes(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let township = user(store, "li", UserRole::Planner, "371602001").await;
    let other_township = user(store, "zhou", UserRole::Planner, "371602002").await;
    let county = user(store, "wang", UserRole::Planner, "371602").await;
    let disp = user(store, "disp", UserRole::Dispatcher, "3716").await;
    let s = Server::start(&b.url, &[]);

    // A broken file changes nothing and names the feature.
    let (st, problem) = upload(&s.url, &township, COMMUNITY, "{\"type\": \"FeatureCollection\", \"features\": [{\"type\": \"Feature\", \"properties\": {}, \"geometry\": {\"type\": \"Polygon\", \"coordinates\": [[[118.0, 37.3], [118.1, 37.3]]]}}]}".into()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:wangge:problem:")
    );
    assert_eq!(
        store.plans(None, None).await.unwrap().len(),
        1,
        "nothing stored"
    );
    // Outside the planner's township: refused.
    let (st, _) = upload(&s.url, &other_township, COMMUNITY, second_plan_geojson()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A draft with a gap: reported, and it cannot be submitted.
    let mut gappy = second_grids("NW-bigger");
    gappy.retain(|g| g.name.as_deref() != Some("SE"));
    let gappy = as_geojson(gappy);
    let (st, plan) = upload(&s.url, &township, COMMUNITY, gappy).await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_i64().unwrap();
    assert!(plan["error_count"].as_i64().unwrap() > 0);
    let (_, problems) = get(
        &format!("{}/v1/plans/{id}/problems", s.url),
        Some(&township),
    )
    .await;
    assert_eq!(problems["type"], "FeatureCollection");
    assert!(
        problems["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["properties"]["kind"] == "gap"),
        "{problems}"
    );
    let (st, refused) = post(
        &format!("{}/v1/plans/{id}/submit", s.url),
        &township,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{refused}");
    // Others' drafts are invisible: answered as missing ones, so nobody learns which
    // plans exist elsewhere.
    let (st, _) = get(&format!("{}/v1/plans/{id}", s.url), Some(&other_township)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, missing) = get(&format!("{}/v1/plans/999999", s.url), Some(&other_township)).await;
    let (_, hidden) = get(&format!("{}/v1/plans/{id}", s.url), Some(&other_township)).await;
    assert_eq!(
        hidden["detail"]
            .as_str()
            .map(|d| d.replace(&id.to_string(), "N")),
        missing["detail"].as_str().map(|d| d.replace("999999", "N"))
    );
    let (st, _) = get(
        &format!("{}/v1/plans/{id}/impact", s.url),
        Some(&other_township),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "the impact names members: not across townships"
    );
    let (_, listed) = get(&format!("{}/v1/plans", s.url), Some(&other_township)).await;
    assert_eq!(listed, json!([]));

    // Fixed by replacing the content; then submitted by the township...
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::text(second_plan_geojson()).file_name("fixed.geojson"),
    );
    let resp = client()
        .put(format!("{}/v1/plans/{id}", s.url))
        .bearer_auth(&township)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let fixed: Value = resp.json().await.unwrap();
    assert_eq!(fixed["error_count"], 0, "{fixed}");
    let (st, _) = post(
        &format!("{}/v1/plans/{id}/submit", s.url),
        &township,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // ...which may not approve it; the county may, and previews the impact.
    let (st, _) = post(
        &format!("{}/v1/plans/{id}/approve", s.url),
        &township,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, impact) = get(&format!("{}/v1/plans/{id}/impact", s.url), Some(&county)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        !impact["changed"].as_array().unwrap().is_empty(),
        "{impact}"
    );
    let (st, _) = post(
        &format!("{}/v1/plans/{id}/reject", s.url),
        &county,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a rejection needs a reason");
    let (st, approved) = post(
        &format!("{}/v1/plans/{id}/approve", s.url),
        &county,
        // Yesterday in China: due, whatever today is.
        json!({"effective": (wangge::domain::date_in_china(chrono::Utc::now()) - chrono::Days::new(1)).to_string()}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{approved}");
    let (st, _) = post(
        &format!("{}/v1/plans/{id}/activate", s.url),
        &township,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The strip (118.011, 37.318) was NE's; after activation it is NW's.
    let strip = format!("{}/v1/locate?lon=118.011&lat=37.318", s.url);
    let (_, before) = get(&strip, Some(&disp)).await;
    assert_eq!(before["grid"]["code"], code(2));
    let (st, active) = post(
        &format!("{}/v1/plans/{id}/activate", s.url),
        &county,
        json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{active}");
    assert_eq!(active["status"], "active");
    let (_, after) = get(&strip, Some(&disp)).await;
    assert_eq!(
        after["grid"]["code"],
        code(1),
        "the activating replica serves the new grids at once"
    );

    // History of the grid and the area, and the steps in order.
    let (_, history) = get(
        &format!("{}/v1/grids/{}/history", s.url, code(2)),
        Some(&disp),
    )
    .await;
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    let (_, area) = get(
        &format!("{}/v1/regions/371602001/history", s.url),
        Some(&township),
    )
    .await;
    let steps: Vec<&str> = area["plans"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["draft", "draft", "submitted", "approved", "active"],
        "{area}"
    );
}

pub async fn replicas_serve_a_plan_activated_elsewhere(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let disp = user(store, "disp", UserRole::Dispatcher, "3716").await;
    let county = user(store, "wang", UserRole::Planner, "371602").await;
    // A long poll interval: on PostGIS the notification must do it; SQLite has no
    // notifications, so it gets a 1-second check.
    let check = if store.backend() == "postgis" {
        "60"
    } else {
        "1"
    };
    let a = Server::start(&b.url, &[("WANGGE_RELOAD_CHECK_SECS", check)]);
    let b2 = Server::start(&b.url, &[("WANGGE_RELOAD_CHECK_SECS", check)]);
    let strip = |url: &str| format!("{url}/v1/locate?lon=118.011&lat=37.318");
    let (_, before) = get(&strip(&b2.url), Some(&disp)).await;
    assert_eq!(before["grid"]["code"], code(2));
    let yesterday = wangge::domain::date_in_china(chrono::Utc::now()) - chrono::Days::new(1);
    let id = approved_plan(store, second_grids("NW-bigger"), &yesterday.to_string()).await;
    let (st, body) = post(
        &format!("{}/v1/plans/{id}/activate", a.url),
        &county,
        json!({}),
    )
    .await;
    // A server whose start-up activation ran late may have activated the due plan
    // itself; either way the other replica must switch.
    assert!(
        st == StatusCode::OK || st == StatusCode::CONFLICT,
        "{st} {body}"
    );
    let activated = Instant::now();
    loop {
        let (_, now) = get(&strip(&b2.url), Some(&disp)).await;
        if now["grid"]["code"] == code(1) {
            break;
        }
        // Generous, and still under the PostGIS replicas' 60 s poll: only the
        // notification can have done it there. How fast it was is printed, not judged.
        assert!(
            activated.elapsed() < Duration::from_secs(30),
            "replica still serves the old grids after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{}: the other replica switched after {:?}",
        store.backend(),
        activated.elapsed()
    );
}

pub async fn gdal_reads_every_grid_back_through_ogc_api_features(b: Backend) {
    seeded(b.store.as_ref()).await;
    let s = Server::start(&b.url, &[]);
    // Landing page and conformance as the spec asks.
    let (_, landing) = get(&format!("{}/ogc", s.url), None).await;
    let rels: Vec<&str> = landing["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    for rel in ["self", "service-desc", "conformance", "data"] {
        assert!(rels.contains(&rel), "{rels:?}");
    }
    let (_, page) = get(
        &format!("{}/ogc/collections/grids/items?limit=3", s.url),
        None,
    )
    .await;
    assert_eq!(page["numberMatched"], 4);
    assert_eq!(page["numberReturned"], 3);
    let next = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "next")
        .expect("next link");
    assert!(
        !next["href"].as_str().unwrap().contains(".json"),
        "bare links"
    );
    let (_, in_4490) = get(
        &format!(
            "{}/ogc/collections/grids/items/{}?crs=http://www.opengis.net/def/crs/EPSG/0/4490",
            s.url,
            code(1)
        ),
        None,
    )
    .await;
    assert_eq!(
        in_4490["geometry"]["coordinates"][0][0][0][0]
            .as_f64()
            .unwrap()
            .round(),
        37.0,
        "latitude first"
    );
    let (_, bbox) = get(
        &format!(
            "{}/ogc/collections/grids/items?bbox=118.0,37.3,118.009,37.309",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(bbox["numberMatched"], 1);

    // GDAL's own OAPIF driver, paging 1 feature at a time through the next links.
    let url = format!("OAPIF:{}/ogc", s.url);
    let stored = b.store.grids(Validity::Current, None, None).await.unwrap();
    let read = tokio::task::spawn_blocking(move || -> Vec<(String, geo_types::Geometry<f64>)> {
        use gdal::vector::LayerAccess;
        let ds = gdal::Dataset::open_ex(
            &url,
            gdal::DatasetOptions {
                open_options: Some(&["PAGE_SIZE=1"]),
                ..Default::default()
            },
        )
        .expect("GDAL opens the service");
        let mut layer = ds.layer_by_name("grids").expect("grids layer");
        let field = layer.defn().field_index("code").expect("code field");
        layer
            .features()
            .map(|f| {
                let code = f.field_as_string(field).unwrap().unwrap();
                (code, f.geometry().unwrap().to_geo().unwrap())
            })
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(read.len(), stored.len());
    for v in &stored {
        let (_, theirs) = read
            .iter()
            .find(|(c, _)| *c == v.code)
            .expect("every stored grid");
        let theirs = match theirs.clone() {
            geo_types::Geometry::MultiPolygon(m) => m,
            geo_types::Geometry::Polygon(p) => geo_types::MultiPolygon(vec![p]),
            other => panic!("{other:?}"),
        };
        let a: Vec<_> = v.boundary.0[0].exterior().0.clone();
        let b: Vec<_> = theirs.0[0].exterior().0.clone();
        assert_eq!(a.len(), b.len(), "{}", v.code);
        // Same ring, possibly starting elsewhere or wound the other way (RFC 7946).
        for c in &a {
            assert!(
                b.iter()
                    .any(|d| (c.x - d.x).abs() < 1e-9 && (c.y - d.y).abs() < 1e-9),
                "{} vertex {c:?}",
                v.code
            );
        }
    }
}

#[test]
fn bad_settings_stop_the_service_with_a_message_naming_each() {
    let out = Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["serve"])
        .env("WANGGE_LOG_FORMAT", "xml")
        .env("WANGGE_REQUEST_TIMEOUT_SECS", "0")
        .env("DATABASE_URL", "sqlite:///nonexistent-dir-never/x.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log_format") && err.contains("request_timeout_secs"),
        "{err}"
    );
}

crate::contract!(
    locate_answers_grid_ancestors_member_and_phone,
    public_cards_show_published_contacts_and_are_rate_limited,
    each_role_is_held_to_its_actions_and_jurisdiction,
    login_issues_tokens_that_expire_and_passwords_stay_hashed,
    a_township_drafts_and_submits_a_county_approves_and_the_map_changes,
    replicas_serve_a_plan_activated_elsewhere,
    gdal_reads_every_grid_back_through_ogc_api_features,
);

/// A surveying office's file: Gauss–Krüger zone 39 metres, GBK names, no `.cpg`, zipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zipped_gauss_kruger_gbk_shapefile_uploads_as_a_draft() {
    let b = crate::backends::sqlite().await.expect("sqlite");
    let store = b.store.as_ref();
    seeded(store).await;
    let township = user(store, "li", UserRole::Planner, "371602001").await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("draft.geojson");
    std::fs::write(&src, as_geojson(second_grids("西北网格"))).unwrap();
    let shp = dir.path().join("draft.shp");
    let o = Command::new("ogr2ogr")
        .args([
            "-f",
            "ESRI Shapefile",
            "-t_srs",
            "EPSG:4527",
            "-lco",
            "ENCODING=CP936",
        ])
        .arg(&shp)
        .arg(&src)
        .output()
        .expect("ogr2ogr (gdal-bin)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let zip = dir.path().join("draft.zip");
    crate::helpers::zip_shapefile_parts(&shp, &["shp", "shx", "dbf", "prj"], &zip);
    let s = Server::start(&b.url, &[]);
    let send = |encoding: Option<&str>| {
        let mut form = reqwest::multipart::Form::new()
            .text("scope", COMMUNITY)
            .text("id_field", "grid_id")
            .part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(&zip).unwrap())
                    .file_name("draft.zip"),
            );
        if let Some(e) = encoding {
            form = form.text("encoding", e.to_string());
        }
        client()
            .post(format!("{}/v1/plans", s.url))
            .bearer_auth(&township)
            .multipart(form)
            .send()
    };
    // Without the encoding: refused, naming the feature, nothing stored (no mojibake).
    let refused = send(None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:wangge:problem:bad-file", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("encoding"),
        "{problem}"
    );
    assert!(problem["feature"].is_string(), "{problem}");
    assert_eq!(store.plans(None, None).await.unwrap().len(), 1);
    let ok = send(Some("GBK")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    let plan: Value = ok.json().await.unwrap();
    assert_eq!(plan["error_count"], 0, "{plan}");
    let grids = store
        .plan_grids(plan["id"].as_i64().unwrap())
        .await
        .unwrap();
    assert!(
        grids.iter().any(|g| g.attributes["grid_id"] == "西北网格"),
        "{grids:?}"
    );
}

/// Accounts administered from the command line while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_users_and_issues_and_revokes_tokens_of_a_running_server() {
    let b = crate::backends::sqlite().await.expect("sqlite");
    seeded(b.store.as_ref()).await;
    let s = Server::start(&b.url, &[]);
    let wangge = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_wangge"))
            .args(args)
            .env("DATABASE_URL", &b.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = wangge(
        &[
            "user",
            "add",
            "zhao",
            "--role",
            "dispatcher",
            "--scope",
            "371602",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = wangge(
        &[
            "user",
            "add",
            "zhao",
            "--role",
            "dispatcher",
            "--scope",
            "371602",
        ],
        "",
    );
    assert!(
        !o.status.success(),
        "a second user of the same name is refused"
    );
    let o = wangge(
        &["user", "add", "qian", "--role", "mayor", "--scope", "3716"],
        "",
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown role"));
    let o = wangge(&["token", "issue", "zhao", "--ttl", "30d"], "");
    let token = String::from_utf8(o.stdout).unwrap();
    assert_eq!(token.lines().count(), 1, "only the token: {token:?}");
    let token = token.trim().to_string();
    assert!(token.starts_with("wg_"));
    let (st, me) = get(&format!("{}/v1/me", s.url), Some(&token)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["grants"][0]["scope"], "371602");
    let login = client()
        .post(format!("{}/v1/auth/login", s.url))
        .json(&json!({"name": "zhao", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let o = wangge(
        &[
            "user", "grant", "zhao", "--role", "auditor", "--scope", "371602",
        ],
        "",
    );
    assert!(o.status.success());
    let o = wangge(&["user", "list"], "");
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("zhao\tpassword\tauditor@371602,dispatcher@371602")
    );
    let issued = wangge(&["token", "issue", "zhao"], "");
    assert!(issued.status.success());
    let fresh = String::from_utf8(issued.stdout).unwrap();
    // The token works before it is revoked: the 401 below is the revocation's.
    let (st, me) = get(&format!("{}/v1/me", s.url), Some(fresh.trim())).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "zhao");
    let o = wangge(&["token", "revoke-all", "zhao"], "");
    assert!(o.status.success());
    // The server remembers a checked token for 5 s: the revocation, made by another
    // process, reaches it within that (polled with a generous deadline, not timed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, _) = get(&format!("{}/v1/me", s.url), Some(fresh.trim())).await;
        if st == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(st, StatusCode::OK);
        assert!(
            Instant::now() < deadline,
            "revoked from another process, still accepted after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every command is audited where the account's auditors look: under its county
    // (an auditor of 371602 sees them; one of 371603 does not).
    let audit_under = |under: &str| {
        let store = b.store.clone();
        let under = under.to_string();
        async move {
            store
                .audit(&wangge::store::AuditQuery {
                    under: Some(under),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let county = audit_under("371602").await;
    let actions: Vec<&str> = county.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "user_add",
        "token_issue",
        "user_grant",
        "token_revoke",
        "login",
    ] {
        assert!(actions.contains(&a), "{a} not under 371602: {actions:?}");
    }
    assert!(
        county
            .iter()
            .filter(|e| e.action.starts_with("user_") || e.action.starts_with("token_"))
            .all(|e| e.actor == "cli" && e.detail["via"] == "cli"),
        "{county:?}"
    );
    assert!(
        audit_under("371603")
            .await
            .iter()
            .all(|e| e.resource != "users/zhao"),
        "another county's auditors see nothing of zhao"
    );
}
