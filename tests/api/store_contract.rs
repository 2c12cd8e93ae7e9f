//! One contract suite, run unchanged against both backends (`<test>::sqlite`,
//! `<test>::postgis`): regions, plan lifecycle, validation gating, dated history,
//! lineage, racing and failing activations, members, live index swaps.

use crate::backends::Backend;
use chrono::NaiveDate;
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::json;
use wangge::domain::{Grid, Layer, Level};
use wangge::store::{
    LineageKind, NewMember, PlanStatus, RegionRecord, Role, Store, StoreError, Validity,
};
use wangge::workflow::live::LiveGrids;
use wangge::workflow::plans::{self, DraftRequest, PlanError};

pub(crate) const COMMUNITY: &str = "371602001001";

pub(crate) fn poly(points: &[(f64, f64)]) -> MultiPolygon<f64> {
    let ring: Vec<Coord<f64>> = points.iter().map(|&(x, y)| Coord { x, y }).collect();
    MultiPolygon(vec![Polygon::new(LineString::from(ring), vec![])])
}

pub(crate) fn date(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

pub(crate) fn grid(name: &str, boundary: MultiPolygon<f64>, households: i64) -> Grid {
    let mut properties = serde_json::Map::new();
    properties.insert("households".into(), json!(households));
    Grid {
        id: String::new(),
        name: Some(name.into()),
        layer: Layer::Comprehensive,
        parent: Some(COMMUNITY.into()),
        ancestors: vec![],
        boundary,
        properties,
    }
}

/// Four quadrants of the community: NW, NE, SW, SE.
pub(crate) fn first_grids() -> Vec<Grid> {
    vec![
        grid(
            "NW",
            poly(&[
                (118.00, 37.31),
                (118.01, 37.31),
                (118.01, 37.32),
                (118.00, 37.32),
            ]),
            80,
        ),
        grid(
            "NE",
            poly(&[
                (118.01, 37.31),
                (118.02, 37.31),
                (118.02, 37.32),
                (118.01, 37.32),
            ]),
            50,
        ),
        grid(
            "SW",
            poly(&[
                (118.00, 37.30),
                (118.01, 37.30),
                (118.01, 37.31),
                (118.00, 37.31),
            ]),
            100,
        ),
        grid(
            "SE",
            poly(&[
                (118.01, 37.30),
                (118.02, 37.30),
                (118.02, 37.31),
                (118.01, 37.31),
            ]),
            70,
        ),
    ]
}

/// NW takes a strip of NE (both modified), SW splits in two, SE stays as it was.
pub(crate) fn second_grids(nw_name: &str) -> Vec<Grid> {
    vec![
        grid(
            nw_name,
            poly(&[
                (118.00, 37.31),
                (118.005, 37.31),
                (118.01, 37.31),
                (118.01, 37.315),
                (118.012, 37.315),
                (118.012, 37.32),
                (118.00, 37.32),
            ]),
            90,
        ),
        grid(
            "NE",
            poly(&[
                (118.01, 37.31),
                (118.02, 37.31),
                (118.02, 37.32),
                (118.012, 37.32),
                (118.012, 37.315),
                (118.01, 37.315),
            ]),
            45,
        ),
        grid(
            "SW-west",
            poly(&[
                (118.00, 37.30),
                (118.005, 37.30),
                (118.005, 37.31),
                (118.00, 37.31),
            ]),
            50,
        ),
        grid(
            "SW-east",
            poly(&[
                (118.005, 37.30),
                (118.01, 37.30),
                (118.01, 37.31),
                (118.005, 37.31),
            ]),
            50,
        ),
        grid(
            "SE",
            poly(&[
                (118.01, 37.30),
                (118.02, 37.30),
                (118.02, 37.31),
                (118.01, 37.31),
            ]),
            70,
        ),
    ]
}

pub(crate) async fn seed_regions(store: &dyn Store) {
    let region = |code: &str, name: &str, level, parent: Option<&str>, boundary| RegionRecord {
        code: code.into(),
        name: name.into(),
        level,
        parent_code: parent.map(str::to_string),
        boundary,
    };
    let square = poly(&[
        (118.00, 37.30),
        (118.02, 37.30),
        (118.02, 37.32),
        (118.00, 37.32),
    ]);
    store
        .upsert_regions(&[
            region(
                COMMUNITY,
                "黄河社区",
                Level::Community,
                Some("371602001"),
                Some(square.clone()),
            ),
            region(
                "371602001",
                "市中街道",
                Level::Township,
                Some("371602"),
                Some(square.clone()),
            ),
            region("371602", "滨城区", Level::County, Some("3716"), None),
            region("3716", "滨州市", Level::City, None, None),
        ])
        .await
        .expect("regions");
}

pub(crate) async fn approved_plan(store: &dyn Store, grids: Vec<Grid>, effective: &str) -> i64 {
    let plan = plans::draft(
        store,
        DraftRequest {
            scope_code: COMMUNITY.into(),
            layer: Layer::Comprehensive,
            title: format!("grids from {effective}"),
            effective_date: None,
            actor: "planner.li".into(),
            grids,
        },
    )
    .await
    .expect("draft");
    assert_eq!(plan.error_count, 0, "{}", plan.validation);
    plans::transition(
        store,
        plan.id,
        PlanStatus::Submitted,
        "planner.li",
        None,
        None,
    )
    .await
    .expect("submit");
    plans::transition(
        store,
        plan.id,
        PlanStatus::Approved,
        "county.wang",
        Some("checked on site".into()),
        Some(date(effective)),
    )
    .await
    .expect("approve");
    plan.id
}

async fn activate(store: &dyn Store, id: i64) -> Result<wangge::store::Activation, PlanError> {
    plans::activate(store, id, "city.zhao", date("2030-01-01"), None).await
}

async fn current_codes(store: &dyn Store) -> Vec<String> {
    store
        .grids(Validity::Current, Some(Layer::Comprehensive), None)
        .await
        .expect("grids")
        .into_iter()
        .map(|g| g.code)
        .collect()
}

pub(crate) fn code(seq: u32) -> String {
    format!("{COMMUNITY}{seq:03}")
}

async fn regions_are_upserted_and_listed_by_prefix(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let under = store.regions(Some("371602")).await.unwrap();
    let codes: Vec<&str> = under.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["371602", "371602001", COMMUNITY]);
    let community = &under[2];
    assert_eq!(community.name, "黄河社区");
    assert_eq!(community.parent_code.as_deref(), Some("371602001"));
    assert!(community.boundary.is_some());
    store
        .upsert_regions(&[RegionRecord {
            name: "黄河一路社区".into(),
            ..community.clone()
        }])
        .await
        .unwrap();
    let renamed = store.regions(Some(COMMUNITY)).await.unwrap();
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].name, "黄河一路社区");
    assert_eq!(renamed[0].boundary, community.boundary);
}

