//! A plan replaces every grid under its scope, so it must tile every community there:
//! a township plan holding one community's grids is an `uncovered` error for each other
//! community (CLI dry run, upload and impact alike), and the store refuses to activate
//! such a plan even if its validation was somehow bypassed.

use crate::backends::Backend;
use crate::service::{Server, as_geojson, get, user};
use crate::store_contract::{
    COMMUNITY, approved_plan, date, first_grids, grid, poly, seed_regions,
};
use reqwest::StatusCode;
use serde_json::Value;
use wangge::domain::{Grid, Layer, Level, UserRole};
use wangge::store::{PlanStatus, RegionRecord, Store, StoreError, Validity};
use wangge::workflow::plans::{self, DraftRequest, PlanError};

const TOWNSHIP: &str = "371602001";
const SECOND: &str = "371602001002";

/// The contract suite's township, widened east by a second community.
async fn two_communities(store: &dyn Store) {
    seed_regions(store).await;
    let region = |code: &str, name: &str, level, parent: &str, boundary| RegionRecord {
        code: code.into(),
        name: name.into(),
        level,
        parent_code: Some(parent.into()),
        boundary: Some(boundary),
    };
    store
        .upsert_regions(&[
            region(
                SECOND,
                "东风社区",
                Level::Community,
                TOWNSHIP,
                poly(&[
                    (118.02, 37.30),
                    (118.04, 37.30),
                    (118.04, 37.32),
                    (118.02, 37.32),
                ]),
            ),
            region(
                TOWNSHIP,
                "市中街道",
                Level::Township,
                "371602",
                poly(&[
                    (118.00, 37.30),
                    (118.04, 37.30),
                    (118.04, 37.32),
                    (118.00, 37.32),
                ]),
            ),
        ])
        .await
        .expect("regions");
}

/// The second community's four quadrants.
fn second_grids() -> Vec<Grid> {
    let quadrant = |name: &str, x: f64, y: f64, households| {
        let mut g = grid(
            name,
            poly(&[(x, y), (x + 0.01, y), (x + 0.01, y + 0.01), (x, y + 0.01)]),
            households,
        );
        g.parent = Some(SECOND.into());
        g
    };
    vec![
        quadrant("E-NW", 118.02, 37.31, 10),
        quadrant("E-NE", 118.03, 37.31, 20),
        quadrant("E-SW", 118.02, 37.30, 30),
        quadrant("E-SE", 118.03, 37.30, 40),
    ]
}

async fn activate_both(store: &dyn Store) {
    let first = approved_plan(store, first_grids(), "2026-01-01").await;
    plans::activate(store, first, "city.zhao", date("2030-01-01"), None)
        .await
        .expect("first community");
    let plan = plans::draft(
        store,
        DraftRequest {
            scope_code: SECOND.into(),
            layer: Layer::Comprehensive,
            title: "second community".into(),
            effective_date: None,
            actor: "planner.li".into(),
            grids: second_grids(),
        },
    )
    .await
    .expect("draft second");
    assert_eq!(plan.error_count, 0, "{}", plan.validation);
    for (to, who) in [
        (PlanStatus::Submitted, "planner.li"),
        (PlanStatus::Approved, "county.wang"),
    ] {
        plans::transition(
            store,
            plan.id,
            to,
            who,
            Some("ok".into()),
            Some(date("2026-01-01")),
        )
        .await
        .expect("step");
    }
    plans::activate(store, plan.id, "city.zhao", date("2030-01-01"), None)
        .await
        .expect("second community");
}

async fn current_in_second(store: &dyn Store) -> usize {
    store
        .grids(Validity::Current, Some(Layer::Comprehensive), Some(SECOND))
        .await
        .expect("grids")
        .len()
}

