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
use wangge::domain::{DayKind, china};
use wangge::store::{Department, NewMatter, Store, StoreError};

/// The centre's time to accept a new report, as the settings' default.
const ACCEPT_WITHIN: Duration = Duration::hours(2);
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

pub(crate) fn matter(
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
        region_code: String::new(),
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
        grid: None,
    }
}

async fn walk_cases_through_every_path_and_assess_them_exactly(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let live = LiveGrids::load(store).await.unwrap();
    let snap = live.snapshot();
    let opts = wangge::spatial::LocateOptions::default();
    let matters = dispatch::MatterCatalog::default();
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
        &matters,
        &snap,
        &opts,
        &report(Some("WG-003"), "吵架"),
        Reporter::Account(member),
        t0,
        ACCEPT_WITHIN,
        None,
    )
    .await
    .unwrap();
    assert!(fresh);
    assert_eq!(
        a.deadline, None,
        "a grid member's own report runs no centre clock"
    );
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
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "井盖缺失"),
        Reporter::Public { open311: false },
        t0,
        ACCEPT_WITHIN,
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
    // Another department's handler may not touch it: for them it is no case at all.
    let e = act(
        id,
        as_(social, social_d),
        Command::Acknowledge { note: None },
        t0 + Duration::minutes(30),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Store(StoreError::NotFound { .. })),
        "{e}"
    );
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
        matches!(e, DispatchError::Invalid(ref m) if m.en().contains("needs a reason")),
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
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "消防通道"),
        Reporter::Account(member),
        t0,
        ACCEPT_WITHIN,
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
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "井盖又被报了"),
        Reporter::Public { open311: true },
        t0 + Duration::minutes(1),
        ACCEPT_WITHIN,
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
    let matters = dispatch::MatterCatalog::default();
    let (case, _) = dispatch::intake(
        store,
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "old rule"),
        Reporter::Public { open311: false },
        cst(12, 1, 9, 0),
        ACCEPT_WITHIN,
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
        &matters,
        &snap,
        &opts,
        &report(Some("WG-003"), "x"),
        Reporter::Public { open311: false },
        cst(12, 7, 9, 0),
        ACCEPT_WITHIN,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, DispatchError::Invalid(ref m) if m.en().contains("not open to residents")),
        "{e}"
    );
}

async fn a_county_s_matter_is_reported_only_in_that_county(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admitted = |code: &str, county: &str| {
        let mut m = matter(
            code,
            Category::SafetyHazard,
            &[(CentreLevel::Township, "urban_management")],
            TimeLimit {
                amount: 2,
                unit: TimeUnit::WorkingDays,
            },
            true,
        );
        m.region_code = county.to_string();
        async move {
            let v = store.propose_matter(&m).await.unwrap();
            store
                .decide_matter(v.id, true, "city", chrono::Utc::now())
                .await
                .unwrap();
        }
    };
    admitted("ZH-001", "371603").await;
    admitted("BC-001", "371602").await;
    let public = || Reporter::Public { open311: false };
    let report_of =
        |code: &'static str| file(store, public(), Some(code), "county list", cst(12, 1, 9, 0));
    // The fixture's grids are in 371602: 沾化区's own matter does not apply there.
    match report_of("ZH-001").await {
        Err(dispatch::DispatchError::Invalid(why)) => {
            assert!(why.en().contains("371603"), "{why}")
        }
        other => panic!("a 371603 matter was filed in 371602: {other:?}"),
    }
    let (case, _) = report_of("BC-001").await.unwrap();
    assert_eq!(case.matter_code.as_deref(), Some("BC-001"));
    assert_eq!(case.county_code, "371602");
    // Nor can a dispatcher classify a case here under it later.
    let hotline = who("hotline", UserRole::Dispatcher, COUNTY);
    let (unclassified, _) = file(
        store,
        Reporter::Account(&hotline),
        None,
        "hotline call",
        cst(12, 1, 9, 30),
    )
    .await
    .unwrap();
    let disp = who("disp", UserRole::Dispatcher, COUNTY);
    let accepted = dispatch::act(
        store,
        unclassified.id,
        Actor {
            principal: &disp,
            departments: &[],
        },
        &Command::Accept {
            matter: Some("ZH-001".into()),
            note: None,
        },
        None,
        cst(12, 1, 10, 0),
    )
    .await;
    assert!(
        matches!(accepted, Err(dispatch::DispatchError::Invalid(_))),
        "{accepted:?}"
    );
    assert_eq!(store.case(unclassified.id).await.unwrap().matter_code, None);
}

/// Files `report(matter, text)` from `reporter` at `at` through intake, on the store's
/// current grids and matters list.
async fn file(
    store: &dyn Store,
    reporter: Reporter<'_>,
    matter: Option<&str>,
    text: &str,
    at: DateTime<Utc>,
) -> Result<(wangge::store::CaseRecord, bool), dispatch::DispatchError> {
    let snap = LiveGrids::load(store).await.unwrap().snapshot();
    dispatch::intake(
        store,
        &dispatch::MatterCatalog::default(),
        &snap,
        &wangge::spatial::LocateOptions::default(),
        &report(matter, text),
        reporter,
        at,
        ACCEPT_WITHIN,
        None,
    )
    .await
}

