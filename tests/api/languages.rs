//! Every problem answers in the caller's language: Chinese for `Accept-Language: zh…`,
//! English otherwise, with `Content-Language` saying which and `Vary` telling caches.
//! Refusals from each layer are asked for in both: the HTTP layer's own checks, axum's
//! rejections, the application's policy, the store's state rules, the dispatch
//! workflow, the upload reader, and Open311's error lists.

use crate::dispatch::{IN_NE, TOWNSHIP, seed_dispatch};
use crate::service::{Server, client, seeded, send, user};
use crate::store_contract::{COMMUNITY, code};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use wangge::domain::UserRole;

const ZH: &str = "zh-CN,zh;q=0.9,en;q=0.8";

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Whether `s` holds an English phrase: three words of letters in a row (names such as
/// `Authorization: Bearer` or `GeoJSON`, and lists of names `a, b, c`, are not phrases).
fn has_english_phrase(s: &str) -> bool {
    let mut run = 0;
    for word in s.split_whitespace() {
        if word.ends_with(',') {
            run = 0;
            continue;
        }
        let word = word.trim_matches(|c: char| matches!(c, '.' | ';'));
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic()) {
            run += 1;
            if run >= 3 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

struct Answer {
    status: StatusCode,
    language: String,
    vary: String,
    body: Value,
}

async fn ask(request: RequestBuilder) -> Answer {
    let resp = request.send().await.expect("request");
    let header = |name: &str| {
        resp.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (language, vary) = (header("content-language"), header("vary"));
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        language,
        vary,
        body,
    }
}

/// Asks `make()` in Chinese and in English and checks both answers.
async fn in_both(what: &str, make: impl Fn() -> RequestBuilder, status: StatusCode) -> Value {
    let zh = ask(make().header("accept-language", ZH)).await;
    assert_eq!(zh.status, status, "{what}: {}", zh.body);
    let detail = zh.body["detail"].as_str().unwrap_or_default();
    assert!(has_chinese(detail), "{what} in Chinese: {}", zh.body);
    // axum's own parse errors follow the Chinese as they came; wangge's words do not mix.
    if what != "a body that is no JSON" {
        assert!(
            !has_english_phrase(detail),
            "{what} all in Chinese: {detail}"
        );
    }
    assert_eq!(zh.language, "zh-CN", "{what}");
    assert!(
        zh.vary.to_lowercase().contains("accept-language"),
        "{what}: {}",
        zh.vary
    );
    for en in [
        ask(make()).await,
        ask(make().header("accept-language", "en-GB,en;q=0.9,zh;q=0.5")).await,
    ] {
        assert_eq!(en.status, status, "{what}");
        let detail = en.body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.is_empty() && !has_chinese(detail),
            "{what} in English: {}",
            en.body
        );
        assert_eq!(en.language, "en", "{what}");
        // The problem type is the same in every language.
        assert_eq!(en.body["type"], zh.body["type"], "{what}");
    }
    zh.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_answer_in_the_language_the_caller_accepts() {
    let b = crate::backends::sqlite().await.expect("sqlite");
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let planner = user(store, "li", UserRole::Planner, COMMUNITY).await;
    let dispatcher = user(store, "disp", UserRole::Dispatcher, TOWNSHIP).await;
    let s = Server::start(&b.url, &[]);
    let url = |p: &str| format!("{}{p}", s.url);

    // The HTTP layer: no token.
    let body = in_both(
        "no token",
        || client().get(url("/v1/plans")),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("令牌"), "{body}");

    // The store: a plan that does not exist.
    let body = in_both(
        "missing plan",
        || client().get(url("/v1/plans/987654")).bearer_auth(&planner),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("987654"),
        "{body}"
    );

    // The policy: a planner may not read cases.
    in_both(
        "forbidden",
        || client().get(url("/v1/cases")).bearer_auth(&planner),
        StatusCode::FORBIDDEN,
    )
    .await;

    // axum's own rejection, rewritten as a problem: its parse error is kept after the
    // Chinese words.
    let body = in_both(
        "a body that is no JSON",
        || {
            client()
                .post(url("/v1/public/reports"))
                .header("content-type", "application/json")
                .body("{not json")
        },
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["type"], "urn:wangge:problem:bad-request");

    // The OGC layer's parameter checks.
    in_both(
        "an unknown OGC parameter",
        || client().get(url("/ogc/collections/grids/items?colour=red")),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // The upload reader: not a format wangge reads.
    let body = in_both(
        "an unsupported upload",
        || {
            let form = reqwest::multipart::Form::new()
                .text("scope", COMMUNITY)
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(b"just some words".to_vec())
                        .file_name("notes.txt"),
                );
            client()
                .post(url("/v1/plans"))
                .bearer_auth(&planner)
                .multipart(form)
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("GeoJSON"),
        "{body}"
    );

    // The dispatch workflow: a report whose pin lies in another grid than the form's.
    let report = json!({"lon": IN_NE.0, "lat": IN_NE.1, "coord_sys": "cgcs2000",
        "matter": "WG-001", "description": "路灯不亮", "grid": code(1)});
    let body = in_both(
        "a pin in another grid",
        || client().post(url("/v1/public/reports")).json(&report),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains(&code(2)),
        "{body}"
    );

    // The state machine: a step the case's state does not allow, and a stale version.
    let (_, filed) = send(client().post(url("/v1/public/reports")).json(
        &json!({"lon": IN_NE.0, "lat": IN_NE.1, "coord_sys": "cgcs2000",
                "matter": "WG-001", "description": "路灯不亮", "grid": code(2)}),
    ))
    .await;
    let case = filed["id"].as_i64().expect("a case");
    let body = in_both(
        "a step the state does not allow",
        || {
            client()
                .post(url(&format!("/v1/cases/{case}/actions")))
                .bearer_auth(&dispatcher)
                .json(&json!({"action": "close"}))
        },
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("已上报"),
        "{body}"
    );
    in_both(
        "a stale version",
        || {
            client()
                .post(url(&format!("/v1/cases/{case}/actions")))
                .bearer_auth(&dispatcher)
                .header("if-match", "\"99\"")
                .json(&json!({"action": "accept"}))
        },
        StatusCode::CONFLICT,
    )
    .await;

    // Open311 answers its own error list, in the caller's language too.
    let zh = ask(client()
        .get(url("/open311/v2/requests/abc.json"))
        .header("accept-language", ZH))
    .await;
    assert!(zh.status.is_client_error());
    let description = zh.body[0]["description"].as_str().unwrap_or_default();
    assert!(has_chinese(description), "{}", zh.body);

    // A language wangge does not speak, or none at all, is English.
    let other = ask(client()
        .get(url("/v1/plans"))
        .header("accept-language", "fr-FR"))
    .await;
    assert_eq!(other.language, "en");
    assert!(!has_chinese(
        other.body["detail"].as_str().unwrap_or_default()
    ));
}
