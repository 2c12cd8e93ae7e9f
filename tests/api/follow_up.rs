//! A resident's report, as the public form makes it: the pin starts at a point inside
//! the chosen grid, the report is filed in the grid the form names or not at all, and
//! the answer's follow-up key opens the report's status page with its steps.

use crate::backends::Backend;
use crate::dispatch::{IN_NE, TOWNSHIP, seed_dispatch};
use crate::service::{Server, client, seeded, user};
use crate::store_contract::code;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wangge::domain::UserRole;
use wangge::store::CaseQuery;

use crate::service::send;

async fn a_resident_s_report_is_filed_in_the_chosen_grid_and_followed_by_its_key(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let disp = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let member = user(store, "member.li", UserRole::GridMember, &code(2)).await;
    // Behind a proxy, so that two residents' addresses can be told apart.
    let s = Server::start(&b.url, &[("WANGGE_TRUSTED_PROXIES", "[127.0.0.1]")]);
    let url = |p: &str| format!("{}{p}", s.url);

    // Every grid's card names a point inside it that the lookup answers with that grid.
    for seq in 1..=4 {
        let (st, card) = send(client().get(url(&format!("/v1/public/grids/{}", code(seq))))).await;
        assert_eq!(st, StatusCode::OK, "{card}");
        let point = card["point"].as_array().expect("a point inside");
        let (lon, lat) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
        let (st, found) = send(client().get(url(&format!(
            "/v1/public/locate?lon={lon}&lat={lat}&coord_sys=cgcs2000"
        ))))
        .await;
        assert_eq!(st, StatusCode::OK, "{found}");
        assert_eq!(
            found["grid"]["code"],
            code(seq),
            "the point of {}",
            code(seq)
        );
    }

    // A form showing grid 1 with its pin in grid 2 files nothing.
    let count = || async {
        store
            .cases(&CaseQuery {
                limit: 1000,
                ..CaseQuery::default()
            })
            .await
            .unwrap()
            .len()
    };
    let before = count().await;
    let report = |grid: &str| {
        json!({"lon": IN_NE.0, "lat": IN_NE.1, "coord_sys": "cgcs2000", "matter": "WG-001",
            "description": "路灯不亮", "address": "黄河一路 1 号", "grid": grid,
            "contact": {"phone": "13912345678"}})
    };
    let (st, problem) = send(
        client()
            .post(url("/v1/public/reports"))
            .json(&report(&code(1))),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:wangge:problem:grid-mismatch");
    assert_eq!(problem["grid"], code(1));
    assert_eq!(problem["located"], code(2));
    assert_eq!(count().await, before, "nothing filed");

    // Named right, it is filed there; the answer carries the key, once, and no cache
    // may keep it.
    let resp = client()
        .post(url("/v1/public/reports"))
        .header("idempotency-key", "resident-report-0001")
        .json(&report(&code(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (st, made) = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let id = made["id"].as_i64().unwrap();
    assert_eq!(made["grid_code"], code(2));
    assert_eq!(made["state"], "reported");
    assert_eq!(
        made["time_limit"],
        json!({"amount": 2, "unit": "working_days"})
    );
    assert_eq!(made["matter_name"], "matter WG-001");
    assert_eq!(made["description"], "路灯不亮");
    assert_eq!(made["steps"].as_array().map(Vec::len), Some(1), "{made}");
    assert_eq!(made["steps"][0]["step"], "reported");
    let key = made["follow_up_key"].as_str().expect("a key").to_string();
    assert_eq!(key.len(), 8);
    assert!(
        key.bytes()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c))),
        "{key}"
    );

    // A replay (same key, same body) answers the same report without the key: holding
    // an Idempotency-Key does not make one its reporter.
    let (st, replayed) = send(
        client()
            .post(url("/v1/public/reports"))
            .header("idempotency-key", "resident-report-0001")
            .json(&report(&code(2))),
    )
    .await;
    assert_eq!(
        (st, replayed["id"].as_i64()),
        (StatusCode::CREATED, Some(id))
    );
    assert!(replayed.get("follow_up_key").is_none(), "{replayed}");
    // Keys are each client's own: another resident's same key, with another report,
    // files that report (no 409 telling that the key exists, no view of the first).
    let other = client()
        .post(url("/v1/public/reports"))
        .header("idempotency-key", "resident-report-0001")
        .header("x-forwarded-for", "198.51.100.9")
        .json(
            &json!({"lon": IN_NE.0, "lat": IN_NE.1, "coord_sys": "cgcs2000",
            "matter": "WG-001", "description": "井盖缺失"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CREATED);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["id"].as_i64(), Some(id), "{other}");
    assert_eq!(other["description"], "井盖缺失");

    // Staff views, the event trail and Open311 never show it.
    for (path, token) in [
        (format!("/v1/cases/{id}"), Some(&disp)),
        (format!("/v1/cases/{id}/events"), Some(&disp)),
        (format!("/open311/v2/requests/{id}.json"), None),
        (format!("/v1/public/reports/{id}"), None),
    ] {
        let mut r = client().get(url(&path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let (st, body) = send(r).await;
        assert_eq!(st, StatusCode::OK, "{path}: {body}");
        assert!(!body.to_string().contains(&key), "{path} shows the key");
    }

    // The number alone shows what Open311 shows everyone; with the key, as people type
    // it, the description and the steps; a wrong key nothing.
    let (_, open) = send(client().get(url(&format!("/v1/public/reports/{id}")))).await;
    assert_eq!(open["state"], "reported");
    assert!(
        open.get("description").is_none() && open.get("steps").is_none(),
        "{open}"
    );
    let typed = format!("{}-{}", &key[..4], &key[4..]).to_lowercase();
    let (st, mine) = send(client().get(url(&format!("/v1/public/reports/{id}?key={typed}")))).await;
    assert_eq!(st, StatusCode::OK, "{mine}");
    assert_eq!(mine["description"], "路灯不亮");
    assert!(mine.get("follow_up_key").is_none(), "handed out once");
    let wrong = if key.starts_with('0') { "1" } else { "0" }.to_string() + &key[1..];
    let (st, _) = send(client().get(url(&format!("/v1/public/reports/{id}?key={wrong}")))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let padded = format!("{key}{}", "-".repeat(40));
    let (st, _) = send(client().get(url(&format!("/v1/public/reports/{id}?key={padded}")))).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no key is that long");
    // The page sends it in a header, which access logs do not keep.
    let resp = client()
        .get(url(&format!("/v1/public/reports/{id}")))
        .header("follow-up-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let by_header: Value = resp.json().await.unwrap();
    assert_eq!(by_header["description"], "路灯不亮");

    // Open311's public listing keeps what the resident wrote and where, to the metre,
    // out (open311_publish_details is off by default).
    let (_, listed) = send(client().get(url(&format!(
        "/open311/v2/requests.json?service_request_id={id}"
    ))))
    .await;
    let request = &listed[0];
    assert!(
        request["description"].is_null() && request["address"].is_null(),
        "{request}"
    );
    let lat = request["lat"].as_f64().unwrap();
    assert_eq!(lat, (IN_NE.1 * 1000.0).round() / 1000.0, "about 100 m");

    // The dispatcher accepts: the reporter sees the step.
    let (st, body) = send(
        client()
            .post(url(&format!("/v1/cases/{id}/actions")))
            .bearer_auth(&disp)
            .json(&json!({"action": "accept", "note": "内部备注"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, mine) = send(client().get(url(&format!("/v1/public/reports/{id}?key={key}")))).await;
    let steps: Vec<(&str, &str)> = mine["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("reported", "reported"), ("accept", "accepted")]);
    assert!(
        mine["steps"][1]["note"].is_null(),
        "an acceptance note is internal"
    );

    // A grid member's case has no key and no public page.
    let (st, internal) = send(client().post(url("/v1/cases")).bearer_auth(&member).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-003", "description": "邻里纠纷", "grid": code(2)}),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{internal}");
    let internal = internal["id"].as_i64().unwrap();
    let (st, _) =
        send(client().get(url(&format!("/v1/public/reports/{internal}?key={key}")))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

crate::contract!(a_resident_s_report_is_filed_in_the_chosen_grid_and_followed_by_its_key);