/// A write and its audit row are one transaction: when the row cannot be written the
/// write does not happen (a case step, a plan step, a department change), and once it
/// can, both are there.
async fn a_write_whose_audit_row_cannot_be_written_does_not_happen(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let live = Arc::new(LiveGrids::load(store).await.unwrap());
    let (case, _) = file(
        store,
        Reporter::Public { open311: false },
        Some("WG-001"),
        "井盖缺失",
        cst(12, 1, 9, 0),
    )
    .await
    .unwrap();
    let plan = wangge::workflow::plans::draft(
        store,
        wangge::workflow::plans::DraftRequest {
            scope_code: crate::store_contract::COMMUNITY.into(),
            layer: wangge::domain::Layer::Comprehensive,
            title: "redrawn".into(),
            effective_date: None,
            actor: "planner".into(),
            grids: crate::store_contract::first_grids(),
        },
    )
    .await
    .unwrap();
    assert_eq!(plan.error_count, 0);
    // The audit log refuses these rows, as a full disk or a broken log would.
    let refused = "('case_accept', 'plan_submit', 'department_put')";
    match &b.raw {
        crate::backends::Raw::Postgres(p) => {
            sqlx::raw_sql(&format!(
                "CREATE FUNCTION refuse_rows() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION 'audit log refused'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_rows BEFORE INSERT ON audit_log FOR EACH ROW \
                 WHEN (NEW.action IN {refused}) EXECUTE FUNCTION refuse_rows();"
            ))
            .execute(p)
            .await
            .unwrap();
        }
        crate::backends::Raw::Sqlite(p) => {
            sqlx::raw_sql(&format!(
                "CREATE TRIGGER refuse_rows BEFORE INSERT ON audit_log \
                 WHEN NEW.action IN {refused} BEGIN SELECT RAISE(ABORT, 'audit log refused'); END;"
            ))
            .execute(p)
            .await
            .unwrap();
        }
    }
    let disp = who("disp", UserRole::Dispatcher, TOWNSHIP);
    let accept = || {
        dispatch::act(
            store,
            case.id,
            Actor {
                principal: &disp,
                departments: &[],
            },
            &Command::Accept {
                matter: None,
                note: None,
            },
            None,
            cst(12, 1, 10, 0),
        )
    };
    let steps = wangge::app::PlanSteps {
        store,
        live: None,
        four_eyes: true,
        via: None,
    };
    let planner = who(
        "planner",
        UserRole::Planner,
        crate::store_contract::COMMUNITY,
    );
    let no_reason = wangge::app::StepRequest::default();
    let submit = || steps.take(&planner, plan.id, wangge::app::PlanStep::Submit, &no_reason);
    let app = wangge::app::App::new(
        b.store.clone(),
        live.clone(),
        Arc::new(wangge::settings::Settings::default()),
    );
    let admin = who("admin", UserRole::CityAdmin, "3716");
    let rename = || {
        let request: wangge::app::DepartmentRequest = serde_json::from_value(json!({
            "code": T_URBAN, "name": "改名的城管", "kind": "urban_management",
            "region_code": TOWNSHIP}))
        .unwrap();
        app.put_department(&admin, T_URBAN.into(), request)
    };
    let urban_name = || async {
        store
            .departments()
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.code == T_URBAN)
            .unwrap()
            .name
    };
    let before = urban_name().await;

    assert!(
        accept().await.is_err(),
        "a case step went ahead without its row"
    );
    let unchanged = store.case(case.id).await.unwrap();
    assert_eq!(unchanged.state, CaseState::Reported);
    assert_eq!(unchanged.version, case.version);
    assert_eq!(store.case_events(case.id).await.unwrap().len(), 1);
    assert!(
        submit().await.is_err(),
        "a plan step went ahead without its row"
    );
    let draft = store.plan(plan.id).await.unwrap();
    assert_eq!(draft.status, wangge::store::PlanStatus::Draft);
    assert_eq!(store.plan_events(plan.id).await.unwrap().len(), 1);
    assert!(
        rename().await.is_err(),
        "a department changed without its row"
    );
    assert_eq!(urban_name().await, before);

    match &b.raw {
        crate::backends::Raw::Postgres(p) => {
            sqlx::raw_sql("DROP TRIGGER refuse_rows ON audit_log")
                .execute(p)
                .await
                .unwrap();
        }
        crate::backends::Raw::Sqlite(p) => {
            sqlx::raw_sql("DROP TRIGGER refuse_rows")
                .execute(p)
                .await
                .unwrap();
        }
    }
    let accepted = accept().await.unwrap();
    assert_eq!(accepted.state, CaseState::Accepted);
    assert_eq!(
        submit().await.unwrap().plan.status,
        wangge::store::PlanStatus::Submitted
    );
    rename().await.unwrap();
    assert_eq!(urban_name().await, "改名的城管");
    let rows = store
        .audit(&wangge::store::AuditQuery {
            under: None,
            actor: None,
            after_id: None,
            limit: 100,
        })
        .await
        .unwrap();
    let found = |action: &str, resource: String| {
        rows.iter()
            .filter(|r| r.action == action && r.resource == resource)
            .count()
    };
    assert_eq!(found("case_accept", format!("cases/{}", case.id)), 1);
    assert_eq!(found("plan_submit", format!("plans/{}", plan.id)), 1);
    assert_eq!(found("department_put", format!("departments/{T_URBAN}")), 1);
    let step = rows.iter().find(|r| r.action == "case_accept").unwrap();
    assert_eq!(step.detail["version"], json!(accepted.version));
    assert_eq!(step.scope_code, accepted.grid_code);
}

/// A case is only ever held by a department serving its area, whoever writes: the
/// store refuses to move a department that has held cases, and refuses a case write
/// naming a department that does not serve the case (as when it moved meanwhile).
async fn a_case_stays_with_a_department_serving_its_area(b: Backend) {
    let store = b.store.as_ref();
    let case = template_case(store).await;
    let disp = who("disp", UserRole::Dispatcher, TOWNSHIP);
    let actor = Actor {
        principal: &disp,
        departments: &[],
    };
    for step in [
        Command::Accept {
            matter: None,
            note: None,
        },
        Command::Assign {
            department: None,
            matter: None,
            reason: None,
        },
    ] {
        dispatch::act(store, case.id, actor, &step, None, cst(12, 1, 10, 0))
            .await
            .unwrap();
    }
    let assigned = store.case(case.id).await.unwrap();
    assert_eq!(assigned.department_code.as_deref(), Some(T_URBAN));
    let department = |code: &str, region: &str| Department {
        code: code.into(),
        name: "moved".into(),
        kind: "housing".into(),
        region_code: region.into(),
        webhook_url: None,
    };
    use wangge::store::dispatch::DirectoryChange;
    let moved = store
        .apply_audited(
            &[DirectoryChange::PutDepartment(Department {
                kind: "urban_management".into(),
                ..department(T_URBAN, "371602002")
            })],
            &[],
        )
        .await;
    assert!(matches!(moved, Err(StoreError::Refused(_))), "{moved:?}");
    // A department without cases moves; a case cannot then be given to it here.
    store
        .apply_audited(
            &[DirectoryChange::PutDepartment(department(
                C_HOUSING, "371603",
            ))],
            &[],
        )
        .await
        .unwrap();
    let mut elsewhere = assigned.clone();
    elsewhere.department_code = Some(C_HOUSING.into());
    let event = wangge::store::NewCaseEvent {
        at: cst(12, 1, 11, 0),
        actor: "disp".into(),
        kind: "assign".into(),
        from_state: Some(assigned.state),
        note: None,
        detail: json!({}),
    };
    let written = store
        .update_case(&elsewhere, &event, Some(C_HOUSING), None)
        .await;
    assert!(
        matches!(written, Err(StoreError::Conflict(_))),
        "{written:?}"
    );
    assert_eq!(
        store
            .case(case.id)
            .await
            .unwrap()
            .department_code
            .as_deref(),
        Some(T_URBAN)
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
    let matters = dispatch::MatterCatalog::default();
    let key = wangge::store::IdempotencyKey {
        key: "public:abc12345".into(),
        request_hash: "h1".into(),
    };
    let now = cst(12, 1, 9, 0);
    let (first, fresh) = dispatch::intake(
        store,
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "once"),
        Reporter::Public { open311: false },
        now,
        ACCEPT_WITHIN,
        Some(&key),
    )
    .await
    .unwrap();
    let (again, fresh_again) = dispatch::intake(
        store,
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "once"),
        Reporter::Public { open311: false },
        now,
        ACCEPT_WITHIN,
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
        &matters,
        &snap,
        &opts,
        &report(Some("WG-001"), "other"),
        Reporter::Public { open311: false },
        now,
        ACCEPT_WITHIN,
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
    // Two tasks released together by a barrier, so the steps overlap for real.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = |principal: wangge::auth::Principal, command: Command| {
        let (shared, deps, barrier) = (b.store.clone(), deps.clone(), barrier.clone());
        let (id, version) = (first.id, assigned.version);
        tokio::spawn(async move {
            barrier.wait().await;
            dispatch::act(
                shared.as_ref(),
                id,
                Actor {
                    principal: &principal,
                    departments: &deps,
                },
                &command,
                Some(version),
                now,
            )
            .await
        })
    };
    let (t1, t2) = (run(p1, ack), run(p2, ret));
    let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
    let wins = [r1.is_ok(), r2.is_ok()].iter().filter(|&&w| w).count();
    assert_eq!(wins, 1, "{r1:?} {r2:?}");
    let loser = match (r1, r2) {
        (Err(e), _) | (_, Err(e)) => e,
        _ => unreachable!("one of them lost"),
    };
    // The loser either meets the changed version, or, when it reads the case after the
    // winner's step took it out of its hands, no case it may act on (answered as missing).
    assert!(
        matches!(
            loser,
            DispatchError::Store(StoreError::Conflict(_) | StoreError::NotFound { .. })
        ),
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
        store.update_case(&stale, &ev, None, None).await,
        Err(StoreError::Conflict(_))
    ));
    // Events are append-only: UPDATE and DELETE refused by the trigger itself.
    b.assert_append_only("case_events", "actor").await;
}