fn uncovered(validation: &Value) -> Vec<&Value> {
    validation["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter(|p| p["kind"] == "uncovered")
        .collect()
}

pub async fn a_township_plan_with_one_communitys_grids_cannot_delete_the_others(b: Backend) {
    let store = b.store.as_ref();
    two_communities(store).await;
    activate_both(store).await;
    assert_eq!(current_in_second(store).await, 4);

    // Drafted in the library: an error naming the community, its losses and the fix.
    let plan = plans::draft(
        store,
        DraftRequest {
            scope_code: TOWNSHIP.into(),
            layer: Layer::Comprehensive,
            title: "only the first community".into(),
            effective_date: None,
            actor: "planner.li".into(),
            grids: first_grids(),
        },
    )
    .await
    .expect("draft");
    assert!(plan.error_count >= 1, "{}", plan.validation);
    assert_eq!(plan.validation["valid"], false);
    let found = uncovered(&plan.validation);
    assert_eq!(found.len(), 1, "{}", plan.validation);
    let p = found[0];
    assert_eq!(p["parent"], SECOND);
    assert!(
        (p["area_m2"].as_f64().unwrap() - 3.93e6).abs() < 0.2e6,
        "{p}"
    );
    let detail = p["detail"].as_str().unwrap();
    for expected in [
        SECOND,
        "东风社区",
        "4 grid(s)",
        "100 household(s)",
        COMMUNITY,
    ] {
        assert!(detail.contains(expected), "{expected:?} in {detail}");
    }
    // The impact lists what the community would lose.
    let impact = plans::impact(store, plan.id).await.expect("impact");
    assert_eq!(impact.uncovered_communities.len(), 1);
    assert_eq!(impact.uncovered_communities[0].community_code, SECOND);
    assert_eq!(impact.uncovered_communities[0].grids_lost.len(), 4);
    assert_eq!(impact.uncovered_communities[0].households_lost, 100);
    // It cannot be submitted.
    let refused = plans::transition(
        store,
        plan.id,
        PlanStatus::Submitted,
        "planner.li",
        None,
        None,
    )
    .await;
    assert!(refused.is_err(), "a plan with errors cannot be submitted");

    // Even forced past validation (as if the rule were skipped), the store refuses to
    // activate it, and the second community keeps its grids.
    let force = format!(
        "UPDATE plans SET status = 'approved', error_count = 0, effective_date = '2026-01-01' WHERE id = {}",
        plan.id
    );
    b.execute(&force, &force).await;
    let refused = plans::activate(store, plan.id, "city.zhao", date("2030-01-01"), None).await;
    match refused {
        Err(PlanError::Store(StoreError::Refused(m))) => assert!(m.en().contains(SECOND), "{m}"),
        other => panic!("activation of a partial plan: {other:?}"),
    }
    assert_eq!(current_in_second(store).await, 4, "nothing was removed");
    assert_eq!(
        store.plan(plan.id).await.unwrap().status,
        PlanStatus::Approved
    );
}

pub async fn a_partial_plan_is_reported_the_same_by_the_cli_and_the_api(b: Backend) {
    let store = b.store.as_ref();
    two_communities(store).await;
    activate_both(store).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one_community.geojson");
    std::fs::write(&file, as_geojson(first_grids())).unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["import", "grids"])
        .arg(&file)
        .args(["--scope", TOWNSHIP, "--dry-run", "--json"])
        .env("DATABASE_URL", &b.url)
        .output()
        .expect("wangge import");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(!out.status.success(), "a dry run with errors fails");
    let text = report.to_string();
    assert!(text.contains("\"uncovered\""), "{text}");
    assert!(text.contains(SECOND), "{text}");

    let planner = user(store, "li", UserRole::Planner, TOWNSHIP).await;
    let s = Server::start(&b.url, &[]);
    let form = reqwest::multipart::Form::new()
        .text("scope", TOWNSHIP)
        .part(
            "file",
            reqwest::multipart::Part::text(as_geojson(first_grids())).file_name("one.geojson"),
        );
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/plans", s.url))
        .bearer_auth(&planner)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let plan: Value = resp.json().await.unwrap();
    let id = plan["id"].as_i64().unwrap();
    let (_, validation) = get(
        &format!("{}/v1/plans/{id}/validation", s.url),
        Some(&planner),
    )
    .await;
    assert_eq!(uncovered(&validation).len(), 1, "{validation}");
    let (_, impact) = get(&format!("{}/v1/plans/{id}/impact", s.url), Some(&planner)).await;
    assert_eq!(
        impact["uncovered_communities"][0]["community_code"], SECOND,
        "{impact}"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/plans/{id}/submit", s.url))
        .bearer_auth(&planner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(current_in_second(store).await, 4);
}

/// A community tiled by irregular synthetic grids (coordinates with every decimal).
async fn irregular_community(store: &dyn Store) {
    seed_regions(store).await;
    // Slanted edges with every decimal: rounded coordinates would leave them.
    let quad = poly(&[
        (118.000_314_159_265_3, 37.300_271_828_182_8),
        (118.019_732_050_807_5, 37.301_414_213_562_3),
        (118.021_236_067_977_4, 37.319_162_277_660_1),
        (118.001_645_751_311_06, 37.318_605_551_275_4),
    ]);
    let region = |code: &str, name: &str, level, parent: &str| RegionRecord {
        code: code.into(),
        name: name.into(),
        level,
        parent_code: Some(parent.into()),
        boundary: Some(quad.clone()),
    };
    store
        .upsert_regions(&[
            region(COMMUNITY, "黄河社区", Level::Community, TOWNSHIP),
            region(TOWNSHIP, "市中街道", Level::Township, "371602"),
        ])
        .await
        .expect("regions");
    let tiling = wangge::spatial::synth::tile(
        &quad,
        12,
        &wangge::spatial::synth::SynthOptions {
            seed: 7,
            densify: 3,
            ..Default::default()
        },
    )
    .expect("tiling");
    let grids: Vec<Grid> = tiling
        .cells
        .into_iter()
        .enumerate()
        .map(|(i, cell)| grid(&format!("G{i}"), cell, 10 + i as i64))
        .collect();
    let id = approved_plan(store, grids, "2026-01-01").await;
    plans::activate(store, id, "city.zhao", date("2030-01-01"), None)
        .await
        .expect("activate");
}

pub async fn an_export_reimports_to_the_same_boundaries_in_every_format(b: Backend) {
    irregular_community(b.store.as_ref()).await;
    let dir = tempfile::tempdir().unwrap();
    let wangge = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wangge"))
            .args(args)
            .env("DATABASE_URL", &b.url)
            .output()
            .expect("wangge")
    };
    for ext in ["geojson", "gpkg", "shp"] {
        let file = dir.path().join(format!("town.{ext}"));
        let file = file.to_str().unwrap();
        let out = wangge(&["export", file, "--under", TOWNSHIP]);
        assert!(
            out.status.success(),
            "export {ext}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = wangge(&[
            "import",
            "grids",
            file,
            "--scope",
            TOWNSHIP,
            "--dry-run",
            "--json",
        ]);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{ext}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(report["valid"], true, "{ext} re-imports valid: {report}");
        assert!(out.status.success(), "{ext}");
    }
    // Dates are dates, not text.
    let info = std::process::Command::new("ogrinfo")
        .args(["-so", "-al"])
        .arg(dir.path().join("town.gpkg"))
        .output()
        .expect("ogrinfo");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("valid_from: Date"), "{info}");
}

crate::contract!(
    a_township_plan_with_one_communitys_grids_cannot_delete_the_others,
    a_partial_plan_is_reported_the_same_by_the_cli_and_the_api,
    an_export_reimports_to_the_same_boundaries_in_every_format,
);
