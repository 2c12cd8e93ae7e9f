//! Case steps authorised against the stored case and department, not the request's
//! claims: assignments only to departments serving the case's area, merges only into
//! cases the caller may dispatch (and nothing revealed of others), authorisation before
//! `If-Match`, handlers' centre lists limited to their departments, names of members
//! masked in timelines and assessments as elsewhere, and every step in the audit log.

use crate::backends::Backend;
use crate::dispatch::{IN_NE, T_SOCIAL, T_URBAN, TOWNSHIP, seed_dispatch};
use crate::service::{Server, client, get, seeded, user};
use crate::store_contract::code;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wangge::domain::UserRole;
use wangge::store::Department;

use crate::service::send;

pub async fn case_steps_are_authorised_against_the_stored_case_and_department(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    store
        .upsert_department(&Department {
            code: "371603-public_security".into(),
            name: "沾化区公安分局".into(),
            kind: "public_security".into(),
            region_code: "371603".into(),
            webhook_url: None,
        })
        .await
        .unwrap();
    let disp = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let other = user(store, "zhanhua", UserRole::Dispatcher, "371603").await;
    let member = user(store, "member.li", UserRole::GridMember, &code(2)).await;
    let urban = user(store, "h.urban", UserRole::DepartmentHandler, TOWNSHIP).await;
    let social = user(store, "h.social", UserRole::DepartmentHandler, TOWNSHIP).await;
    let auditor = user(store, "auditor", UserRole::Auditor, "371602").await;
    store.add_staff("h.urban", T_URBAN).await.unwrap();
    store.add_staff("h.social", T_SOCIAL).await.unwrap();
    let s = Server::start(&b.url, &[("WANGGE_DUE_SOON_HOURS", "2000")]);
    let url = |p: &str| format!("{}{p}", s.url);
    let report = |text: &'static str| {
        client()
            .post(url("/v1/public/reports"))
            .json(&json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": text}))
    };
    let step = |token: &str, id: i64, body: Value, version: Option<i64>| {
        let mut r = client()
            .post(url(&format!("/v1/cases/{id}/actions")))
            .bearer_auth(token)
            .json(&body);
        if let Some(v) = version {
            r = r.header("if-match", format!("\"{v}\""));
        }
        send(r)
    };
    let mut ids = Vec::new();
    for text in ["井盖缺失", "路灯不亮", "垃圾堆放"] {
        let (st, c) = send(report(text)).await;
        assert_eq!(st, StatusCode::CREATED, "{c}");
        ids.push(c["id"].as_i64().unwrap());
    }
    let (first, second, third) = (ids[0], ids[1], ids[2]);
    let (st, _) = step(&disp, first, json!({"action": "accept"}), None).await;
    assert_eq!(st, StatusCode::OK);

    // Another county's department cannot be given a case of this one.
    let (st, p) = step(
        &disp,
        first,
        json!({"action": "assign", "department": "371603-public_security", "reason": "they asked"}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("serves 371603"),
        "{p}"
    );
    let (st, assigned) = step(&disp, first, json!({"action": "assign"}), None).await;
    assert_eq!(st, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["department_code"], T_URBAN);

    // A step's note cannot reorder the timeline it is shown in.
    let (st, p) = step(
        &disp,
        first,
        json!({"action": "supervise", "note": "\u{202e}\u{200b}催办"}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (st, p) = step(
        &disp,
        first,
        json!({"action": "close", "note": "结案\u{2066}"}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    // An outsider with a stale If-Match is refused for who they are, learning nothing
    // of the case's version, nor even that it exists: the answer is a missing case's,
    // word for word.
    let (st, p) = step(
        &other,
        first,
        json!({"action": "supervise", "note": "x"}),
        Some(999),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{p}");
    assert!(!p.to_string().contains("version"), "{p}");
    let (st, missing) = step(
        &other,
        999_999,
        json!({"action": "supervise", "note": "x"}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        p["detail"]
            .as_str()
            .unwrap()
            .replace(&first.to_string(), "N"),
        missing["detail"].as_str().unwrap().replace("999999", "N")
    );
    let (st, read) = get(&url(&format!("/v1/cases/{first}")), Some(&other)).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{read}");
    assert_eq!(read["detail"], p["detail"]);
    // One who may read the case but not take the step is told so.
    let (st, p) = step(
        &disp,
        first,
        json!({"action": "handle", "feedback": "x"}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{p}");

    // A merge target out of the caller's reach is answered like one that does not exist.
    let (st, _) = step(
        &disp,
        third,
        json!({"action": "escalate_up", "reason": "区级协调"}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, out_of_reach) = step(
        &disp,
        second,
        json!({"action": "merge", "into": third}),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{out_of_reach}");
    let (_, missing) = step(
        &disp,
        second,
        json!({"action": "merge", "into": 999_999}),
        None,
    )
    .await;
    assert_eq!(
        out_of_reach["detail"]
            .as_str()
            .unwrap()
            .replace(&third.to_string(), "N"),
        missing["detail"].as_str().unwrap().replace("999999", "N"),
    );

    // Handlers' centre lists hold their own departments' cases only.
    let due = |token: &str| {
        let u = url(&format!("/v1/centres/{TOWNSHIP}/due-soon"));
        let t = token.to_string();
        async move { get(&u, Some(&t)).await }
    };
    let (st, mine) = due(&urban).await;
    assert_eq!(st, StatusCode::OK, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    let (st, not_mine) = due(&social).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(not_mine, json!([]), "another department's handler");
    let (_, asked) = get(
        &url(&format!(
            "/v1/centres/{TOWNSHIP}/due-soon?department={T_URBAN}"
        )),
        Some(&social),
    )
    .await;
    assert_eq!(
        asked,
        json!([]),
        "naming someone else's department does not help"
    );

    // The member on duty: in full for the dispatcher, masked for the handler.
    let events = |token: &str| {
        let u = url(&format!("/v1/cases/{first}/events"));
        let t = token.to_string();
        async move { get(&u, Some(&t)).await.1 }
    };
    let on_duty = |evs: &Value| evs[0]["detail"]["member_on_duty"].clone();
    assert_eq!(on_duty(&events(&disp).await), "李网格2");
    assert_eq!(
        on_duty(&events(&urban).await),
        wangge::auth::mask_name("李网格2")
    );
    // And on the event stream, replayed from the start.
    let stream = url("/v1/cases/stream");
    let masked = wangge::auth::mask_name("李网格2");
    let audited =
        crate::dispatch::resumed_stream_until(&stream, &auditor, 0, |t| t.contains(&masked)).await;
    assert!(
        audited.contains(&wangge::auth::mask_name("李网格2")),
        "{audited}"
    );
    assert!(!audited.contains("李网格2"), "{audited}");
    let dispatched =
        crate::dispatch::resumed_stream_until(&stream, &disp, 0, |t| t.contains("李网格2")).await;
    assert!(dispatched.contains("李网格2"), "{dispatched}");

    // A grid member's own work shows in assessments of their area only.
    let (st, mine) = send(client().post(url("/v1/cases")).bearer_auth(&member).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-003", "description": "邻里纠纷"}),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{mine}");
    // A window around now: a day either side.
    let period = crate::helpers::a_day_around_now();
    let (st, own_area) = get(&url(&format!("/v1/assessment?{period}")), Some(&disp)).await;
    assert_eq!(st, StatusCode::OK, "{own_area}");
    assert!(
        own_area["members"].to_string().contains("member.li"),
        "{own_area}"
    );
    let (st, other_area) = get(&url(&format!("/v1/assessment?{period}")), Some(&other)).await;
    assert_eq!(st, StatusCode::OK, "{other_area}");
    assert_eq!(other_area["members"], json!([]), "{other_area}");

    // Every step is in the audit log of the case's area.
    let (st, log) = get(&url("/v1/audit?limit=1000"), Some(&auditor)).await;
    assert_eq!(st, StatusCode::OK);
    let steps: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("case_"))
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["resource"].as_str().unwrap(),
            )
        })
        .collect();
    let first_res = format!("cases/{first}");
    let third_res = format!("cases/{third}");
    for expected in [
        ("case_accept", first_res.as_str()),
        ("case_assign", first_res.as_str()),
        ("case_escalate_up", third_res.as_str()),
    ] {
        assert!(steps.contains(&expected), "{expected:?} in {steps:?}");
    }
}

pub async fn matters_lists_are_the_city_s_and_each_county_s_and_need_a_second_person(b: Backend) {
    use wangge::domain::{Category, CentreLevel, TimeLimit, TimeUnit};
    let store = b.store.as_ref();
    seeded(store).await;
    let county = user(store, "county.disp", UserRole::Dispatcher, "371602").await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let admin2 = user(store, "city.qian", UserRole::CityAdmin, "3716").await;
    let auditor = user(store, "city.audit", UserRole::Auditor, "3716").await;
    let planner = user(store, "county.plan", UserRole::Planner, "371602").await;
    let planner2 = user(store, "county.plan2", UserRole::Planner, "371602").await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let one_hour = serde_json::to_value(crate::dispatch::matter(
        "WG-001",
        Category::SafetyHazard,
        &[(CentreLevel::Township, "urban_management")],
        TimeLimit {
            amount: 1,
            unit: TimeUnit::WorkingHours,
        },
        true,
    ))
    .unwrap();
    // A list changes from today on.
    let mut one_hour = one_hour;
    one_hour["valid_from"] = json!(wangge::domain::today_in_china());
    let propose = |token: &str| {
        send(
            client()
                .post(url("/v1/matters"))
                .bearer_auth(token)
                .json(&one_hour),
        )
    };
    let decide = |token: &str, id: i64| {
        send(
            client()
                .post(url(&format!("/v1/matters/versions/{id}/admit")))
                .bearer_auth(token),
        )
    };

    // A county cannot put a one-hour limit on the city's list, nor admit one.
    let (st, p) = propose(&county).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
    // Its own list is its own (Art. 10): proposed there, admitted by another person of
    // the county, never by the proposer, and audited where the county's auditors look.
    let mut local = one_hour.clone();
    local["code"] = json!("BC-001");
    local["region_code"] = json!("371602");
    let (st, proposal) = send(
        client()
            .post(url("/v1/matters"))
            .bearer_auth(&county)
            .json(&local),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["region_code"], "371602");
    let id = proposal["id"].as_i64().unwrap();
    let (st, p) = decide(&county, id).await;
    assert_eq!(p["type"], "urn:wangge:problem:four-eyes", "{st} {p}");
    let (st, p) = decide(&planner, id).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
    let county2 = user(store, "county.disp2", UserRole::Dispatcher, "371602").await;
    let (st, p) = decide(&county2, id).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    // The code is the county's now: the city cannot list it as its own.
    let mut taken = one_hour.clone();
    taken["code"] = json!("BC-001");
    let (st, p) = send(
        client()
            .post(url("/v1/matters"))
            .bearer_auth(&admin)
            .json(&taken),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["type"], "urn:wangge:problem:other-list");
    // A list is a city's or a county's, never a township's.
    let mut township = local.clone();
    township["region_code"] = json!("371602001");
    let (st, p) = send(
        client()
            .post(url("/v1/matters"))
            .bearer_auth(&county)
            .json(&township),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{p}");
    // The public list for the county shows the county's matter; its rows are the
    // county auditor's, not the city's alone.
    let (st, list) = send(client().get(url("/v1/public/matters?county=371602"))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(list.to_string().contains("BC-001"), "{list}");
    let county_audit = user(store, "county.audit", UserRole::Auditor, "371602").await;
    let (_, rows) = send(
        client()
            .get(url("/v1/audit?under=371602"))
            .bearer_auth(&county_audit),
    )
    .await;
    let actions: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resource"] == json!(format!("matters/{id}")))
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions, ["matter_propose", "matter_admit"]);

    // Codes and names that read as another's, backdated lists and endless limits are
    // refused.
    let post = |token: &str, body: Value| {
        send(
            client()
                .post(url("/v1/matters"))
                .bearer_auth(token)
                .json(&body),
        )
    };
    for (field, value) in [
        ("code", json!("BC-001\u{200b}")),
        ("code", json!("bc-002")),
        ("code", json!("B".repeat(33))),
        ("name", json!("井盖\u{202e}缺失")),
        ("name", json!("井盖\u{061c}缺失")),
        ("name", json!("井盖\u{00ad}")),
        ("name", json!("\u{2800}")),
        ("valid_from", json!("2020-01-01")),
        (
            "time_limit",
            json!({"amount": 100_000, "unit": "working_days"}),
        ),
        (
            "time_limit",
            json!({"amount": u32::MAX, "unit": "working_hours"}),
        ),
    ] {
        let mut bad = local.clone();
        bad["code"] = json!("BC-002");
        bad[field] = value.clone();
        let (st, p) = post(&county, bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{field} = {value}: {p}");
    }
    // A proposal whose start has passed by the time it is decided is not admitted.
    let mut stale = serde_json::from_value::<wangge::store::NewMatter>(local.clone()).unwrap();
    stale.code = "BC-003".into();
    stale.region_code = "371602".into();
    stale.proposed_by = "county.disp".into();
    stale.valid_from = "2026-01-02".parse().unwrap();
    let stale = store.propose_matter(&stale).await.unwrap();
    let (st, p) = decide(&county2, stale.id).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["type"], "urn:wangge:problem:stale-proposal");
    // Calendar notes and members' names and places are checked as names are.
    for note in [
        "元旦\u{202e}假期",
        "元旦\u{3000}假期",
        "\u{1bca0}",
        "元旦\u{00a0}",
    ] {
        let (st, p) = send(
            client()
                .put(url("/v1/calendar/2027-01-04"))
                .bearer_auth(&admin)
                .json(&json!({"kind": "holiday", "note": note})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{note:?}: {p}");
    }
    for member in [
        json!({"scope_code": "3716zzz", "role": "grid_leader", "name": "李四"}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": "李\u{202e}四"}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": "李".repeat(51)}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": "李四", "phone": "call me"}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": "李四", "phone": "   "}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": "\u{1bca0}\u{3000}"}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": " 李四 "}),
        json!({"scope_code": code(2), "role": "grid_leader", "name": "李\u{1d159}四"}),
    ] {
        let (st, p) = send(
            client()
                .post(url("/v1/members"))
                .bearer_auth(&admin)
                .json(&member),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{member}: {p}");
    }
    let (st, p) = send(client().post(url("/v1/members")).bearer_auth(&admin).json(
        &json!({"scope_code": code(2), "role": "grid_leader", "name": "李四",
                "phone": "+86 139-1234-5678"}),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    // A refused proposal binds no code: the city may list it after.
    let mut squat = local.clone();
    squat["code"] = json!("WG-015");
    let (st, p) = post(&county, squat.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let refuse = p["id"].as_i64().unwrap();
    let (st, _) = send(
        client()
            .post(url(&format!("/v1/matters/versions/{refuse}/refuse")))
            .bearer_auth(&county2),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    squat["region_code"] = json!("");
    let (st, p) = post(&admin, squat).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    // The city admits, but not what the same person proposed.
    let (st, own) = propose(&admin).await;
    assert_eq!(st, StatusCode::CREATED);
    let own_id = own["id"].as_i64().unwrap();
    let (st, p) = decide(&admin, own_id).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["type"], "urn:wangge:problem:four-eyes");
    let (st, admitted) = decide(&admin2, own_id).await;
    assert_eq!(st, StatusCode::OK, "{admitted}");

    // The calendar is the city's.
    let holiday = json!({"kind": "holiday", "note": "国庆"});
    let (st, _) = send(
        client()
            .put(url("/v1/calendar/2026-10-01"))
            .bearer_auth(&county)
            .json(&holiday),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = send(
        client()
            .put(url("/v1/calendar/2026-10-01"))
            .bearer_auth(&admin)
            .json(&holiday),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    // A plan's submitter does not approve it.
    let form = reqwest::multipart::Form::new()
        .text("scope", crate::store_contract::COMMUNITY)
        .part(
            "file",
            reqwest::multipart::Part::text(crate::service::second_plan_geojson())
                .file_name("g.geojson"),
        );
    let (st, plan) = send(
        client()
            .post(url("/v1/plans"))
            .bearer_auth(&planner)
            .multipart(form),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
    let plan_step = |token: &str, step: &str| {
        send(
            client()
                .post(url(&format!("/v1/plans/{}/{step}", plan["id"])))
                .bearer_auth(token)
                .json(&json!({"effective": "2026-01-01"})),
        )
    };
    assert_eq!(plan_step(&planner, "submit").await.0, StatusCode::OK);
    let (st, p) = plan_step(&planner, "approve").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["type"], "urn:wangge:problem:four-eyes");
    assert_eq!(plan_step(&planner2, "approve").await.0, StatusCode::OK);

    // The city's auditor sees the matters and calendar changes.
    let (_, log) = get(&url("/v1/audit?limit=1000"), Some(&auditor)).await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["matter_propose", "matter_admit", "calendar_set"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

crate::contract!(
    case_steps_are_authorised_against_the_stored_case_and_department,
    matters_lists_are_the_city_s_and_each_county_s_and_need_a_second_person,
);