/// Seeds the store and files one resident's case, whose record tests copy and vary.
async fn template_case(store: &dyn Store) -> wangge::store::CaseRecord {
    seeded(store).await;
    seed_dispatch(store).await;
    file(
        store,
        Reporter::Public { open311: false },
        Some("WG-001"),
        "template",
        cst(12, 1, 9, 0),
    )
    .await
    .unwrap()
    .0
}

/// A new report must be accepted within `accept_within` working hours: one filed at
/// night is due the next working morning; the sweep announces it once it is late (not
/// before) and escalates it; accepting spends the deadline and the handling deadline
/// starts with the assignment. A grid member's own report runs no centre clock.
async fn a_new_report_must_be_accepted_within_working_hours(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let public = Reporter::Public { open311: false };
    // Monday 09:30 China time: due 11:30 the same morning.
    let (day, _) = file(store, public, Some("WG-001"), "白天", cst(11, 30, 9, 30))
        .await
        .unwrap();
    assert_eq!(day.deadline, Some(cst(11, 30, 11, 30)));
    // Friday 20:00: the centre's clock starts Monday 09:00.
    let (night, _) = file(store, public, Some("WG-001"), "夜里", cst(12, 4, 20, 0))
        .await
        .unwrap();
    assert_eq!(night.deadline, Some(cst(12, 7, 11, 0)));

    let settings = SweepSettings {
        due_soon: Duration::hours(1),
        escalate_overdue: true,
    };
    let r = dispatch::sweep(store, cst(11, 30, 10, 45), settings)
        .await
        .unwrap();
    assert_eq!(
        (r.due_soon, r.overdue),
        (0, 0),
        "a report waiting to be accepted is not announced before it is late"
    );
    let r = dispatch::sweep(store, cst(11, 30, 12, 0), settings)
        .await
        .unwrap();
    assert_eq!(
        (r.overdue, r.escalated),
        (1, 1),
        "then overdue and escalated"
    );
    let late = store.case(day.id).await.unwrap();
    assert_eq!(
        (late.state, late.centre_code.as_str(), late.overdue_noticed),
        (CaseState::Reported, COUNTY, true)
    );
    let kinds: Vec<String> = store
        .case_events(day.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["reported", "overdue"]);

    // The county centre accepts it: no deadline until a department is given it.
    let disp_c = who("disp.county", UserRole::Dispatcher, COUNTY);
    let county = Actor {
        principal: &disp_c,
        departments: &[],
    };
    let accept = Command::Accept {
        matter: None,
        note: None,
    };
    let accepted = dispatch::act(store, day.id, county, &accept, None, cst(11, 30, 13, 0))
        .await
        .unwrap();
    assert_eq!(
        (
            accepted.deadline,
            accepted.overdue_noticed,
            accepted.due_soon_noticed
        ),
        (None, false, false)
    );
    let r = dispatch::sweep(store, cst(12, 7, 12, 0), settings)
        .await
        .unwrap();
    assert_eq!(
        (r.due_soon, r.overdue),
        (0, 1),
        "only the night report, which nobody accepted"
    );
    let assign = Command::Assign {
        department: None,
        matter: None,
        reason: None,
    };
    let assigned = dispatch::act(store, day.id, county, &assign, None, cst(12, 7, 13, 0))
        .await
        .unwrap();
    assert!(assigned.deadline.is_some_and(|d| d > cst(12, 7, 13, 0)));
    assert!(!assigned.overdue_noticed);
}

/// A case at whole degrees (118°, 37°) is stored and read back as such: SQLite hands
/// such a REAL back from RETURNING as an INTEGER, which once failed every report made
/// at a whole-number point with a 503.
async fn a_case_at_whole_degrees_is_stored_and_read_back(b: Backend) {
    let store = b.store.clone();
    let template = template_case(store.as_ref()).await;
    let whole = wangge::store::CaseRecord {
        lon: 118.0,
        lat: 37.0,
        ..template.clone()
    };
    let event = wangge::store::NewCaseEvent {
        at: template.reported_at,
        actor: "x".into(),
        kind: "reported".into(),
        from_state: None,
        note: None,
        detail: json!({}),
    };
    let (stored, fresh) = store.create_case(&whole, &event, None).await.unwrap();
    assert!(fresh);
    assert_eq!((stored.lon, stored.lat), (118.0, 37.0));
    let read = store.case(stored.id).await.unwrap();
    assert_eq!((read.lon, read.lat), (118.0, 37.0));
}