async fn a_plan_goes_from_draft_to_active_with_codes_in_reading_order(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let id = approved_plan(store, first_grids(), "2026-01-01").await;
    let grids = store.plan_grids(id).await.unwrap();
    let named: Vec<(String, String)> = grids
        .iter()
        .map(|g| (g.name.clone().unwrap(), g.code.clone()))
        .collect();
    assert_eq!(
        named,
        [
            ("NW", code(1)),
            ("NE", code(2)),
            ("SW", code(3)),
            ("SE", code(4))
        ]
        .map(|(n, c)| (n.to_string(), c))
    );
    assert_eq!(grids[2].households, Some(100));
    let done = activate(store, id).await.unwrap();
    assert_eq!((done.closed, done.inserted), (0, 4));
    assert_eq!(done.plan.status, PlanStatus::Active);
    assert_eq!(
        current_codes(store).await,
        (1..=4).map(code).collect::<Vec<_>>()
    );
    let events: Vec<(Option<PlanStatus>, PlanStatus, String)> = store
        .plan_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.from, e.to, e.actor))
        .collect();
    use PlanStatus::*;
    assert_eq!(
        events,
        [
            (None, Draft, "planner.li"),
            (Some(Draft), Submitted, "planner.li"),
            (Some(Submitted), Approved, "county.wang"),
            (Some(Approved), Active, "city.zhao"),
        ]
        .map(|(f, t, a)| (f, t, a.to_string()))
    );
    let lineage = store.plan_lineage(id).await.unwrap();
    assert!(
        lineage.iter().all(|l| l.kind == LineageKind::New),
        "{lineage:?}"
    );
}

