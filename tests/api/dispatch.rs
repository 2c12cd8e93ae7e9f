//! Dispatch (Art. 10–12) on both backends: whole cases through every path with exact
//! assessment figures, the matters list's versions, the calendar, races, and the
//! service as clients meet it (intake, steps, streams, webhooks, Open311, a crash).

use crate::backends::Backend;
use crate::service::seeded;
use crate::store_contract::code;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use wangge::auth::Principal;
use wangge::domain::{
    CaseSource, CaseState, Category, CentreLevel, Grant, TimeLimit, TimeUnit, UserRole,
};
use wangge::store::{Department, NewMatter, Store, StoreError};
use wangge::workflow::calendar::{DayKind, china};
use wangge::workflow::dispatch::{
    self, Actor, Command, Contact, DispatchError, Report, Reporter, SweepSettings,
};
use wangge::workflow::live::LiveGrids;

pub const TOWNSHIP: &str = "371602001";
pub const COUNTY: &str = "371602";
pub const T_URBAN: &str = "371602001-urban_management";
pub const T_SOCIAL: &str = "371602001-social_affairs";
pub const C_HOUSING: &str = "371602-housing";
// 118.015, 37.315 lies inside NE (code 002).
pub const IN_NE: (f64, f64) = (118.015, 37.315);