/// Submissions arriving together (PostGIS stores them by one statement per batch): each
/// answer is its own case with its own first event, a key sent three times stores one
/// case, a reused key with another request is refused, and a submission the database
/// rejects fails alone.
async fn concurrent_submissions_each_get_their_own_case_and_event(b: Backend) {
    let store = b.store.clone();
    let template = template_case(store.as_ref()).await;
    let submission = |n: usize, key: Option<(usize, &str)>, matter_version: Option<i64>| {
        let case = wangge::store::CaseRecord {
            description: format!("case {n}"),
            matter_version,
            ..template.clone()
        };
        let event = wangge::store::NewCaseEvent {
            at: template.reported_at,
            actor: format!("actor {n}"),
            kind: "reported".into(),
            from_state: None,
            note: Some(format!("note {n}")),
            detail: json!({ "n": n }),
        };
        let key = key.map(|(k, hash)| wangge::store::IdempotencyKey {
            key: format!("public:key-{k}"),
            request_hash: hash.into(),
        });
        (case, event, key)
    };
    let mut submissions = Vec::new();
    for n in 0..240 {
        submissions.push(match n % 8 {
            // Keys 0..30, each sent three times with the same request.
            0..=2 => submission(n, Some((n / 8, "same")), template.matter_version),
            _ => submission(n, None, template.matter_version),
        });
    }
    // One key sent at once with two different requests (whichever arrives first is
    // stored, the other refused), and a case naming a matter version that does not
    // exist (a foreign-key violation in the database).
    submissions.push(submission(
        240,
        Some((30, "first")),
        template.matter_version,
    ));
    submissions.push(submission(241, None, Some(987_654)));
    submissions.push(submission(
        242,
        Some((30, "second")),
        template.matter_version,
    ));
    let tasks: Vec<_> = submissions
        .into_iter()
        .enumerate()
        .map(|(n, (case, event, key))| {
            let store = store.clone();
            tokio::spawn(async move {
                let answer = store.create_case(&case, &event, key.as_ref()).await;
                (n, key, answer)
            })
        })
        .collect();
    let mut by_key: HashMap<String, Vec<(i64, bool)>> = HashMap::new();
    let mut fresh_ids = Vec::new();
    let mut conflicting = Vec::new();
    for task in tasks {
        let (n, key, answer) = task.await.unwrap();
        match n {
            240 | 242 => {
                conflicting.push((n, answer));
                continue;
            }
            241 => {
                assert!(answer.is_err(), "an unknown matter version is refused");
                continue;
            }
            _ => {}
        }
        let (case, fresh) = answer.unwrap();
        if let Some(key) = key {
            by_key.entry(key.key).or_default().push((case.id, fresh));
            // Whichever of the three was stored, it was sent with this key.
            let number: usize = case.description["case ".len()..].parse().unwrap();
            assert_eq!(number / 8, n / 8, "answered the case of its own key");
        } else {
            assert!(fresh);
            assert_eq!(
                case.description,
                format!("case {n}"),
                "answered its own case"
            );
        }
        if fresh {
            fresh_ids.push((n, case.id));
        }
    }
    assert_eq!(by_key.len(), 30);
    for (key, answers) in &by_key {
        assert_eq!(answers.len(), 3, "{key}");
        assert!(
            answers.iter().all(|(id, _)| *id == answers[0].0),
            "{key}: one case"
        );
        assert_eq!(
            answers.iter().filter(|(_, f)| *f).count(),
            1,
            "{key}: stored once"
        );
    }
    assert_eq!(fresh_ids.len(), 30 + 240 / 8 * 5);
    let stored: Vec<_> = conflicting
        .iter()
        .filter_map(|(n, answer)| answer.as_ref().ok().map(|(case, fresh)| (*n, case, *fresh)))
        .collect();
    let refused = conflicting
        .iter()
        .filter(|(_, answer)| matches!(answer, Err(StoreError::Refused(_))))
        .count();
    assert_eq!(
        (stored.len(), refused),
        (1, 1),
        "one key, two requests: {conflicting:?}"
    );
    let (n, case, fresh) = stored[0];
    assert!(fresh);
    assert_eq!(case.description, format!("case {n}"));
    // Once the key is taken, another request under it is refused whatever the timing.
    let (case, event, key) = submission(243, Some((0, "other")), template.matter_version);
    let late = store.create_case(&case, &event, key.as_ref()).await;
    assert!(matches!(late, Err(StoreError::Refused(_))), "{late:?}");
    for (n, id) in fresh_ids {
        let stored = store.case(id).await.unwrap();
        let events = store.case_events(id).await.unwrap();
        assert_eq!(events.len(), 1, "case {id}: one first event");
        assert_eq!(
            stored.description,
            format!("case {n}"),
            "the caller that stored it"
        );
        assert_eq!(
            events[0].actor,
            format!("actor {n}"),
            "case {id}: its own event"
        );
        assert_eq!(events[0].detail, json!({ "n": n }));
        assert_eq!(
            events[0].note.as_deref(),
            Some(format!("note {n}").as_str())
        );
    }
}

crate::contract!(
    a_new_report_must_be_accepted_within_working_hours,
    a_case_at_whole_degrees_is_stored_and_read_back,
    walk_cases_through_every_path_and_assess_them_exactly,
    the_matters_list_is_versioned_and_never_rewrites_filed_cases,
    a_county_s_matter_is_reported_only_in_that_county,
    a_write_whose_audit_row_cannot_be_written_does_not_happen,
    a_case_stays_with_a_department_serving_its_area,
    two_handlers_acting_at_once_one_wins_and_retries_are_idempotent,
    concurrent_submissions_each_get_their_own_case_and_event,
);

// ---- the service, as clients meet it ----

use crate::service::{Server, client, user};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::{Arc, Mutex};

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// What a webhook endpoint received: the event id header, the signature header, the
/// body as sent and as JSON.
struct Delivered {
    event_id: String,
    signature: String,
    raw: Vec<u8>,
    body: Value,
}