async fn a_plan_with_validation_errors_cannot_be_submitted(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let mut grids = first_grids();
    // NW reaches 180 m into NE: an overlap.
    grids[0].boundary = poly(&[
        (118.00, 37.31),
        (118.012, 37.31),
        (118.012, 37.32),
        (118.00, 37.32),
    ]);
    let plan = plans::draft(
        store,
        DraftRequest {
            scope_code: COMMUNITY.into(),
            layer: Layer::Comprehensive,
            title: "overlapping".into(),
            effective_date: Some(date("2026-01-01")),
            actor: "planner.li".into(),
            grids,
        },
    )
    .await
    .unwrap();
    assert!(plan.error_count > 0);
    assert_eq!(plan.validation["valid"], json!(false));
    let kinds: Vec<&str> = plan.validation["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"overlap"), "{kinds:?}");
    let err = plans::transition(
        store,
        plan.id,
        PlanStatus::Submitted,
        "planner.li",
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PlanError::Store(StoreError::Refused(_))),
        "{err}"
    );
    assert_eq!(store.plan(plan.id).await.unwrap().status, PlanStatus::Draft);
    // Skipping review is refused too.
    let err = plans::transition(
        store,
        plan.id,
        PlanStatus::Approved,
        "county.wang",
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PlanError::Store(StoreError::Refused(_))),
        "{err}"
    );
    // Fixing the draft clears the errors and lets it through.
    let fixed = plans::revise(
        store,
        plan.id,
        "planner.li",
        first_grids(),
        "content replaced",
        None,
    )
    .await
    .unwrap();
    assert_eq!(fixed.error_count, 0);
    plans::transition(
        store,
        plan.id,
        PlanStatus::Submitted,
        "planner.li",
        None,
        None,
    )
    .await
    .unwrap();
}

async fn as_of_answers_across_two_activations(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let first = approved_plan(store, first_grids(), "2026-01-01").await;
    activate(store, first).await.unwrap();
    let second = approved_plan(store, second_grids("NW"), "2026-06-01").await;
    let done = activate(store, second).await.unwrap();
    assert_eq!((done.closed, done.inserted), (4, 5));
    assert_eq!(done.superseded, vec![first]);
    assert_eq!(
        store.plan(first).await.unwrap().status,
        PlanStatus::Superseded
    );

    // A point in the strip NE handed to NW.
    let strip = Coord {
        x: 118.011,
        y: 37.318,
    };
    let at = |d: &'static str| async move {
        store
            .grid_at(strip, date(d), Layer::Comprehensive)
            .await
            .unwrap()
            .map(|g| g.code)
    };
    assert_eq!(at("2025-12-31").await, None);
    assert_eq!(at("2026-01-01").await, Some(code(2)));
    assert_eq!(at("2026-05-31").await, Some(code(2)));
    assert_eq!(at("2026-06-01").await, Some(code(1)));
    assert_eq!(at("2027-01-01").await, Some(code(1)));

    let count = |d: &'static str| async move {
        store
            .grids(Validity::On(date(d)), None, Some(COMMUNITY))
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count("2026-03-01").await, 4);
    assert_eq!(count("2026-07-01").await, 5);
    // An interval holds every version in force on any of its days, both ends included.
    let during = |from: Option<&'static str>, to: Option<&'static str>| async move {
        store
            .grids(
                Validity::During {
                    from: from.map(date),
                    to: to.map(date),
                },
                None,
                Some(COMMUNITY),
            )
            .await
            .unwrap()
            .len()
    };
    assert_eq!(during(Some("2026-03-01"), Some("2026-05-31")).await, 4);
    assert_eq!(during(Some("2026-05-31"), Some("2026-06-01")).await, 9);
    assert_eq!(during(Some("2026-06-01"), None).await, 5);
    assert_eq!(during(None, Some("2025-12-31")).await, 0);
    assert_eq!(during(None, None).await, 9);
    assert_eq!(
        current_codes(store).await,
        [1, 2, 4, 5, 6].map(code).to_vec(),
        "SW's code 003 is retired, its halves get 005 and 006, SE keeps 004"
    );

    let history = store.grid_history(&code(1)).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].valid_to, Some(date("2026-06-01")));
    assert_eq!(history[1].valid_from, date("2026-06-01"));
    assert_eq!(history[1].valid_to, None);

    let sw = store.grid_lineage(&code(3)).await.unwrap();
    let mut to: Vec<(Option<String>, LineageKind)> = sw
        .iter()
        .filter(|l| l.from_code == Some(code(3)))
        .map(|l| (l.to_code.clone(), l.kind))
        .collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            (Some(code(5)), LineageKind::Split),
            (Some(code(6)), LineageKind::Split)
        ]
    );
    let kinds: Vec<(Option<String>, LineageKind)> = store
        .plan_lineage(second)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.from_code == l.to_code)
        .map(|l| (l.to_code, l.kind))
        .collect();
    assert!(
        kinds.contains(&(Some(code(1)), LineageKind::Modified)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Some(code(2)), LineageKind::Modified)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Some(code(4)), LineageKind::Unchanged)),
        "{kinds:?}"
    );
}

