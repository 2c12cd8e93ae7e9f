//! Attributes never vanish silently: a file whose name and household fields wangge does
//! not recognise uploads with warnings naming the fields that could fill them, and the
//! planner chooses them for the stored draft (`POST /v1/plans/{id}/mapping`) without
//! uploading again. Undecodable text and coordinates without a CRS are explained in the
//! words of the caller (form fields for the API, flags for the CLI), with the encoding
//! and the Gauss–Krüger zone that fit.

use crate::backends::Backend;
use crate::service::{Server, as_geojson, client, get, seeded, user};
use crate::store_contract::{COMMUNITY, second_grids};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use wangge::domain::UserRole;
use wangge::store::AuditQuery;

/// The contract suite's second plan with its names under `标注` and its household
/// counts under `住户`: neither is a field wangge reads by default.
fn renamed_geojson() -> String {
    let mut fc: Value = serde_json::from_str(&as_geojson(second_grids("西北网格"))).unwrap();
    for (i, f) in fc["features"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        f["id"] = json!(format!("G{i}"));
        let p = f["properties"].as_object_mut().unwrap();
        let name = p.insert("grid_id".into(), json!(format!("G{i}"))).unwrap();
        let households = p.remove("households").unwrap();
        // A field whose names would read backwards on the public card.
        p.insert(
            "花名".into(),
            json!(format!("\u{202e}{}", name.as_str().unwrap_or_default())),
        );
        p.insert("标注".into(), name);
        p.insert("负数".into(), json!(-5));
        p.insert("假社区".into(), json!("371602001999"));
        p.insert("住户".into(), households);
    }
    fc.to_string()
}

async fn upload(url: &str, token: &str, body: String) -> (StatusCode, Value) {
    crate::service::upload(url, token, COMMUNITY, body).await
}

async fn remap(url: &str, token: &str, id: i64, body: Value) -> (StatusCode, Value) {
    crate::service::post(&format!("{url}/v1/plans/{id}/mapping"), token, body).await
}