/// China time → UTC.
pub fn cst(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    china()
        .with_ymd_and_hms(2026, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn matter(
    code: &str,
    category: Category,
    responsible: &[(CentreLevel, &str)],
    limit: TimeLimit,
    public: bool,
) -> NewMatter {
    NewMatter {
        code: code.into(),
        name: format!("matter {code}"),
        description: "test matter".into(),
        category,
        responsible: responsible
            .iter()
            .map(|&(l, k)| (l, k.to_string()))
            .collect(),
        time_limit: limit,
        public,
        valid_from: "2026-01-01".parse().unwrap(),
        valid_to: None,
        proposed_by: "dept".into(),
    }
}

/// Departments, an admitted matters list (WG-001 public, 2 working days, township urban
/// management / county housing; WG-003 members only, 8 working hours, township social
/// affairs) and staff accounts for each department.
pub async fn seed_dispatch(store: &dyn Store) {
    for (code, kind, region) in [
        (T_URBAN, "urban_management", TOWNSHIP),
        (T_SOCIAL, "social_affairs", TOWNSHIP),
        (C_HOUSING, "housing", COUNTY),
    ] {
        store
            .upsert_department(&Department {
                code: code.into(),
                name: format!("{kind} of {region}"),
                kind: kind.into(),
                region_code: region.into(),
                webhook_url: None,
            })
            .await
            .unwrap();
    }
    for m in [
        matter(
            "WG-001",
            Category::SafetyHazard,
            &[
                (CentreLevel::Township, "urban_management"),
                (CentreLevel::County, "housing"),
            ],
            TimeLimit {
                amount: 2,
                unit: TimeUnit::WorkingDays,
            },
            true,
        ),
        matter(
            "WG-003",
            Category::Dispute,
            &[(CentreLevel::Township, "social_affairs")],
            TimeLimit {
                amount: 8,
                unit: TimeUnit::WorkingHours,
            },
            false,
        ),
    ] {
        let p = store.propose_matter(&m).await.unwrap();
        store
            .decide_matter(p.id, true, "city.zhao", Utc::now())
            .await
            .unwrap();
    }
}

fn who(name: &str, role: UserRole, scope: &str) -> Principal {
    Principal::new(
        name.into(),
        vec![Grant {
            role,
            scope: scope.into(),
        }],
    )
}

async fn staff(store: &dyn Store, name: &str, department: &str) {
    if store.user(name).await.unwrap().is_none() {
        store.create_user(name, None).await.unwrap();
    }
    store.add_staff(name, department).await.unwrap();
}

fn report(matter: Option<&str>, text: &str) -> Report {
    Report {
        lon: IN_NE.0,
        lat: IN_NE.1,
        coord_sys: None,
        matter: matter.map(str::to_string),
        description: text.into(),
        photos: vec!["https://example.org/p/1.jpg".into()],
        address: Some("黄河一路 1 号".into()),
        contact: Contact {
            name: Some("王小明".into()),
            phone: Some("13912345678".into()),
            email: None,
        },
    }
}

async fn walk_cases_through_every_path_and_assess_them_exactly(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let live = LiveGrids::load(store).await.unwrap();
    let snap = live.snapshot();
    let opts = wangge::spatial::LocateOptions::default();
    let member = who("member.li", UserRole::GridMember, &code(2));
    let disp_t = who("disp.township", UserRole::Dispatcher, TOWNSHIP);
    let disp_c = who("disp.county", UserRole::Dispatcher, COUNTY);
    let handler = who("h.urban", UserRole::DepartmentHandler, TOWNSHIP);
    let social = who("h.social", UserRole::DepartmentHandler, TOWNSHIP);
    let housing = who("h.housing", UserRole::DepartmentHandler, COUNTY);
    staff(store, "h.urban", T_URBAN).await;
    staff(store, "h.social", T_SOCIAL).await;
    staff(store, "h.housing", C_HOUSING).await;
    let none: Vec<String> = vec![];
    let (urban, social_d, housing_d) = (
        vec![T_URBAN.to_string()],
        vec![T_SOCIAL.to_string()],
        vec![C_HOUSING.to_string()],
    );
    let as_ = |p: &'static Principal, d: &'static [String]| Actor {
        principal: p,
        departments: d,
    };
    // Leak the fixtures: actors borrow them across awaits for the whole test.
    let member: &'static Principal = Box::leak(Box::new(member));
    let disp_t: &'static Principal = Box::leak(Box::new(disp_t));
    let disp_c: &'static Principal = Box::leak(Box::new(disp_c));
    let handler: &'static Principal = Box::leak(Box::new(handler));
    let social: &'static Principal = Box::leak(Box::new(social));
    let housing: &'static Principal = Box::leak(Box::new(housing));
    let none: &'static [String] = Box::leak(none.into_boxed_slice());
    let urban: &'static [String] = Box::leak(urban.into_boxed_slice());
    let social_d: &'static [String] = Box::leak(social_d.into_boxed_slice());
    let housing_d: &'static [String] = Box::leak(housing_d.into_boxed_slice());
    let act = |id: i64, a: Actor<'static>, c: Command, at: DateTime<Utc>| async move {
        dispatch::act(store, id, a, &c, None, at).await
    };
    let t0 = cst(11, 30, 9, 0); // Monday

    // A: settled on site by the grid member.
    let (a, fresh) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-003"), "吵架"),
        Reporter::Account(member),
        t0,
        None,
    )
    .await
    .unwrap();
    assert!(fresh);
    assert_eq!(
        (
            a.source,
            a.state,
            a.grid_code.as_str(),
            a.centre_code.as_str()
        ),
        (
            CaseSource::GridMember,
            CaseState::Reported,
            code(2).as_str(),
            TOWNSHIP
        )
    );
    let a = act(
        a.id,
        as_(member, none),
        Command::ResolveOnSite {
            result: "调解成功".into(),
        },
        t0 + Duration::minutes(10),
    )
    .await
    .unwrap();
    assert_eq!(a.state, CaseState::ResolvedOnSite);

    // B: a resident's report, escalated, accepted, assigned by the list, returned,
    // reassigned with a reason, extended, handled, failed verification, handled again,
    // verified, closed.
    let (bcase, _) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "井盖缺失"),
        Reporter::Public { open311: false },
        t0,
        None,
    )
    .await
    .unwrap();
    assert_eq!(bcase.source, CaseSource::Resident);
    let id = bcase.id;
    act(
        id,
        as_(member, none),
        Command::Escalate { note: None },
        t0 + Duration::minutes(5),
    )
    .await
    .unwrap();
    act(
        id,
        as_(disp_t, none),
        Command::Accept {
            matter: None,
            note: None,
        },
        t0 + Duration::minutes(10),
    )
    .await
    .unwrap();
    let assigned = act(
        id,
        as_(disp_t, none),
        Command::Assign {
            department: None,
            matter: None,
            reason: None,
        },
        t0 + Duration::minutes(20),
    )
    .await
    .unwrap();
    assert_eq!(assigned.department_code.as_deref(), Some(T_URBAN));
    assert_eq!(
        assigned.deadline,
        Some(cst(12, 2, 17, 0)),
        "2 working days after Monday: Wednesday 17:00"
    );
    // Another department's handler may not touch it.
    let e = act(
        id,
        as_(social, social_d),
        Command::Acknowledge { note: None },
        t0 + Duration::minutes(30),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DispatchError::Forbidden(_)), "{e}");
    act(
        id,
        as_(handler, urban),
        Command::Acknowledge { note: None },
        t0 + Duration::minutes(30),
    )
    .await
    .unwrap();
    let returned = act(
        id,
        as_(handler, urban),
        Command::Return {
            reason: wangge::domain::ReturnReason::NotOurResponsibility,
            explanation: "井盖属住建部门".into(),
        },
        t0 + Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            returned.state,
            returned.returns,
            returned.department_code.clone()
        ),
        (CaseState::Returned, 1, None)
    );
    let e = act(
        id,
        as_(disp_t, none),
        Command::Assign {
            department: Some(C_HOUSING.into()),
            matter: None,
            reason: None,
        },
        t0 + Duration::hours(2),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Invalid(ref m) if m.contains("needs a reason")),
        "{e}"
    );
    let re = act(
        id,
        as_(disp_t, none),
        Command::Assign {
            department: Some(C_HOUSING.into()),
            matter: None,
            reason: Some("returned by urban management".into()),
        },
        t0 + Duration::hours(2),
    )
    .await
    .unwrap();
    assert_eq!(re.deadline, Some(cst(12, 2, 17, 0)));
    act(
        id,
        as_(housing, housing_d),
        Command::Acknowledge { note: None },
        t0 + Duration::hours(3),
    )
    .await
    .unwrap();
    act(
        id,
        as_(housing, housing_d),
        Command::RequestExtension {
            working_days: 2,
            reason: "需采购井盖".into(),
        },
        t0 + Duration::hours(4),
    )
    .await
    .unwrap();
    let e = act(
        id,
        as_(housing, housing_d),
        Command::DecideExtension {
            approve: true,
            note: None,
        },
        t0 + Duration::hours(5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Forbidden(_)),
        "a department does not approve its own extension: {e}"
    );
    let ext = act(
        id,
        as_(disp_t, none),
        Command::DecideExtension {
            approve: true,
            note: None,
        },
        t0 + Duration::hours(5),
    )
    .await
    .unwrap();
    assert_eq!((ext.deadline, ext.extensions), (Some(cst(12, 4, 17, 0)), 1));
    act(
        id,
        as_(housing, housing_d),
        Command::Handle {
            feedback: "已更换".into(),
        },
        cst(12, 3, 10, 0),
    )
    .await
    .unwrap();
    let failed = act(
        id,
        as_(member, none),
        Command::Verify {
            ok: false,
            note: Some("仍有缺口".into()),
        },
        cst(12, 3, 11, 0),
    )
    .await
    .unwrap();
    assert_eq!(
        (failed.state, failed.verification_failures),
        (CaseState::Assigned, 1)
    );
    act(
        id,
        as_(housing, housing_d),
        Command::Handle {
            feedback: "已补好".into(),
        },
        cst(12, 4, 10, 0),
    )
    .await
    .unwrap();
    act(
        id,
        as_(disp_t, none),
        Command::Verify {
            ok: true,
            note: None,
        },
        cst(12, 4, 11, 0),
    )
    .await
    .unwrap();
    let closed = act(
        id,
        as_(disp_t, none),
        Command::Close { note: None },
        cst(12, 4, 11, 30),
    )
    .await
    .unwrap();
    assert_eq!(closed.state, CaseState::Closed);
    let e = act(
        id,
        as_(disp_t, none),
        Command::Assign {
            department: None,
            matter: None,
            reason: None,
        },
        cst(12, 4, 12, 0),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DispatchError::Step(_)), "{e}");

    // C: goes overdue, is noticed once, escalated to the county, supervised there.
    let (c, _) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "消防通道"),
        Reporter::Account(member),
        t0,
        None,
    )
    .await
    .unwrap();
    act(
        c.id,
        as_(disp_t, none),
        Command::Accept {
            matter: None,
            note: None,
        },
        t0 + Duration::minutes(15),
    )
    .await
    .unwrap();
    act(
        c.id,
        as_(disp_t, none),
        Command::Assign {
            department: None,
            matter: None,
            reason: None,
        },
        t0 + Duration::minutes(20),
    )
    .await
    .unwrap();
    act(
        c.id,
        as_(handler, urban),
        Command::Acknowledge { note: None },
        t0 + Duration::minutes(40),
    )
    .await
    .unwrap();
    let settings = SweepSettings {
        due_soon: Duration::hours(4),
        escalate_overdue: true,
    };
    let r = dispatch::sweep(store, cst(12, 2, 14, 0), settings)
        .await
        .unwrap();
    assert_eq!((r.due_soon, r.overdue), (1, 0));
    let r = dispatch::sweep(store, cst(12, 2, 15, 0), settings)
        .await
        .unwrap();
    assert_eq!((r.due_soon, r.overdue), (0, 0), "noticed once");
    let r = dispatch::sweep(store, cst(12, 3, 9, 0), settings)
        .await
        .unwrap();
    assert_eq!((r.overdue, r.escalated), (1, 1));
    let c_now = store.case(c.id).await.unwrap();
    assert_eq!(
        (c_now.centre_code.as_str(), c_now.escalations, c_now.state),
        (COUNTY, 1, CaseState::Acknowledged)
    );
    let e = act(
        c.id,
        as_(disp_t, none),
        Command::Supervise {
            note: "请加快".into(),
        },
        cst(12, 3, 10, 0),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Forbidden(_)),
        "the township centre no longer holds it: {e}"
    );
    act(
        c.id,
        as_(disp_c, none),
        Command::Supervise {
            note: "督办：限今日办结".into(),
        },
        cst(12, 3, 10, 0),
    )
    .await
    .unwrap();

    // D: a duplicate of B, merged.
    let (d, _) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "井盖又被报了"),
        Reporter::Public { open311: true },
        t0 + Duration::minutes(1),
        None,
    )
    .await
    .unwrap();
    let merged = act(
        d.id,
        as_(disp_t, none),
        Command::Merge {
            into: id,
            note: None,
        },
        t0 + Duration::minutes(50),
    )
    .await
    .unwrap();
    assert_eq!(
        (merged.state, merged.merged_into),
        (CaseState::Merged, Some(id))
    );

    // A reopened and closed again: neither changes the figures.
    act(
        a.id,
        as_(disp_t, none),
        Command::Reopen {
            reason: "居民再次反映".into(),
        },
        cst(12, 4, 9, 0),
    )
    .await
    .unwrap();
    act(
        a.id,
        as_(disp_t, none),
        Command::Close {
            note: Some("已回访".into()),
        },
        cst(12, 4, 9, 30),
    )
    .await
    .unwrap();

    // The trail: every step, in order, with actors.
    let trail: Vec<String> = store
        .case_events(id)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e.kind, e.actor))
        .collect();
    assert_eq!(
        trail,
        [
            "reported:resident",
            "escalate:member.li",
            "accept:disp.township",
            "assign:disp.township",
            "acknowledge:h.urban",
            "return:h.urban",
            "assign:disp.township",
            "acknowledge:h.housing",
            "request_extension:h.housing",
            "decide_extension:disp.township",
            "handle:h.housing",
            "reject_result:member.li",
            "handle:h.housing",
            "verify:disp.township",
            "close:disp.township",
        ]
    );

    let a = wangge::workflow::assessment::assess(
        store,
        cst(11, 30, 0, 0),
        cst(12, 5, 0, 0),
        cst(12, 4, 12, 0),
        |_| true,
    )
    .await
    .unwrap();
    let by = |rows: &[wangge::workflow::assessment::Figures]| -> HashMap<String, wangge::workflow::assessment::Figures> {
        rows.iter().map(|f| (f.key.clone(), f.clone())).collect()
    };
    let deps = by(&a.departments);
    let u = &deps[T_URBAN];
    assert_eq!(
        (
            u.received,
            u.returns,
            u.handled_on_time,
            u.handled_late,
            u.open_overdue,
            u.supervisions
        ),
        (2, 1, 0, 0, 1, 1)
    );
    assert_eq!(
        u.on_time_rate,
        Some(0.0),
        "an open overdue case counts against the rate"
    );
    let h = &deps[C_HOUSING];
    assert_eq!(
        (
            h.received,
            h.handled_on_time,
            h.handled_late,
            h.extensions,
            h.verification_failures,
            h.returns,
            h.open_overdue
        ),
        (1, 2, 0, 1, 1, 0, 0)
    );
    assert_eq!(h.on_time_rate, Some(1.0));
    // Assigned Monday 11:00; handled Thursday 10:00 (71 h) and Friday 10:00 (95 h).
    assert_eq!(h.mean_handling_hours, Some(83.0));
    assert_eq!(h.p90_handling_hours, Some(95.0));
    let grids = by(&a.grids);
    let g = &grids[&code(2)];
    assert_eq!(
        (
            g.received,
            g.resolved_on_site,
            g.returns,
            g.handled_on_time,
            g.open_overdue,
            g.supervisions,
            g.extensions,
            g.verification_failures
        ),
        (4, 1, 1, 2, 1, 1, 1, 1)
    );
    let members = by(&a.members);
    let m = &members["member.li"];
    assert_eq!((m.received, m.resolved_on_site), (2, 1));
    let csv = wangge::workflow::assessment::to_csv(&a);
    assert!(
        csv.lines().any(|l| l.starts_with(&format!(
            "department,{C_HOUSING},1,0,2,0,0,1.0000,0,1,0,1,83.0000,95.0000"
        ))),
        "{csv}"
    );
}