async fn racing_activations_one_wins_the_other_conflicts(b: Backend) {
    let store = b.store.clone();
    seed_regions(store.as_ref()).await;
    let first = approved_plan(store.as_ref(), first_grids(), "2026-01-01").await;
    activate(store.as_ref(), first).await.unwrap();
    let a = approved_plan(store.as_ref(), second_grids("NW-a"), "2026-06-01").await;
    let b2 = approved_plan(store.as_ref(), second_grids("NW-b"), "2026-06-01").await;
    // Released together by a barrier, so the two activations overlap for real.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let (sa, sb) = (store.clone(), store.clone());
    let (ba, bb) = (barrier.clone(), barrier.clone());
    let ta = tokio::spawn(async move {
        ba.wait().await;
        activate(sa.as_ref(), a).await
    });
    let tb = tokio::spawn(async move {
        bb.wait().await;
        activate(sb.as_ref(), b2).await
    });
    let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
    let (winner, loser) = match (&ra, &rb) {
        (Ok(_), Err(e)) => (a, e),
        (Err(e), Ok(_)) => (b2, e),
        other => panic!("exactly one activation must win: {other:?}"),
    };
    assert!(
        matches!(loser, PlanError::Store(StoreError::Conflict(_))),
        "the loser gets a conflict: {loser}"
    );
    let current = store.grids(Validity::Current, None, None).await.unwrap();
    assert_eq!(current.len(), 5);
    assert!(current.iter().all(|g| g.plan_id == Some(winner)));
    let nw_name = if winner == a { "NW-a" } else { "NW-b" };
    assert!(current.iter().any(|g| g.name.as_deref() == Some(nw_name)));
    let loser_id = if winner == a { b2 } else { a };
    assert_eq!(
        store.plan(loser_id).await.unwrap().status,
        PlanStatus::Approved
    );
    // Trying again later still conflicts: the plan was drawn against grids now gone.
    let again = activate(store.as_ref(), loser_id).await.unwrap_err();
    assert!(
        matches!(again, PlanError::Store(StoreError::Conflict(_))),
        "{again}"
    );
}

async fn a_failed_activation_leaves_the_previous_grids_current(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let first = approved_plan(store, first_grids(), "2026-01-01").await;
    activate(store, first).await.unwrap();
    let before = store.grids(Validity::Current, None, None).await.unwrap();
    let second = approved_plan(store, second_grids("boom"), "2026-06-01").await;
    // A real database failure part-way: after the old grids were closed, inserting the
    // grid named "boom" aborts.
    b.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON grid_versions WHEN NEW.name = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.name = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER boom BEFORE INSERT ON grid_versions FOR EACH ROW EXECUTE FUNCTION boom();",
    )
    .await;
    let err = activate(store, second).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(
        store.grids(Validity::Current, None, None).await.unwrap(),
        before
    );
    assert_eq!(
        store.plan(second).await.unwrap().status,
        PlanStatus::Approved
    );
    assert_eq!(store.plan(first).await.unwrap().status, PlanStatus::Active);
    assert_eq!(store.grid_history(&code(1)).await.unwrap().len(), 1);
    // Nothing was half-applied: once the fault is gone the same plan activates.
    b.execute("DROP TRIGGER boom;", "DROP TRIGGER boom ON grid_versions;")
        .await;
    let done = activate(store, second).await.unwrap();
    assert_eq!((done.closed, done.inserted), (4, 5));
}

