//! Every write, walked once: each leaves an audit row under the region of what it
//! changed, which that region's auditors (and the city's) see and another county's
//! do not. City-wide things (the matters list, the calendar) are the city auditor's.

use crate::backends::Backend;
use crate::dispatch::{C_HOUSING, IN_NE, seed_dispatch};
use crate::service::{Server, account, client, get, second_plan_geojson, seeded, user};
use crate::store_contract::{COMMUNITY, code};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wangge::domain::UserRole;

async fn every_write_is_audited_where_its_regions_auditors_look(b: Backend) {
    use wangge::domain::{Category, CentreLevel, TimeLimit, TimeUnit};
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let hash = wangge::auth::hash_password("correct horse battery").unwrap();
    account(
        store,
        "county.disp",
        Some(&hash),
        UserRole::Dispatcher,
        "371602",
    )
    .await;
    let disp = user(store, "town.disp", UserRole::Dispatcher, "371602001").await;
    let county = user(store, "county.disp2", UserRole::Dispatcher, "371602").await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let member = user(store, "member.li", UserRole::GridMember, &code(2)).await;
    let planner = user(store, "county.plan", UserRole::Planner, "371602").await;
    user(store, "h.county", UserRole::DepartmentHandler, "371602").await;
    let bc_audit = user(store, "bc.audit", UserRole::Auditor, "371602").await;
    let zh_audit = user(store, "zh.audit", UserRole::Auditor, "371603").await;
    let city_audit = user(store, "city.audit", UserRole::Auditor, "3716").await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let ok = |what: &str, st: StatusCode, body: &Value| {
        assert!(st.is_success(), "{what}: {st} {body}");
    };
    let send = |r: reqwest::RequestBuilder| async move {
        let resp = r.send().await.expect("request");
        let st = resp.status();
        (st, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    // (action, resource, region: "county" for 371602's auditors, "city" for the city's)
    let mut expected: Vec<(String, String, &str)> = Vec::new();

    // Logins, a failed one, a logout.
    let login = |password: &'static str| {
        client()
            .post(url("/v1/auth/login"))
            .json(&json!({"name": "county.disp", "password": password}))
    };
    let (st, body) = send(login("correct horse battery")).await;
    ok("login", st, &body);
    let token = body["token"].as_str().unwrap().to_string();
    let (st, _) = send(login("wrong horse battery")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let st = client()
        .post(url("/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    for a in ["login", "login_failed", "logout"] {
        expected.push((a.into(), "users/county.disp".into(), "county"));
    }

    // A member added to a grid.
    let (st, body) = send(client().post(url("/v1/members")).bearer_auth(&admin).json(
        &json!({"scope_code": code(1), "role": "part_time", "name": "赵兼职", "phone": "13700000000"}),
    ))
    .await;
    ok("member", st, &body);
    expected.push((
        "member_add".into(),
        format!("members/{}", body["id"]),
        "county",
    ));

    // Staff intake and a step.
    let (st, case) = send(client().post(url("/v1/cases")).bearer_auth(&member).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-003", "description": "邻里纠纷"}),
    ))
    .await;
    ok("case", st, &case);
    let case_res = format!("cases/{}", case["id"]);
    expected.push(("case_report".into(), case_res.clone(), "county"));
    let (st, body) = send(
        client()
            .post(url(&format!("/v1/cases/{}/actions", case["id"])))
            .bearer_auth(&disp)
            .json(&json!({"action": "accept"})),
    )
    .await;
    ok("accept", st, &body);
    expected.push(("case_accept".into(), case_res, "county"));

    // A department and its staff.
    let (st, body) = send(
        client()
            .put(url(&format!("/v1/departments/{C_HOUSING}")))
            .bearer_auth(&county)
            .json(
                &json!({"code": C_HOUSING, "name": "滨城区住建局", "kind": "housing",
                "region_code": "371602", "webhook_url": null}),
            ),
    )
    .await;
    ok("department", st, &body);
    expected.push((
        "department_put".into(),
        format!("departments/{C_HOUSING}"),
        "county",
    ));
    let st = client()
        .post(url(&format!("/v1/departments/{C_HOUSING}/staff")))
        .bearer_auth(&county)
        .json(&json!({"user": "h.county"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    expected.push((
        "staff_add".into(),
        format!("departments/{C_HOUSING}/staff/h.county"),
        "county",
    ));

    // A county's matters list (Art. 10): a matter proposed and admitted there; the
    // city's calendar: a holiday set and cleared.
    let mut proposal = serde_json::to_value(crate::dispatch::matter(
        "BC-009",
        Category::SafetyHazard,
        &[(CentreLevel::Township, "urban_management")],
        TimeLimit {
            amount: 3,
            unit: TimeUnit::WorkingDays,
        },
        true,
    ))
    .unwrap();
    proposal["region_code"] = json!("371602");
    proposal["valid_from"] = json!(wangge::domain::today_in_china());
    let (st, body) = send(
        client()
            .post(url("/v1/matters"))
            .bearer_auth(&county)
            .json(&proposal),
    )
    .await;
    ok("propose", st, &body);
    let matter_res = format!("matters/{}", body["id"]);
    expected.push(("matter_propose".into(), matter_res.clone(), "county"));
    let (st, body) = send(
        client()
            .post(url(&format!("/v1/matters/versions/{}/admit", body["id"])))
            .bearer_auth(&admin),
    )
    .await;
    ok("admit", st, &body);
    expected.push(("matter_admit".into(), matter_res, "county"));
    let st = client()
        .put(url("/v1/calendar/2026-10-01"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "holiday", "note": "国庆"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::NO_CONTENT);
    let st = client()
        .delete(url("/v1/calendar/2026-10-01"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .status();
    assert!(st.is_success(), "{st}");
    for a in ["calendar_set", "calendar_clear"] {
        expected.push((a.into(), "calendar/2026-10-01".into(), "city"));
    }

    // A plan drafted and submitted.
    let form = reqwest::multipart::Form::new()
        .text("scope", COMMUNITY.to_string())
        .text("title", "walk")
        .part(
            "file",
            reqwest::multipart::Part::bytes(second_plan_geojson().into_bytes())
                .file_name("plan.geojson"),
        );
    let (st, plan) = send(
        client()
            .post(url("/v1/plans"))
            .bearer_auth(&planner)
            .multipart(form),
    )
    .await;
    ok("plan", st, &plan);
    let plan_res = format!("plans/{}", plan["id"]);
    expected.push(("plan_draft".into(), plan_res.clone(), "county"));
    let (st, body) = send(
        client()
            .post(url(&format!("/v1/plans/{}/submit", plan["id"])))
            .bearer_auth(&planner),
    )
    .await;
    ok("submit", st, &body);
    expected.push(("plan_submit".into(), plan_res, "county"));

    // Who sees what.
    let rows = |token: String| {
        let u = url("/v1/audit?limit=1000");
        async move {
            let (st, log) = get(&u, Some(&token)).await;
            assert_eq!(st, StatusCode::OK, "{log}");
            log.as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["action"].as_str().unwrap().to_string(),
                        e["resource"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let (bc, zh, city) = (
        rows(bc_audit).await,
        rows(zh_audit).await,
        rows(city_audit).await,
    );
    for (action, resource, region) in &expected {
        let row = (action.clone(), resource.clone());
        assert!(city.contains(&row), "the city's auditor sees {row:?}");
        assert_eq!(
            bc.contains(&row),
            *region == "county",
            "371602's auditor and {row:?}"
        );
        assert!(!zh.contains(&row), "371603's auditor does not see {row:?}");
    }
    assert_eq!(expected.len(), 14);
}

crate::contract!(every_write_is_audited_where_its_regions_auditors_look);