async fn the_matters_list_is_versioned_and_never_rewrites_filed_cases(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let snap = LiveGrids::load(store).await.unwrap().snapshot();
    let opts = wangge::spatial::LocateOptions::default();
    let (case, _) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "old rule"),
        Reporter::Public { open311: false },
        cst(12, 1, 9, 0),
        None,
    )
    .await
    .unwrap();
    let v1 = case.matter_version.unwrap();
    // A department proposes a tighter limit from 7 December; it is not on the list
    // until admitted.
    let mut tighter = matter(
        "WG-001",
        Category::SafetyHazard,
        &[(CentreLevel::Township, "urban_management")],
        TimeLimit {
            amount: 4,
            unit: TimeUnit::WorkingHours,
        },
        true,
    );
    tighter.valid_from = "2026-12-07".parse().unwrap();
    let v2 = store.propose_matter(&tighter).await.unwrap();
    assert_eq!(v2.version, 2);
    let on = |d: &str| {
        let d: chrono::NaiveDate = d.parse().unwrap();
        async move {
            dispatch::matters_on(store, d)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.matter.code, m.version))
                .collect::<BTreeMap<_, _>>()
        }
    };
    assert_eq!(
        on("2026-12-08").await["WG-001"],
        1,
        "proposed is not admitted"
    );
    store
        .decide_matter(v2.id, true, "city.zhao", Utc::now())
        .await
        .unwrap();
    assert_eq!(on("2026-12-06").await["WG-001"], 1);
    assert_eq!(on("2026-12-07").await["WG-001"], 2);
    let e = store
        .decide_matter(v2.id, false, "city.zhao", Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Refused(_)), "{e}");
    // A temporary matter leaves the list at its end date.
    let mut winter = matter(
        "WG-014",
        Category::SafetyHazard,
        &[(CentreLevel::Township, "urban_management")],
        TimeLimit {
            amount: 8,
            unit: TimeUnit::WorkingHours,
        },
        true,
    );
    winter.valid_to = Some("2027-03-01".parse().unwrap());
    let w = store.propose_matter(&winter).await.unwrap();
    store
        .decide_matter(w.id, true, "city.zhao", Utc::now())
        .await
        .unwrap();
    assert!(on("2027-02-28").await.contains_key("WG-014"));
    assert!(!on("2027-03-01").await.contains_key("WG-014"));

    // The case filed under version 1 is assigned under version 1's limit (2 working
    // days), even after version 2 took effect; a holiday on Tuesday moves it a day on.
    store
        .set_calendar_day(
            "2026-12-08".parse().unwrap(),
            Some(DayKind::Holiday),
            "test holiday",
        )
        .await
        .unwrap();
    let disp = who("disp", UserRole::Dispatcher, TOWNSHIP);
    let actor = Actor {
        principal: &disp,
        departments: &[],
    };
    dispatch::act(
        store,
        case.id,
        actor,
        &Command::Accept {
            matter: None,
            note: None,
        },
        None,
        cst(12, 7, 9, 0),
    )
    .await
    .unwrap();
    let assigned = dispatch::act(
        store,
        case.id,
        actor,
        &Command::Assign {
            department: None,
            matter: None,
            reason: None,
        },
        None,
        cst(12, 7, 9, 30),
    )
    .await
    .unwrap();
    assert_eq!(assigned.matter_version, Some(v1));
    assert_eq!(
        assigned.deadline,
        Some(cst(12, 10, 17, 0)),
        "Mon + 2 working days with Tue off = Thu"
    );
    // Members-only matters are refused to residents.
    let e = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-003"), "x"),
        Reporter::Public { open311: false },
        cst(12, 7, 9, 0),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Invalid(ref m) if m.contains("not open to residents")),
        "{e}"
    );
}