async fn a_plan_cannot_be_activated_before_its_effective_date(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let id = approved_plan(store, first_grids(), "2026-01-01").await;
    let err = plans::activate(store, id, "city.zhao", date("2025-12-31"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, PlanError::NotYetEffective { .. }), "{err}");
    assert!(current_codes(store).await.is_empty());
    // A draft cannot be activated at all.
    let draft = plans::draft(
        store,
        DraftRequest {
            scope_code: COMMUNITY.into(),
            layer: Layer::Comprehensive,
            title: "draft".into(),
            effective_date: Some(date("2026-01-01")),
            actor: "planner.li".into(),
            grids: first_grids(),
        },
    )
    .await
    .unwrap();
    let err = activate(store, draft.id).await.unwrap_err();
    assert!(
        matches!(err, PlanError::Store(StoreError::Conflict(_))),
        "{err}"
    );
}

async fn impact_preview_lists_changes_members_and_households(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let first = approved_plan(store, first_grids(), "2026-01-01").await;
    activate(store, first).await.unwrap();
    let member = store
        .add_member(
            &NewMember {
                scope_code: code(3),
                role: Role::FullTime,
                name: "张敏".into(),
                phone: Some("13800000003".into()),
                duty_schedule: json!([{"weekday": 1, "from": "08:30", "to": "17:30"}]),
            },
            None,
        )
        .await
        .unwrap();
    store
        .add_member(
            &NewMember {
                scope_code: code(4),
                role: Role::GridLeader,
                name: "李强".into(),
                phone: None,
                duty_schedule: json!([]),
            },
            None,
        )
        .await
        .unwrap();
    let second = approved_plan(store, second_grids("NW"), "2026-06-01").await;
    let impact = plans::impact(store, second).await.unwrap();
    assert_eq!(impact.added, vec![code(5), code(6)]);
    assert_eq!(impact.removed, vec![code(3)]);
    assert_eq!(impact.unchanged, 1);
    let changed: Vec<&str> = impact.changed.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(changed, [code(1), code(2)]);
    // The strip is 0.002° × 0.005° ≈ 177 m × 555 m.
    let strip = impact.changed[0].area_gained_m2;
    assert!((90_000.0..105_000.0).contains(&strip), "{strip}");
    assert!((impact.changed[1].area_lost_m2 - strip).abs() < 1.0);
    assert_eq!(impact.members_moving.len(), 1);
    let moving = &impact.members_moving[0];
    assert_eq!(
        (moving.member_id, moving.from_code.as_str()),
        (member, code(3).as_str())
    );
    assert!([Some(code(5)), Some(code(6))].contains(&moving.to_code));
    // All of SW's 100 households change grid, and a tenth of NE's 50.
    let h = impact.households_moving_estimate;
    assert!((100.0..=110.0).contains(&h), "{h}");
    // Per grid: the tenth of NE's households goes with its strip to NW.
    let (nw, ne) = (&impact.changed[0], &impact.changed[1]);
    assert!((4.0..=6.0).contains(&ne.households_lost_estimate), "{ne:?}");
    assert!((nw.households_gained_estimate - ne.households_lost_estimate).abs() < 0.01);
    assert_eq!(
        (nw.households_lost_estimate, ne.households_gained_estimate),
        (0.0, 0.0)
    );
}

