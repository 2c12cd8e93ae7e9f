//! Time comes from one source, and tests set it: `wangge serve` started with
//! `WANGGE_NOW` runs from that moment. Dates are chosen relative to the real day (the
//! coming Thursday), never fixed on the calendar. China's midnight is 16:00 UTC: a plan
//! effective on Friday activates from Friday 00:00 in China, though UTC still says
//! Thursday, and a deadline counted in working days moves from Monday to Tuesday across
//! that midnight because the weekend is skipped.

use crate::backends::Backend;
use crate::dispatch::{IN_NE, TOWNSHIP, seed_dispatch};
use crate::service::{Server, client, post, seeded, user};
use crate::store_contract::{approved_plan, second_grids};
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wangge::domain::{UserRole, date_in_china};
use wangge::store::PlanStatus;

/// `date` at `time` (hh:mm:ss) in China, as `WANGGE_NOW` takes it.
fn china(date: NaiveDate, time: &str) -> String {
    format!("{date}T{time}+08:00")
}

/// Files a resident's report (WG-001: 2 working days) and has the dispatcher accept
/// and assign it (the clock starts at assignment); the deadline's date in China.
async fn deadline_of_a_case_accepted_now(url: &str, disp: &str) -> NaiveDate {
    let report = client()
        .post(format!("{url}/v1/public/reports"))
        .json(
            &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": "路灯不亮"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), StatusCode::CREATED);
    let id = report.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut assigned = Value::Null;
    for action in ["accept", "assign"] {
        let (st, case) = post(
            &format!("{url}/v1/cases/{id}/actions"),
            disp,
            json!({"action": action}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{action}: {case}");
        assigned = case;
    }
    let deadline: DateTime<Utc> = assigned["deadline"]
        .as_str()
        .unwrap_or_else(|| panic!("a deadline: {assigned}"))
        .parse()
        .unwrap();
    date_in_china(deadline)
}

async fn china_midnight_decides_activation_and_working_day_deadlines(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let disp = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let county = user(store, "wang", UserRole::Planner, "371602").await;
    // The coming Thursday in China, tomorrow at the earliest.
    let mut thursday = date_in_china(Utc::now()) + Days::new(1);
    while thursday.weekday() != Weekday::Thu {
        thursday = thursday + Days::new(1);
    }
    let friday = thursday + Days::new(1);
    let id = approved_plan(store, second_grids("NW-bigger"), &friday.to_string()).await;
    let activate = |url: String| {
        let county = county.clone();
        async move { post(&format!("{url}/v1/plans/{id}/activate"), &county, json!({})).await }
    };

    // Thursday 23:59 in China (15:59 UTC): Friday's plan is not yet effective (neither
    // the daily activation at start nor a planner activates it), and a case due in 2
    // working days is due Monday (Friday, Monday).
    let s = Server::start(&b.url, &[("WANGGE_NOW", &china(thursday, "23:59:00"))]);
    let (st, problem) = activate(s.url.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:wangge:problem:not-yet-effective");
    assert_eq!(store.plan(id).await.unwrap().status, PlanStatus::Approved);
    assert_eq!(
        deadline_of_a_case_accepted_now(&s.url, &disp).await,
        thursday + Days::new(4)
    );
    drop(s);

    // Friday 00:00 in China (still Thursday 16:00 in UTC): effective, and the same case
    // is due Tuesday (Monday, Tuesday).
    let s = Server::start(&b.url, &[("WANGGE_NOW", &china(friday, "00:00:10"))]);
    assert_eq!(
        deadline_of_a_case_accepted_now(&s.url, &disp).await,
        friday + Days::new(4)
    );
    // The server's daily activation finds Friday's plan due at once (polled with a
    // generous deadline, never timed).
    let started = std::time::Instant::now();
    while store.plan(id).await.unwrap().status != PlanStatus::Active {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "Friday's plan was not activated on Friday in China"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(store.plan(id).await.unwrap().effective_date, Some(friday));
}

crate::contract!(china_midnight_decides_activation_and_working_day_deadlines);

#[test]
fn a_clock_that_is_not_rfc3339_stops_the_command() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["validate", "/nonexistent.geojson"])
        .env("WANGGE_NOW", "next thursday")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("WANGGE_NOW \"next thursday\" is not an RFC 3339 time"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