async fn two_handlers_acting_at_once_one_wins_and_retries_are_idempotent(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    staff(store, "h1", T_URBAN).await;
    staff(store, "h2", T_URBAN).await;
    let snap = LiveGrids::load(store).await.unwrap().snapshot();
    let opts = wangge::spatial::LocateOptions::default();
    let key = wangge::store::IdempotencyKey {
        key: "public:abc12345".into(),
        request_hash: "h1".into(),
    };
    let now = cst(12, 1, 9, 0);
    let (first, fresh) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "once"),
        Reporter::Public { open311: false },
        now,
        Some(&key),
    )
    .await
    .unwrap();
    let (again, fresh_again) = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "once"),
        Reporter::Public { open311: false },
        now,
        Some(&key),
    )
    .await
    .unwrap();
    assert!(fresh && !fresh_again);
    assert_eq!(first.id, again.id);
    let other = wangge::store::IdempotencyKey {
        request_hash: "different".into(),
        ..key.clone()
    };
    let e = dispatch::intake(
        store,
        &snap,
        &opts,
        &report(Some("WG-001"), "other"),
        Reporter::Public { open311: false },
        now,
        Some(&other),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Store(StoreError::Refused(_))),
        "{e}"
    );
    assert_eq!(
        store.case_events(first.id).await.unwrap().len(),
        1,
        "one case, one report event"
    );

    let disp = who("disp", UserRole::Dispatcher, TOWNSHIP);
    let d = Actor {
        principal: &disp,
        departments: &[],
    };
    dispatch::act(
        store,
        first.id,
        d,
        &Command::Accept {
            matter: None,
            note: None,
        },
        None,
        now,
    )
    .await
    .unwrap();
    let assigned = dispatch::act(
        store,
        first.id,
        d,
        &Command::Assign {
            department: None,
            matter: None,
            reason: None,
        },
        None,
        now,
    )
    .await
    .unwrap();
    let (p1, p2) = (
        who("h1", UserRole::DepartmentHandler, TOWNSHIP),
        who("h2", UserRole::DepartmentHandler, TOWNSHIP),
    );
    let deps = vec![T_URBAN.to_string()];
    let (ack, ret) = (
        Command::Acknowledge { note: None },
        Command::Return {
            reason: wangge::domain::ReturnReason::Other,
            explanation: "not ours".into(),
        },
    );
    let (r1, r2) = tokio::join!(
        dispatch::act(
            store,
            first.id,
            Actor {
                principal: &p1,
                departments: &deps
            },
            &ack,
            Some(assigned.version),
            now
        ),
        dispatch::act(
            store,
            first.id,
            Actor {
                principal: &p2,
                departments: &deps
            },
            &ret,
            Some(assigned.version),
            now
        ),
    );
    let wins = [r1.is_ok(), r2.is_ok()].iter().filter(|&&w| w).count();
    assert_eq!(wins, 1, "{r1:?} {r2:?}");
    let loser = match (r1, r2) {
        (Err(e), _) | (_, Err(e)) => e,
        _ => unreachable!("one of them lost"),
    };
    assert!(
        matches!(loser, DispatchError::Store(StoreError::Conflict(_))),
        "{loser}"
    );
    // The store itself refuses a stale write, whoever calls it.
    let mut stale = assigned.clone();
    stale.state = CaseState::Handled;
    let ev = wangge::store::NewCaseEvent {
        at: now,
        actor: "x".into(),
        kind: "handle".into(),
        from_state: Some(CaseState::Assigned),
        note: None,
        detail: json!({}),
    };
    assert!(matches!(
        store.update_case(&stale, &ev, None).await,
        Err(StoreError::Conflict(_))
    ));
    // Events are append-only.
    let refused = match &b.raw {
        crate::backends::Raw::Sqlite(p) => sqlx::query("DELETE FROM case_events")
            .execute(p)
            .await
            .is_err(),
        crate::backends::Raw::Postgres(p) => sqlx::query("DELETE FROM case_events")
            .execute(p)
            .await
            .is_err(),
    };
    assert!(refused, "case_events refuse DELETE");
}

crate::contract!(
    walk_cases_through_every_path_and_assess_them_exactly,
    the_matters_list_is_versioned_and_never_rewrites_filed_cases,
    two_handlers_acting_at_once_one_wins_and_retries_are_idempotent,
);