async fn members_and_supervision_phones_are_kept(b: Backend) {
    let store = b.store.as_ref();
    let id = store
        .add_member(
            &NewMember {
                scope_code: code(1),
                role: Role::GridLeader,
                name: "王芳".into(),
                phone: Some("13900000001".into()),
                duty_schedule: json!([{"weekday": 6, "from": "09:00", "to": "12:00"}]),
            },
            None,
        )
        .await
        .unwrap();
    store
        .add_member(
            &NewMember {
                scope_code: COMMUNITY.into(),
                role: Role::TeamMember,
                name: "赵磊".into(),
                phone: None,
                duty_schedule: json!([]),
            },
            None,
        )
        .await
        .unwrap();
    let members = store.members(&code(1)).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, id);
    assert_eq!(members[0].role, Role::GridLeader);
    assert_eq!(members[0].duty_schedule[0]["weekday"], json!(6));
    assert_eq!(store.members(COMMUNITY).await.unwrap()[0].name, "赵磊");
    let chain = [code(1), COMMUNITY.to_string(), "371602".to_string()];
    assert_eq!(store.supervision_phone(&chain).await.unwrap(), None);
    store
        .set_supervision_phone("371602", "0543-12345")
        .await
        .unwrap();
    assert_eq!(
        store.supervision_phone(&chain).await.unwrap().as_deref(),
        Some("0543-12345")
    );
    store
        .set_supervision_phone(&code(1), "0543-11111")
        .await
        .unwrap();
    assert_eq!(
        store.supervision_phone(&chain).await.unwrap().as_deref(),
        Some("0543-11111")
    );
}

async fn activation_swaps_the_live_lookup_snapshot(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let first = approved_plan(store, first_grids(), "2026-01-01").await;
    activate(store, first).await.unwrap();
    let live = LiveGrids::load(store).await.unwrap();
    let strip = Coord {
        x: 118.011,
        y: 37.318,
    };
    let before = live.snapshot();
    let answer = before
        .locator
        .locate(strip, Default::default(), &Default::default());
    assert_eq!(answer.grid.as_ref().map(|g| g.id.clone()), Some(code(2)));
    assert_eq!(answer.ancestors[0].name.as_deref(), Some("黄河社区"));
    let second = approved_plan(store, second_grids("NW"), "2026-06-01").await;
    plans::activate(store, second, "city.zhao", date("2026-06-01"), Some(&live))
        .await
        .unwrap();
    let after = live
        .snapshot()
        .locator
        .locate(strip, Default::default(), &Default::default());
    assert_eq!(after.grid.map(|g| g.id), Some(code(1)));
    // A reader that started before the swap keeps a consistent old snapshot.
    let old = before
        .locator
        .locate(strip, Default::default(), &Default::default());
    assert_eq!(old.grid.map(|g| g.id), Some(code(2)));
}

async fn due_plans_activate_in_date_order_and_future_ones_wait(b: Backend) {
    let store = b.store.as_ref();
    seed_regions(store).await;
    let due = |d: &'static str| async move {
        plans::activate_due(store, "cron", date(d), None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, r)| (id, r.is_ok()))
            .collect::<Vec<_>>()
    };
    let first = approved_plan(store, first_grids(), "2026-01-01").await;
    assert!(due("2025-12-31").await.is_empty(), "not due yet");
    assert_eq!(due("2026-01-15").await, vec![(first, true)]);
    // Drawn against the January grids, approved for June: it waits until June.
    let later = approved_plan(store, second_grids("NW"), "2026-06-01").await;
    assert!(due("2026-03-01").await.is_empty());
    assert_eq!(
        store.plan(later).await.unwrap().status,
        PlanStatus::Approved
    );
    assert_eq!(due("2026-06-01").await, vec![(later, true)]);
    assert_eq!(current_codes(store).await.len(), 5);
}

crate::contract!(
    due_plans_activate_in_date_order_and_future_ones_wait,
    regions_are_upserted_and_listed_by_prefix,
    a_plan_goes_from_draft_to_active_with_codes_in_reading_order,
    a_plan_with_validation_errors_cannot_be_submitted,
    as_of_answers_across_two_activations,
    racing_activations_one_wins_the_other_conflicts,
    a_failed_activation_leaves_the_previous_grids_current,
    a_plan_cannot_be_activated_before_its_effective_date,
    impact_preview_lists_changes_members_and_households,
    members_and_supervision_phones_are_kept,
    activation_swaps_the_live_lookup_snapshot,
);