async fn an_unmapped_name_is_warned_and_chosen_without_uploading_again(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let planner = user(store, "li", UserRole::Planner, "371602001").await;
    let elsewhere = user(store, "wu", UserRole::Planner, "371603001").await;
    let s = Server::start(&b.url, &[]);

    let (st, plan) = upload(&s.url, &planner, renamed_geojson()).await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_i64().unwrap();
    assert_eq!(plan["error_count"], 0, "{plan}");
    // Names, households, and a field that looks like community codes.
    assert_eq!(plan["warning_count"], 3, "{plan}");
    let (_, validation) = get(
        &format!("{}/v1/plans/{id}/validation", s.url),
        Some(&planner),
    )
    .await;
    let mapping = &validation["mapping"];
    let warned = |role: &str| {
        mapping["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["role"] == role)
            .cloned()
            .unwrap_or_else(|| panic!("no {role} warning: {mapping}"))
    };
    let name = warned("name");
    assert_eq!(name["candidates"][0]["field"], "标注", "{name}");
    assert_eq!(name["candidates"][0]["sample"], "西北网格", "{name}");
    assert!(
        name["detail"].as_str().unwrap().contains("name_field"),
        "{name}"
    );
    assert_eq!(warned("households")["candidates"][0]["field"], "住户");
    assert_eq!(warned("parent")["candidates"][0]["field"], "假社区");
    let grids = store.plan_grids(id).await.unwrap();
    assert!(grids.iter().all(|g| g.name.is_none()), "{grids:?}");

    // Refused, and nothing changes: a field the file does not have, another
    // township's planner, nothing chosen.
    let events = store.plan_events(id).await.unwrap().len();
    let (st, problem) = remap(&s.url, &planner, id, json!({"name_field": "名称"})).await;
    assert!(st.is_client_error(), "{st} {problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("标注"),
        "the refusal lists the file's fields: {problem}"
    );
    let (st, _) = remap(&s.url, &elsewhere, id, json!({"name_field": "标注"})).await;
    assert!(
        st == StatusCode::NOT_FOUND || st == StatusCode::FORBIDDEN,
        "{st}"
    );
    let (st, problem) = remap(&s.url, &planner, id, json!({})).await;
    assert!(st.is_client_error(), "{st} {problem}");
    // A choice is a command, not an upload: a large body is refused unread.
    let huge = json!({"name_field": "A".repeat(2 << 20)});
    let (st, _) = remap(&s.url, &planner, id, huge).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // Households are counts; a declared community must be one that exists.
    let (st, problem) = remap(&s.url, &planner, id, json!({"households_field": "负数"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("-5"),
        "{problem}"
    );
    let (st, problem) = remap(&s.url, &planner, id, json!({"parent_field": "假社区"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("371602001999"),
        "{problem}"
    );
    // Names are held to the rules names have everywhere: no direction override.
    let (st, problem) = remap(&s.url, &planner, id, json!({"name_field": "花名"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "urn:wangge:problem:bad-plan", "{problem}");
    assert_eq!(store.plan_events(id).await.unwrap().len(), events);
    assert!(
        store
            .plan_grids(id)
            .await
            .unwrap()
            .iter()
            .all(|g| g.name.is_none())
    );

    // Chosen: the same draft now has its names and households, and no warning.
    let (st, revised) = remap(
        &s.url,
        &planner,
        id,
        json!({"name_field": "标注", "households_field": "住户"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{revised}");
    assert_eq!(revised["id"], id);
    // Communities are now those the grids were assigned (by location): no warning.
    assert_eq!(revised["warning_count"], 0, "{revised}");
    assert_eq!(revised["error_count"], 0, "{revised}");
    let grids = store.plan_grids(id).await.unwrap();
    let nw = grids
        .iter()
        .find(|g| g.name.as_deref() == Some("西北网格"))
        .unwrap_or_else(|| panic!("{grids:?}"));
    assert_eq!(nw.households, Some(90));
    assert!(grids.iter().all(|g| g.households.is_some()), "{grids:?}");
    let (_, validation) = get(
        &format!("{}/v1/plans/{id}/validation", s.url),
        Some(&planner),
    )
    .await;
    assert_eq!(
        validation["mapping"]["used"]["name"], "标注",
        "{validation}"
    );
    assert_eq!(validation["mapping"]["warnings"], json!([]), "{validation}");
    // Audited as a revision naming the choice.
    let log = store
        .audit(&AuditQuery {
            under: None,
            actor: None,
            after_id: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let row = log
        .iter()
        .find(|e| e.action == "plan_revise" && e.resource == format!("plans/{id}"))
        .unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(row.actor, "li");
    assert_eq!(row.detail["mapping"]["name_field"], "标注", "{row:?}");

    // Only a draft is re-mapped.
    let submitted = client()
        .post(format!("{}/v1/plans/{id}/submit", s.url))
        .bearer_auth(&planner)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), StatusCode::OK);
    let (st, _) = remap(&s.url, &planner, id, json!({"name_field": "标注"})).await;
    assert_eq!(st, StatusCode::CONFLICT);

    // Approved without a date, it takes effect from today and can be activated.
    let county = user(store, "wang", UserRole::Planner, "371602").await;
    let step = |name: &str| {
        client()
            .post(format!("{}/v1/plans/{id}/{name}", s.url))
            .bearer_auth(&county)
            .json(&json!({}))
            .send()
    };
    let approved: Value = step("approve").await.unwrap().json().await.unwrap();
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(
        approved["effective_date"],
        wangge::domain::date_in_china(chrono::Utc::now()).to_string()
    );
    let active = step("activate").await.unwrap();
    assert_eq!(active.status(), StatusCode::OK);
}

crate::contract!(an_unmapped_name_is_warned_and_chosen_without_uploading_again);

/// `src` (GeoJSON) written as a Shapefile in Gauss–Krüger metres without a zone number
/// (EPSG:4548) with GBK text, as a planner's desktop tool would.
fn gbk_gauss_kruger_shapefile(src: &Path, shp: &Path) {
    let o = Command::new("ogr2ogr")
        .args([
            "-f",
            "ESRI Shapefile",
            "-t_srs",
            "EPSG:4548",
            "-lco",
            "ENCODING=CP936",
        ])
        .arg(shp)
        .arg(src)
        .output()
        .expect("ogr2ogr (gdal-bin)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn run(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("WANGGE_ACTOR", "test")
        .output()
        .expect("wangge runs")
}

fn said(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A planner's Shapefile as they come: GBK text and Chinese field names, no `.cpg`, no
/// `.prj`, Gauss–Krüger metres without the zone number (EPSG:4548). `validate` says what
/// each problem is in flags: the encoding the bytes read as, the zone the parents lie in,
/// then the fields that could give names; each step fixes what it names.
#[test]
fn validate_explains_a_bare_gbk_shapefile_step_by_step_in_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).display().to_string();
    let mut fc: Value = serde_json::from_str(&as_geojson(second_grids("西北网格"))).unwrap();
    for f in fc["features"].as_array_mut().unwrap() {
        let p = f["properties"].as_object_mut().unwrap();
        let name = p["grid_id"].clone();
        p.clear();
        // No feature id either: GDAL would make it the first field.
        p.insert("编号".into(), name.clone());
        p.insert("标注".into(), name);
        f.as_object_mut().unwrap().remove("id");
    }
    std::fs::write(path("grids.geojson"), fc.to_string()).unwrap();
    let parent = json!({"type": "FeatureCollection", "features": [{"type": "Feature",
        "properties": {"code": COMMUNITY},
        "geometry": {"type": "Polygon", "coordinates": [[[118.0, 37.3], [118.02, 37.3],
            [118.02, 37.32], [118.0, 37.32], [118.0, 37.3]]]}}]});
    std::fs::write(path("parent.geojson"), parent.to_string()).unwrap();
    gbk_gauss_kruger_shapefile(
        &dir.path().join("grids.geojson"),
        &dir.path().join("grids.shp"),
    );
    std::fs::remove_file(path("grids.cpg")).unwrap();
    std::fs::remove_file(path("grids.prj")).unwrap();
    let db = dir.path().join("unused.db");
    let shp = path("grids.shp");
    let parent_file = path("parent.geojson");

    let o = run(&db, &["validate", &shp, "--parent", &parent_file]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"标注\"") && err.contains("read as GBK: pass --encoding GBK"),
        "the field is named as decoded, and the flag given: {err}"
    );

    let o = run(
        &db,
        &[
            "validate",
            &shp,
            "--parent",
            &parent_file,
            "--encoding",
            "GBK",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("without the zone number") && err.contains("pass --crs EPSG:4548"),
        "{err}"
    );
    // Without parents nothing tells where the file lies: no zone is guessed.
    let o = run(&db, &["validate", &shp, "--encoding", "GBK"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot be told") && !err.contains("pass --crs EPSG"),
        "{err}"
    );

    let base = [
        "validate",
        shp.as_str(),
        "--parent",
        parent_file.as_str(),
        "--encoding",
        "GBK",
        "--crs",
        "EPSG:4548",
        "--json",
    ];
    let o = run(&db, &base);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(&o)));
    assert_eq!(report["valid"], true, "{report}");
    let warnings = report["mapping"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["role"], "name");
    let candidates: Vec<&str> = warnings[0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(candidates.contains(&"标注"), "{candidates:?}");
    assert!(
        warnings[0]["detail"]
            .as_str()
            .unwrap()
            .contains("--name-field"),
        "{report}"
    );
    let mut named = base.to_vec();
    named.extend(["--name-field", "标注"]);
    let o = run(&db, &named);
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(&o)));
    assert_eq!(report["mapping"]["warnings"], json!([]), "{report}");
    assert_eq!(report["mapping"]["used"]["name"], "标注", "{report}");
}

/// The same bare Shapefile uploaded: the advice names the form fields, and the zone
/// comes from where the plan's scope lies.
async fn an_upload_is_advised_in_form_fields(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let planner = user(store, "li", UserRole::Planner, "371602001").await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("draft.geojson");
    std::fs::write(&src, as_geojson(second_grids("西北网格"))).unwrap();
    let shp = dir.path().join("draft.shp");
    gbk_gauss_kruger_shapefile(&src, &shp);
    let zip = dir.path().join("draft.zip");
    // No .cpg, no .prj.
    crate::helpers::zip_shapefile_parts(&shp, &["shp", "shx", "dbf"], &zip);
    let s = Server::start(&b.url, &[]);
    let send = |fields: &[(&str, &str)]| {
        let mut form = reqwest::multipart::Form::new()
            .text("scope", COMMUNITY)
            .part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(&zip).unwrap())
                    .file_name("draft.zip"),
            );
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        client()
            .post(format!("{}/v1/plans", s.url))
            .bearer_auth(&planner)
            .multipart(form)
            .send()
    };
    let plans_before = store.plans(None, None).await.unwrap().len();
    let r = send(&[]).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = r.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("set the form field `encoding` to GBK") && !detail.contains("--"),
        "{problem}"
    );
    let r = send(&[("encoding", "GBK")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = r.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("set the form field `crs` to EPSG:4548") && !detail.contains("--"),
        "{problem}"
    );
    assert_eq!(store.plans(None, None).await.unwrap().len(), plans_before);
    let r = send(&[("encoding", "GBK"), ("crs", "EPSG:4548")])
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}

crate::contract!(an_upload_is_advised_in_form_fields);