/// A department's webhook endpoint: records what it receives.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Delivered>>>) {
    let got: Arc<Mutex<Vec<Delivered>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, raw: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    sink.lock().unwrap().push(Delivered {
                        event_id: header("x-wangge-event-id"),
                        signature: header("x-wangge-signature"),
                        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                        raw: raw.to_vec(),
                    });
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_case_travels_over_http_with_streams_webhooks_and_open311(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let member = user(store, "member.li", UserRole::GridMember, &code(2)).await;
    let disp = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let h1 = user(store, "h.urban", UserRole::DepartmentHandler, TOWNSHIP).await;
    let h2 = user(store, "h.urban2", UserRole::DepartmentHandler, TOWNSHIP).await;
    store.add_staff("h.urban", T_URBAN).await.unwrap();
    store.add_staff("h.urban2", T_URBAN).await.unwrap();
    let (hook, received) = webhook_receiver().await;
    // The receiver is on loopback, which webhooks reach only when allowed.
    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_WEBHOOK_ALLOW_HOSTS", "[127.0.0.1]"),
            ("WANGGE_WEBHOOK_ALLOW_HTTP", "true"),
        ],
    );
    let url = |p: &str| format!("{}{p}", s.url);

    // The city admin gives urban management a webhook.
    let department = json!({
        "code": T_URBAN, "name": "综合行政执法队", "kind": "urban_management", "region_code": TOWNSHIP, "webhook_url": hook,
    });
    let (st, _, body) = send(
        client()
            .put(url(&format!("/v1/departments/{T_URBAN}")))
            .bearer_auth(&admin)
            .json(&department),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let first_secret = body["webhook_secret"]
        .as_str()
        .expect("a new URL gets a secret")
        .to_string();
    assert!(first_secret.starts_with("whsec_"), "{body}");
    // Shown once: saving the department again does not show (or change) it; rotating does.
    let (_, _, again) = send(
        client()
            .put(url(&format!("/v1/departments/{T_URBAN}")))
            .bearer_auth(&admin)
            .json(&department),
    )
    .await;
    assert!(again.get("webhook_secret").is_none(), "{again}");
    let mut rotate = department.clone();
    rotate["rotate_webhook_secret"] = json!(true);
    let (st, _, rotated) = send(
        client()
            .put(url(&format!("/v1/departments/{T_URBAN}")))
            .bearer_auth(&admin)
            .json(&rotate),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    let secret = rotated["webhook_secret"]
        .as_str()
        .expect("rotated")
        .to_string();
    assert_ne!(secret, first_secret);
    let (st, _, _) = send(client().put(url(&format!("/v1/departments/{T_URBAN}"))).bearer_auth(&disp).json(&json!({
        "code": T_URBAN, "name": "x", "kind": "urban_management", "region_code": TOWNSHIP, "webhook_url": null,
    }))).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a township dispatcher does not keep departments"
    );

    // The public list.
    let (st, _, list) = send(client().get(url("/v1/public/matters"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["count"], 2);
    let codes: Vec<&str> = list["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["matters"].as_array().unwrap())
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["WG-001", "WG-003"]);

    // The handler's event stream, open before anything happens.
    let stream_text = open_stream(&url("/v1/cases/stream"), &h1).await;

    // A resident reports, retries with the same key, and reuses the key wrongly.
    let resident = json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": "井盖缺失",
        "contact": {"name": "王小明", "phone": "13912345678"}});
    let (st, headers, first) = send(
        client()
            .post(url("/v1/public/reports"))
            .header("idempotency-key", "resident-0001")
            .json(&resident),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let id = first["id"].as_i64().unwrap();
    assert_eq!(headers["location"], format!("/v1/public/reports/{id}"));
    assert_eq!(first["status"], "open");
    let (st, headers, again) = send(
        client()
            .post(url("/v1/public/reports"))
            .header("idempotency-key", "resident-0001")
            .json(&resident),
    )
    .await;
    assert_eq!((st, again["id"].as_i64()), (StatusCode::CREATED, Some(id)));
    assert_eq!(headers["idempotent-replayed"], "true");
    let mut changed = resident.clone();
    changed["description"] = json!("别的事");
    let (st, _, problem) = send(
        client()
            .post(url("/v1/public/reports"))
            .header("idempotency-key", "resident-0001")
            .json(&changed),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{problem}");
    let (st, _, problem) =
        send(client().post(url("/v1/public/reports")).json(
            &json!({"lon": 100.0, "lat": 30.0, "matter": "WG-001", "description": "far away"}),
        ))
        .await;
    assert_eq!(
        (st, problem["type"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("urn:wangge:problem:bad-case")
        )
    );

    // A grid member files one of theirs.
    let (st, _, mine) = send(client().post(url("/v1/cases")).bearer_auth(&member).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-003", "description": "邻里纠纷"}),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["source"], "grid_member");
    // Staff intake is audited under the case's grid (residents' reports are recorded by
    // their case's first event, which nobody can change).
    let intake = b
        .store
        .audit(&wangge::store::AuditQuery {
            under: Some(TOWNSHIP.into()),
            actor: Some("member.li".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        intake.iter().any(|e| e.action == "case_report"
            && e.resource == format!("cases/{}", mine["id"])
            && e.scope_code == mine["grid_code"].as_str().unwrap()),
        "{intake:?}"
    );

    // The dispatcher's board: the resident's report is there, contact masked in lists,
    // unmasked (and audited) on the case itself.
    let (st, _, board) = send(
        client()
            .get(url("/v1/cases?state=reported"))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{board}");
    assert_eq!(board.as_array().unwrap().len(), 2);
    assert_eq!(board[0]["reporter_name"], "王**");
    let (st, headers, case) = send(
        client()
            .get(url(&format!("/v1/cases/{id}")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (
            case["reporter_name"].as_str(),
            case["personal_data"].as_bool()
        ),
        (Some("王小明"), Some(true))
    );
    assert_eq!(headers["etag"], format!("\"{}\"", case["version"]));
    assert!(
        case["allowed_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("accept"))
    );
    assert!(
        !case["allowed_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("decide_extension")),
        "no extension was requested, so none is offered to decide"
    );
    let audit = store
        .audit(&wangge::store::AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "read_personal"
        && e.resource == format!("cases/{id}")
        && e.actor == "disp"));
    let (st, _, _) = send(
        client()
            .get(url(&format!("/v1/cases/{id}")))
            .bearer_auth(&h1),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "not the department's case yet: answered as no case at all"
    );

    // Accept and assign: the department's stream and webhook hear of it.
    let step = |token: &str, body: Value, version: Option<i64>| {
        let mut r = client()
            .post(url(&format!("/v1/cases/{id}/actions")))
            .bearer_auth(token)
            .json(&body);
        if let Some(v) = version {
            r = r.header("if-match", format!("\"{v}\""));
        }
        send(r)
    };
    let (st, _, _) = step(&disp, json!({"action": "accept"}), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, assigned) = step(&disp, json!({"action": "assign"}), None).await;
    assert_eq!(st, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["department_code"], T_URBAN);
    assert_eq!(assigned["state"], "assigned");
    wait_for("the assignment on the handler's stream", || {
        stream_text.lock().unwrap().contains("event: assign")
    })
    .await;
    wait_for("the webhook", || !received.lock().unwrap().is_empty()).await;
    {
        let got = received.lock().unwrap();
        assert_eq!(got[0].body["case"]["id"], id);
        assert_eq!(got[0].body["event"]["kind"], "assign");
        assert_eq!(got[0].event_id, got[0].body["event"]["id"].to_string());
        // Signed with the secret the department was shown once, over this very body.
        let t: i64 = got[0]
            .signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("signature header {:?}", got[0].signature));
        assert!((Utc::now().timestamp() - t).abs() < 60);
        assert_eq!(
            got[0].signature,
            wangge::auth::sign_webhook(&secret, t, &got[0].raw)
        );
        assert_ne!(
            got[0].signature,
            wangge::auth::sign_webhook("whsec_other", t, &got[0].raw)
        );
    }
    let (st, _, _) = step(&disp, json!({"action": "accept"}), None).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, _, problem) = step(&disp, json!({"action": "accept"}), None).await;
    assert_eq!(problem["type"], "urn:wangge:problem:invalid-transition");
    let (st, _, _) = step(&member, json!({"action": "handle", "feedback": "x"}), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Two handlers of the department act on the version they both read: one wins.
    let (_, headers, seen) = send(
        client()
            .get(url(&format!("/v1/cases/{id}")))
            .bearer_auth(&h1),
    )
    .await;
    assert_eq!(
        seen["reporter_name"], "王**",
        "handlers see the contact masked"
    );
    let v = headers["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .parse::<i64>()
        .unwrap();
    let (a, b2) = tokio::join!(
        step(&h1, json!({"action": "acknowledge"}), Some(v)),
        step(
            &h2,
            json!({"action": "return", "reason": "other", "explanation": "not ours"}),
            Some(v)
        ),
    );
    // The loser is told of the conflict, except when the return won: the case then
    // has left the department, so for the other handler it is no case at all
    // (authorisation comes before the version, so a 409 reveals nothing to outsiders).
    let loser = match (a.0, b2.0) {
        (StatusCode::OK, other) => other,
        (other, StatusCode::OK) => {
            assert!(
                [StatusCode::CONFLICT, StatusCode::NOT_FOUND].contains(&other),
                "{other}: {}",
                a.2
            );
            other
        }
        _ => panic!("one of them wins: {} {}", a.2, b2.2),
    };
    if a.0 == StatusCode::OK {
        assert_eq!(loser, StatusCode::CONFLICT, "{}", b2.2);
    }

    // Open311, as a resident's app speaks it.
    let (st, _, services) = send(client().get(url("/open311/v2/services.json"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        services
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["service_code"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["WG-001"]
    );
    let (_, _, def) = send(client().get(url("/open311/v2/services/WG-001.json"))).await;
    assert_eq!(def["service_code"], "WG-001");
    let (_, _, disc) = send(client().get(url("/open311/v2/discovery.json"))).await;
    assert_eq!(
        disc["endpoints"][0]["specification"],
        "http://wiki.open311.org/GeoReport_v2"
    );
    let form = [
        ("service_code", "WG-001"),
        ("lat", "37.315"),
        ("long", "118.015"),
        ("description", "路灯不亮"),
        ("email", "a@example.org"),
        ("first_name", "小明"),
        ("last_name", "王"),
    ];
    let (st, _, posted) = send(client().post(url("/open311/v2/requests.json")).form(&form)).await;
    assert_eq!(st, StatusCode::CREATED, "{posted}");
    let rid = posted[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _, one) = send(client().get(url(&format!("/open311/v2/requests/{rid}.json")))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (one[0]["status"].as_str(), one[0]["service_code"].as_str()),
        (Some("open"), Some("WG-001"))
    );
    assert_eq!(one[0]["notes"][0]["type"], "opened");
    assert!(
        one[0]["expected_datetime"].is_null(),
        "a new request has no fulfilment date yet: its deadline is the centre's, to accept it"
    );
    assert!(
        one[0].get("email").is_none(),
        "no personal data in Open311 answers"
    );
    let mine_id = mine["id"].as_i64().unwrap();
    let (_, _, open) = send(client().get(url(&format!(
        "/open311/v2/requests.json?status=open&service_request_id={rid},{id},{mine_id}"
    ))))
    .await;
    assert_eq!(
        open.as_array().unwrap().len(),
        2,
        "a grid member's upload is not public: {open}"
    );
    let (st, _, internal) =
        send(client().get(url(&format!("/open311/v2/requests/{mine_id}.json")))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Answered word for word as a case that does not exist (ids are sequential).
    let (st, _, missing) = send(client().get(url("/open311/v2/requests/999999.json"))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(internal[0]["code"], missing[0]["code"]);
    assert_eq!(
        internal[0]["description"]
            .as_str()
            .unwrap()
            .replace(&mine_id.to_string(), "N"),
        missing[0]["description"]
            .as_str()
            .unwrap()
            .replace("999999", "N")
    );
    let (_, _, listed) = send(client().get(url("/open311/v2/requests.json?status=closed"))).await;
    assert_eq!(listed.as_array().unwrap().len(), 0);
    let (st, _, err) = send(client().post(url("/open311/v2/requests.json")).form(&[
        ("service_code", "WG-003"),
        ("lat", "37.315"),
        ("long", "118.015"),
        ("description", "x"),
    ]))
    .await;
    assert_eq!(
        (st, err[0]["code"].as_u64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(422)),
        "members-only matter: {err}"
    );
    let (st, _, err) = send(
        client()
            .post(url("/open311/v2/requests.json"))
            .form(&[("service_code", "WG-001")]),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    // A browser posting from another site's page (a form, or text/plain: neither asks
    // for CORS consent) is refused, so a hostile page cannot file reports from each of
    // its visitors' addresses; the same from this service's page is taken.
    let before = send(client().get(url("/open311/v2/requests.json")))
        .await
        .2
        .as_array()
        .map(Vec::len);
    for (site, origin) in [
        (Some("cross-site"), Some("https://evil.example")),
        (None, Some("https://evil.example")),
        (None, Some("null")),
        (Some("same-site"), Some("http://reports.evil.example:8081")),
    ] {
        let mut r = client().post(url("/open311/v2/requests.json")).form(&form);
        let mut public = client().post(url("/v1/public/reports")).json(&json!({
            "lon": 118.015, "lat": 37.315, "matter": "WG-001", "description": "x"}));
        for (name, value) in [("sec-fetch-site", site), ("origin", origin)] {
            if let Some(v) = value {
                r = r.header(name, v);
                public = public.header(name, v);
            }
        }
        let (st, _, err) = send(r).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{site:?} {origin:?}: {err}");
        assert_eq!(err[0]["code"], 403, "{err}");
        let (st, _, problem) = send(public).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{site:?} {origin:?}: {problem}");
        assert_eq!(problem["type"], "urn:wangge:problem:cross-site");
    }
    let (st, _, err) = send(
        client()
            .post(url("/open311/v2/requests.json"))
            .header("content-type", "text/plain")
            .body("service_code=WG-001&lat=37.315&long=118.015&description=x"),
    )
    .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{err}");
    let after = send(client().get(url("/open311/v2/requests.json")))
        .await
        .2
        .as_array()
        .map(Vec::len);
    assert_eq!(before, after, "nothing refused was stored");
    let host = url("").trim_start_matches("http://").to_string();
    let (st, _, posted) = send(
        client()
            .post(url("/open311/v2/requests.json"))
            .header("sec-fetch-site", "same-origin")
            .header("origin", format!("http://{host}"))
            .form(&form),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{posted}");
    let (st, _, posted) = send(
        client()
            .post(url("/open311/v2/requests.json"))
            .header("origin", format!("http://{host}"))
            .form(&form),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "an older browser on this site: {posted}"
    );
    // A contact the centre could not use is refused, naming the field.
    let (st, _, problem) = send(client().post(url("/v1/public/reports")).json(&json!({
        "lon": 118.015, "lat": 37.315, "matter": "WG-001", "description": "x",
        "contact": {"phone": "<script>"}})))
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("contact.phone"),
        "{problem}"
    );
    let mut bad_email = form.to_vec();
    bad_email.retain(|(k, _)| *k != "email");
    bad_email.push(("email", "a@b"));
    let (st, _, err) = send(
        client()
            .post(url("/open311/v2/requests.json"))
            .form(&bad_email),
    )
    .await;
    assert!(st.is_client_error(), "{err}");
    assert!(
        err[0]["description"]
            .as_str()
            .unwrap()
            .contains("contact.email"),
        "{err}"
    );
    // The Open311 report is on the dispatcher's board.
    let (_, _, board) = send(
        client()
            .get(url("/v1/cases?state=reported"))
            .bearer_auth(&disp),
    )
    .await;
    assert!(
        board
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"].as_i64() == rid.parse().ok() && c["source"] == "open311")
    );

    // Assessment as CSV, lists per centre, over a window around now (a day either
    // side: never a fixed calendar date).
    let window = crate::helpers::a_day_around_now();
    let (st, headers, csv) = send(
        client()
            .get(url(&format!("/v1/assessment?{window}&format=csv")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.as_str().unwrap().to_string();
    assert!(csv.starts_with("kind,key,received"), "{csv}");
    assert!(csv.contains(&format!("department,{T_URBAN},1,")), "{csv}");
    // For people: Chinese column names, the department's name beside its code, a BOM
    // so Excel reads the UTF-8.
    let (st, headers, people) = send(
        client()
            .get(url(&format!("/v1/assessment?{window}&format=csv&lang=zh")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"assessment-")
    );
    let people = people.as_str().unwrap().to_string();
    assert!(
        people.starts_with("\u{feff}类别,编码,名称,受理数"),
        "{people}"
    );
    assert!(
        people.contains(&format!("部门,{T_URBAN},综合行政执法队,1,")),
        "{people}"
    );
    let (st, _, _) = send(
        client()
            .get(url(&format!("/v1/assessment?{window}&format=csv&lang=fr")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = send(
        client()
            .get(url(&format!("/v1/assessment?{window}&format=xml")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a format it does not write");
    let (st, _, overdue) = send(
        client()
            .get(url(&format!("/v1/centres/{TOWNSHIP}/overdue")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(
        (st, overdue.as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (st, _, _) = send(
        client()
            .get(url(&format!("/v1/centres/{COUNTY}/overdue")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, density) = send(
        client()
            .get(url(&format!("/v1/analysis/density?{window}")))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(density["features"][0]["properties"]["code"], code(2));
    drop(s);
}

async fn every_accepted_submission_survives_a_sigkill_exactly_once(b: Backend) {
    let store = b.store.clone();
    seeded(store.as_ref()).await;
    seed_dispatch(store.as_ref()).await;
    let token = user(store.as_ref(), "member.li", UserRole::GridMember, &code(2)).await;
    let server = Server::start(&b.url, &[]);
    let base = Arc::new(Mutex::new(server.url.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    // Sixteen clients at once, so that on PostGIS the kill lands among batched commits.
    for task in 0..16 {
        let (base, stop, token) = (base.clone(), stop.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let mut accepted: Vec<(String, i64)> = Vec::new();
            let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("crash-{task}-{i}");
                i += 1;
                // Retry with the same key until a 201: the server may be down.
                for attempt in 0.. {
                    assert!(attempt < 400, "{key} never accepted");
                    let target = format!("{}/v1/cases", base.lock().unwrap());
                    let r = http.post(target).bearer_auth(&token).header("idempotency-key", &key)
                        .json(&json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": key}))
                        .send().await;
                    if let Ok(resp) = r
                        && resp.status() == StatusCode::CREATED
                        && let Ok(v) = resp.json::<Value>().await
                    {
                        accepted.push((key.clone(), v["id"].as_i64().unwrap()));
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill();
    let restarted = Server::start(&b.url, &[]);
    *base.lock().unwrap() = restarted.url.clone();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut accepted = Vec::new();
    for c in clients {
        accepted.extend(c.await.unwrap());
    }
    let stored = store
        .cases(&wangge::store::CaseQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    for c in &stored {
        per_key.entry(c.description.clone()).or_default().push(c.id);
    }
    assert!(
        accepted.len() > 20,
        "only {} submissions went through",
        accepted.len()
    );
    for (key, id) in &accepted {
        assert_eq!(
            per_key.get(key),
            Some(&vec![*id]),
            "{key}: accepted as {id}, stored as {:?}",
            per_key.get(key)
        );
    }
    assert_eq!(
        stored.len(),
        accepted.len(),
        "nothing stored twice or without an answer being retried"
    );
    eprintln!(
        "{}: {} submissions accepted across a SIGKILL, each stored once",
        b.store.backend(),
        accepted.len()
    );
    drop(restarted);
}

/// Event ids are drawn when a row is written, not when its transaction commits: an
/// event whose transaction commits after a higher-numbered one has been streamed must
/// still reach an open stream, once. (PostGIS can commit out of id order; SQLite has one
/// writer, so there the two commit in order and the test checks the plain path.)
async fn an_event_committed_after_a_later_numbered_one_reaches_an_open_stream_once(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let (st, _, case) = send(client().post(url("/v1/public/reports")).json(&json!({
        "lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": "路灯不亮",
        "contact": {"name": "王小明", "phone": "13912345678"}})))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{case}");
    let case_id = case["id"].as_i64().expect("case id");
    let grid = code(2);

    let stream_text = open_stream(&url("/v1/cases/stream"), &admin).await;
    // Let the stream settle on its start before anything is written.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    let insert = "INSERT INTO case_events (case_id, at, actor, kind, from_state, to_state, note, detail) \
                  VALUES ($1, 0, 'raw', $2, 'reported', 'reported', NULL, $3) RETURNING id";
    let detail = |n: &str| json!({ "grid": grid, "n": n }).to_string();
    let (first, second) = match &b.raw {
        crate::backends::Raw::Postgres(p) => {
            let insert = insert.replace("$3", "$3::jsonb");
            let mut early = p.begin().await.unwrap();
            let first: i64 = sqlx::query_scalar(&insert)
                .bind(case_id)
                .bind("probe_early")
                .bind(detail("early"))
                .fetch_one(&mut *early)
                .await
                .unwrap();
            let mut late = p.begin().await.unwrap();
            let second: i64 = sqlx::query_scalar(&insert)
                .bind(case_id)
                .bind("probe_late")
                .bind(detail("late"))
                .fetch_one(&mut *late)
                .await
                .unwrap();
            assert!(second > first);
            // The higher id commits first, and the feeder has time to read past it.
            late.commit().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            early.commit().await.unwrap();
            (first, second)
        }
        crate::backends::Raw::Sqlite(p) => {
            let insert = insert.replace('$', "?");
            let mut ids = Vec::new();
            for (kind, n) in [("probe_early", "early"), ("probe_late", "late")] {
                let mut tx = p.begin().await.unwrap();
                let id: i64 = sqlx::query_scalar(&insert)
                    .bind(case_id)
                    .bind(kind)
                    .bind(detail(n))
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                ids.push(id);
            }
            (ids[0], ids[1])
        }
    };
    wait_for("both events on the open stream", || {
        let text = stream_text.lock().unwrap();
        text.contains(&format!("id: {first}\n")) && text.contains(&format!("id: {second}\n"))
    })
    .await;
    // Another feeder round or two: nothing arrives twice.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let text = stream_text.lock().unwrap().clone();
    for id in [first, second] {
        assert_eq!(
            text.matches(&format!("id: {id}\n")).count(),
            1,
            "event {id} once on the stream:\n{text}"
        );
    }
    // Resuming: streams send events in the order their transactions began writing
    // (PostGIS holds the later one back until the earlier commits), so after the
    // second nothing is replayed, and after the first only the second.
    let (first_sent, last_sent) = (first, second);
    let after_last = resumed_stream(&url("/v1/cases/stream"), &admin, last_sent).await;
    assert!(!after_last.contains("id: "), "{after_last}");
    let after_first = resumed_stream_until(&url("/v1/cases/stream"), &admin, first_sent, |t| {
        t.contains(&format!("id: {last_sent}\n"))
    })
    .await;
    assert!(
        after_first.contains(&format!("id: {last_sent}\n")),
        "{after_first}"
    );
    assert!(
        !after_first.contains(&format!("id: {first_sent}\n")),
        "{after_first}"
    );
}

/// An open event stream, and everything it has sent so far.
/// An open stream follows its reader: once a handler is dismissed from a department,
/// its cases stop reaching the handler's stream (within the token cache's lifetime).
async fn a_stream_stops_showing_a_department_s_cases_once_its_handler_is_dismissed(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let handler = user(store, "h.urban", UserRole::DepartmentHandler, TOWNSHIP).await;
    let disp = user(store, "town.disp", UserRole::Dispatcher, TOWNSHIP).await;
    store.add_staff("h.urban", T_URBAN).await.unwrap();
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let assign_new_case = |text: &'static str| {
        let disp = disp.clone();
        async move {
            let (st, _, case) = send(client().post(url("/v1/public/reports")).json(&json!({
                "lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": text})))
            .await;
            assert_eq!(st, StatusCode::CREATED, "{case}");
            let id = case["id"].as_i64().unwrap();
            for step in [json!({"action": "accept"}), json!({"action": "assign"})] {
                let (st, _, body) = send(
                    client()
                        .post(url(&format!("/v1/cases/{id}/actions")))
                        .bearer_auth(&disp)
                        .json(&step),
                )
                .await;
                assert_eq!(st, StatusCode::OK, "{body}");
            }
            id
        }
    };
    let stream = open_stream(&url("/v1/cases/stream"), &handler).await;
    let before = assign_new_case("before").await;
    wait_for("the assignment on the handler's stream", || {
        stream
            .lock()
            .unwrap()
            .contains(&format!("\"case_id\":{before}"))
    })
    .await;
    store.remove_staff("h.urban", T_URBAN).await.unwrap();
    // The stream re-reads its reader every token-cache lifetime; wait two, so a late
    // re-read on a busy machine still comes before the next case.
    tokio::time::sleep(
        2 * wangge::http::extract::TOKEN_CACHE_TTL + std::time::Duration::from_secs(1),
    )
    .await;
    let after = assign_new_case("after").await;
    // Give the feeder time to deliver it, were it still shown.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let text = stream.lock().unwrap().clone();
    assert!(
        !text.contains(&format!("\"case_id\":{after}")),
        "a dismissed handler's stream showed case {after}: {text}"
    );
}

async fn open_stream(url: &str, token: &str) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let mut resp = client().get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = resp.chunk().await {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    text
}

/// What a stream resumed after event `after` sends in its first second (for what must
/// not come; what must come is waited for with [`resumed_stream_until`]).
pub async fn resumed_stream(url: &str, token: &str, after: i64) -> String {
    read_stream(url, token, after, std::time::Duration::from_secs(1), |_| {
        false
    })
    .await
}

/// A stream resumed after event `after`, read until `done` holds for what it sent (or
/// a generous 20 s: the caller's assertion then says what was missing).
pub async fn resumed_stream_until(
    url: &str,
    token: &str,
    after: i64,
    done: impl Fn(&str) -> bool,
) -> String {
    read_stream(url, token, after, std::time::Duration::from_secs(20), done).await
}

async fn read_stream(
    url: &str,
    token: &str,
    after: i64,
    window: std::time::Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut resp = client()
        .get(url)
        .bearer_auth(token)
        .header("last-event-id", after.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut text = String::new();
    let until = tokio::time::Instant::now() + window;
    while !done(&text) {
        match tokio::time::timeout_at(until, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text
}

/// A browser's EventSource cannot send a header: a ticket asked for with the token opens
/// one stream, once, for whoever may read cases; others, and used or made-up tickets,
/// are refused.
async fn a_stream_ticket_opens_one_stream_once_for_who_may_read_cases(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let disp = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let planner = user(store, "planner.li", UserRole::Planner, TOWNSHIP).await;
    let idle = user(store, "h.idle", UserRole::DepartmentHandler, TOWNSHIP).await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let ask = |token: Option<&str>| {
        let mut r = client().post(url("/v1/cases/stream-ticket"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        send(r)
    };
    let (st, _, _) = ask(None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, problem) = ask(Some(&planner)).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a planner reads no cases: {problem}"
    );
    let (st, _, problem) = ask(Some(&idle)).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a handler of no department reads no cases: {problem}"
    );
    let (st, headers, made) = ask(Some(&disp)).await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_eq!(headers["cache-control"], "no-store", "a signed-in answer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let stream = made["stream"].as_str().unwrap().to_string();
    assert!(stream.starts_with("/v1/cases/stream?ticket=wgt_"), "{made}");
    // A HEAD does not spend it.
    let head = client().head(url(&stream)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);

    // The ticket opens the stream, which shows the dispatcher's events as they happen.
    let mut resp = client().get(url(&stream)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (st, _, _) = send(client().post(url("/v1/public/reports")).json(&json!({
        "lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": "井盖缺失"})))
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let mut text = String::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !text.contains("event: reported") {
        match tokio::time::timeout_at(until, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(text.contains("event: reported"), "{text}");

    // Once only; and nothing opens with a ticket nobody issued.
    let (st, _, _) = send(client().get(url(&stream))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a used ticket");
    let (st, _, _) = send(client().get(url("/v1/cases/stream?ticket=wgt_made_up"))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

crate::contract!(
    an_event_committed_after_a_later_numbered_one_reaches_an_open_stream_once,
    a_stream_stops_showing_a_department_s_cases_once_its_handler_is_dismissed,
    a_case_travels_over_http_with_streams_webhooks_and_open311,
    every_accepted_submission_survives_a_sigkill_exactly_once,
    a_stream_ticket_opens_one_stream_once_for_who_may_read_cases,
);
