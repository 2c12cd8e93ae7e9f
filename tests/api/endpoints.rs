//! Every endpoint answers its caller and refuses the wrong one: the routes the larger
//! scenarios do not reach (a plan returned and rejected, its grids, events and
//! problems read and refused; the matters versions, calendar, analysis, centres,
//! staff, Open311 without `.json`, OGC's metadata and refusals, unknown paths), each
//! with its success and its main refusal, on both backends.

use crate::backends::Backend;
use crate::dispatch::{IN_NE, T_URBAN, TOWNSHIP, seed_dispatch};
use crate::service::{Server, client, get, post, second_plan_geojson, seeded, user};
use reqwest::StatusCode;
use serde_json::json;
use wangge::domain::UserRole;

use crate::service::send;

/// A plan returned, resubmitted and rejected over HTTP, read back whole, and refused
/// to everyone outside its township.
async fn a_plan_is_returned_rejected_and_read_only_by_its_own(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let township = user(store, "li", UserRole::Planner, TOWNSHIP).await;
    let elsewhere = user(store, "wu", UserRole::Planner, "371602002").await;
    let county = user(store, "wang", UserRole::Planner, "371602").await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);
    let form = || {
        reqwest::multipart::Form::new()
            .text("scope", crate::store_contract::COMMUNITY)
            .text("title", "to be returned")
            .part(
                "file",
                reqwest::multipart::Part::text(second_plan_geojson()).file_name("d.geojson"),
            )
    };
    let (st, plan) = send(
        client()
            .post(url("/v1/plans"))
            .bearer_auth(&township)
            .multipart(form()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_i64().unwrap();
    let p = |rest: &str| url(&format!("/v1/plans/{id}{rest}"));

    // Listed for its township, not for another.
    let (st, listed) = get(&url("/v1/plans?status=draft"), Some(&township)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        listed.as_array().unwrap().iter().any(|p| p["id"] == id),
        "{listed}"
    );
    let (_, listed) = get(&url("/v1/plans"), Some(&elsewhere)).await;
    assert!(
        !listed.as_array().unwrap().iter().any(|p| p["id"] == id),
        "{listed}"
    );
    let (st, _) = get(&url("/v1/plans?status=bogus"), Some(&township)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Read by its township, answered as missing elsewhere.
    let (st, shown) = get(&p(""), Some(&township)).await;
    assert_eq!(
        (st, shown["status"].as_str()),
        (StatusCode::OK, Some("draft"))
    );
    let (st, grids) = get(&p("/grids"), Some(&township)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(grids["type"], "FeatureCollection");
    assert_eq!(grids["features"].as_array().unwrap().len(), 5, "{grids}");
    let (st, problems) = get(&p("/problems"), Some(&township)).await;
    assert_eq!(
        (st, problems["type"].as_str()),
        (StatusCode::OK, Some("FeatureCollection"))
    );
    for rest in [
        "",
        "/grids",
        "/problems",
        "/validation",
        "/events",
        "/impact",
    ] {
        let (st, _) = get(&p(rest), Some(&elsewhere)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{rest} for another township");
    }
    let (st, _) = send(
        client()
            .put(p(""))
            .bearer_auth(&elsewhere)
            .multipart(form()),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "another township cannot replace it"
    );
    let (st, _) = post(&p("/publish"), &township, json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no such step");

    // Submitted: no longer replaced; returned by the county with a reason, not by the
    // township; a draft is not returned again.
    let (st, _) = post(&p("/submit"), &township, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = send(client().put(p("")).bearer_auth(&township).multipart(form())).await;
    assert_eq!(st, StatusCode::CONFLICT, "a submitted plan is not replaced");
    let (st, _) = post(&p("/return"), &township, json!({"reason": "mine"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "the township does not review");
    let (st, returned) = post(&p("/return"), &county, json!({"reason": "西北角请再核"})).await;
    assert_eq!(
        (st, returned["status"].as_str()),
        (StatusCode::OK, Some("draft")),
        "{returned}"
    );
    let (st, _) = post(&p("/return"), &county, json!({"reason": "again"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "a draft is not returned");

    // Resubmitted and rejected, by the county only.
    let (st, _) = post(&p("/submit"), &township, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = post(&p("/reject"), &township, json!({"reason": "mine"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, rejected) = post(&p("/reject"), &county, json!({"reason": "与规划不符"})).await;
    assert_eq!(
        (st, rejected["status"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{rejected}"
    );
    let (st, _) = post(&p("/approve"), &county, json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT, "a rejected plan is not approved");

    // The whole history, with the reasons.
    let (st, events) = get(&p("/events"), Some(&township)).await;
    assert_eq!(st, StatusCode::OK);
    let steps: Vec<(&str, Option<&str>)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["to"].as_str().unwrap(), e["reason"].as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("draft", None),
            ("submitted", None),
            ("draft", Some("西北角请再核")),
            ("submitted", None),
            ("rejected", Some("与规划不符")),
        ],
        "{events}"
    );

    // History of a grid that never existed, and of an area outside the caller's.
    let (st, _) = get(&url("/v1/grids/371602001001999/history"), Some(&township)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = get(&url("/v1/regions/371603/history"), Some(&township)).await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&st),
        "{st}"
    );
}

/// Dispatch's reading endpoints, the calendar, departments' staff and the residents'
/// side, each answered and refused.
async fn dispatch_reads_answer_their_callers_and_refuse_others(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let county_admin = user(store, "county.admin", UserRole::CityAdmin, "371602").await;
    let disp = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let county_disp = user(store, "county.disp", UserRole::Dispatcher, "371602").await;
    let other_disp = user(store, "other.disp", UserRole::Dispatcher, "371603").await;
    let member = user(
        store,
        "member.li",
        UserRole::GridMember,
        &crate::store_contract::code(2),
    )
    .await;
    let auditor = user(store, "auditor", UserRole::Auditor, "371602").await;
    user(store, "h.new", UserRole::DepartmentHandler, TOWNSHIP).await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);

    // Every version of the matters lists, for those who keep them.
    let (st, versions) = get(&url("/v1/matters"), Some(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{versions}");
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["code"] == "WG-001"),
        "{versions}"
    );
    let planner = user(store, "planner", UserRole::Planner, TOWNSHIP).await;
    let (st, _) = get(&url("/v1/matters"), Some(&planner)).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a planner reads no case's matters"
    );

    // The calendar: anyone reads it; a township dispatcher does not change it.
    let (st, _) = send(
        client()
            .put(url("/v1/calendar/2027-10-01"))
            .bearer_auth(&admin)
            .json(&json!({"kind": "holiday", "name": "国庆节"})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, calendar) = get(&url("/v1/calendar"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(calendar.to_string().contains("2027-10-01"), "{calendar}");
    let (st, _) = send(
        client()
            .delete(url("/v1/calendar/2027-10-01"))
            .bearer_auth(&disp),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A resident's report and a member's case.
    let (st, report) = send(client().post(url("/v1/public/reports")).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": "井盖缺失"}),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{report}");
    let id = report["id"].as_i64().unwrap();
    let (st, status) = get(&url(&format!("/v1/public/reports/{id}")), None).await;
    assert_eq!(
        (st, status["state"].as_str()),
        (StatusCode::OK, Some("reported")),
        "{status}"
    );
    let (st, mine) = send(client().post(url("/v1/cases")).bearer_auth(&member).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-003", "description": "邻里纠纷"}),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{mine}");
    let (st, _) = get(&url(&format!("/v1/public/reports/{}", mine["id"])), None).await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "a member's case is not a resident's report"
    );
    let (st, far) =
        send(client().post(url("/v1/cases")).bearer_auth(&member).json(
            &json!({"lon": 100.0, "lat": 30.0, "matter": "WG-003", "description": "far away"}),
        ))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{far}");
    let (st, _) =
        send(client().post(url("/v1/cases")).bearer_auth(&auditor).json(
            &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-003", "description": "x"}),
        ))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "an auditor files nothing");

    // Lists and events: a bad filter is refused; another county's case is no case.
    let (st, _) = get(&url("/v1/cases?state=bogus"), Some(&disp)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, events) = get(&url(&format!("/v1/cases/{id}/events")), Some(&disp)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(events[0]["kind"], "reported", "{events}");
    let (st, _) = get(&url(&format!("/v1/cases/{id}/events")), Some(&other_disp)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A centre's due-soon list: the county's centre, not a township's dispatcher.
    let (st, due) = get(&url("/v1/centres/371602/due-soon"), Some(&county_disp)).await;
    assert_eq!((st, due.is_array()), (StatusCode::OK, true), "{due}");
    let (st, _) = get(&url("/v1/centres/371602/due-soon"), Some(&disp)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Analysis over a window around now, refused with a bad period or no token.
    let window = crate::helpers::a_day_around_now();
    let (st, analysis) = get(
        &url(&format!("/v1/analysis?{window}&period=day")),
        Some(&county_disp),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{analysis}");
    let (st, _) = get(
        &url(&format!("/v1/analysis?{window}&period=fortnight")),
        Some(&county_disp),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = get(
        &url("/v1/analysis/density?from=yesterday&to=today"),
        Some(&county_disp),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = get(&url(&format!("/v1/analysis/density?{window}")), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = get(&url("/v1/assessment?from=x&to=y"), Some(&county_disp)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Departments: listed with a token only; staff added in the department's county,
    // not from another, and never to a department that does not exist.
    let (st, _) = get(&url("/v1/departments"), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let staff = |token: &str, department: &str| {
        send(
            client()
                .post(url(&format!("/v1/departments/{department}/staff")))
                .bearer_auth(token)
                .json(&json!({"user": "h.new"})),
        )
    };
    let other_county = user(store, "other.admin", UserRole::CityAdmin, "371603").await;
    let (st, _) = staff(&other_county, T_URBAN).await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&st),
        "another county's admin: {st}"
    );
    let (st, _) = staff(&county_admin, "371602001-nothing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = staff(&county_admin, T_URBAN).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");

    // Public lookups outside every grid; logging out needs a token.
    let (st, _) = get(&url("/v1/public/locate?lon=117.0&lat=36.0"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(client().post(url("/v1/auth/logout"))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Open311 answers without `.json` as with it; members-only matters are not public.
    for path in ["/open311/v2/discovery", "/open311/v2/services"] {
        let (st, plain) = get(&url(path), None).await;
        let (_, dotted) = get(&url(&format!("{path}.json")), None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(plain, dotted, "{path}");
    }
    let (st, posted) = send(client().post(url("/open311/v2/requests")).form(&[
        ("service_code", "WG-001"),
        ("lat", "37.315"),
        ("long", "118.015"),
        ("description", "路灯不亮"),
    ]))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{posted}");
    let (st, listed) = get(&url("/open311/v2/requests"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(listed.as_array().is_some_and(|l| !l.is_empty()), "{listed}");
    let (st, _) = get(&url("/open311/v2/services/WG-003.json"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // OGC API's metadata, and its refusals.
    for path in [
        "/ogc/conformance",
        "/ogc/collections",
        "/ogc/collections/grids",
    ] {
        let (st, body) = get(&url(path), None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {body}");
    }
    let (st, _) = get(&url("/ogc/collections/nope"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = get(&url("/ogc/collections/grids/items?bbox=1,2"), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = get(&url("/ogc/collections/grids/items/999999"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, communities) = get(&url("/ogc/collections/communities/items"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        communities["features"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{communities}"
    );
    // An unknown API path is a problem document, not the web app.
    let resp = client().get(url("/v1/nope")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

crate::contract!(
    a_plan_is_returned_rejected_and_read_only_by_its_own,
    dispatch_reads_answer_their_callers_and_refuse_others,
);

/// `/readyz` says 503 when the store cannot be reached (PostGIS refusing connections),
/// and ready again once it can; `/healthz` stays 200 throughout (the process lives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_store_and_health_does_not() {
    let Some(b) = crate::backends::postgis().await else {
        return;
    };
    seeded(b.store.as_ref()).await;
    let s = Server::start(&b.url, &[]);
    let (st, ready) = get(&format!("{}/readyz", s.url), None).await;
    assert_eq!(st, StatusCode::OK, "{ready}");
    let database = b
        .url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap()
        .to_string();
    let admin_url = b.url.replacen(&format!("/{database}"), "/postgres", 1);
    assert_ne!(admin_url, b.url);
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ))
    .execute(&admin)
    .await
    .unwrap();
    readiness_becomes(&s.url, StatusCode::SERVICE_UNAVAILABLE).await;
    let (st, _) = get(&format!("{}/healthz", s.url), None).await;
    assert_eq!(st, StatusCode::OK);
    sqlx::raw_sql(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    readiness_becomes(&s.url, StatusCode::OK).await;
}

/// Polls `/readyz` until it answers `status` (a generous 60 s deadline).
async fn readiness_becomes(url: &str, status: StatusCode) {
    let start = std::time::Instant::now();
    loop {
        let (st, _) = get(&format!("{url}/readyz"), None).await;
        if st == status {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "/readyz still {st}, not {status}, after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
