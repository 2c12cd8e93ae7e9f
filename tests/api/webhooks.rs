//! Webhooks over https: a department's receiver behind a certificate of the city's own
//! CA gets signed deliveries once the service trusts that CA (`webhook_ca_file`), and
//! nothing while it does not.

use crate::backends::{Backend, Raw};
use crate::dispatch::{IN_NE, T_SOCIAL, T_URBAN, TOWNSHIP, seed_dispatch};
use crate::service::{Server, client, seeded, user};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wangge::domain::UserRole;

/// A CA and a server certificate for 127.0.0.1 signed by it, made by the openssl tool.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Binzhou test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "hook.key",
                "-out",
                "hook.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("hook.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "hook.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "hook.pem",
        "-days",
        "2",
        "-extfile",
        "hook.ext",
    ]);
}

/// What the https receiver got: header lines (lower-cased names) and the body.
type Received = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// An https endpoint answering 204 to every POST, recording each.
async fn https_receiver(dir: &Path) -> (String, Received) {
    let identity = native_tls::Identity::from_pkcs8(
        &std::fs::read(dir.join("hook.pem")).unwrap(),
        &std::fs::read(dir.join("hook.key")).unwrap(),
    )
    .expect("server identity");
    let acceptor = tokio_native_tls::TlsAcceptor::from(
        native_tls::TlsAcceptor::new(identity).expect("TLS acceptor"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let got: Received = Arc::default();
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let sink = sink.clone();
            tokio::spawn(async move {
                // An untrusting client hangs up during the handshake: nothing to record.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_len, length) = loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_len + length {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let headers = String::from_utf8_lossy(&buf[..head_len])
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                sink.lock()
                    .unwrap()
                    .push((headers, buf[head_len..head_len + length].to_vec()));
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, got)
}

async fn webhooks_reach_an_https_receiver_the_configured_ca_vouches_for(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let (hook, received) = https_receiver(dir.path()).await;
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();

    // A service that knows only the system's CAs: the receiver is not trusted.
    let untrusting = Server::start(&b.url, &[("WANGGE_WEBHOOK_ALLOW_HOSTS", "[127.0.0.1]")]);
    let (st, answer) = put_department(&untrusting.url, &admin, &hook).await;
    assert_eq!(st, StatusCode::OK, "{answer}");
    let secret = answer["webhook_secret"].as_str().unwrap().to_string();
    let event = report_and_queue_delivery(&b, &untrusting.url).await;
    let failed = wait_until(|| async { delivery_error(&b, event).await }).await;
    assert!(failed.to_lowercase().contains("certificate"), "{failed}");
    assert!(received.lock().unwrap().is_empty());
    drop(untrusting);

    // With the city's CA: delivered over https, signed.
    let trusting = Server::start(
        &b.url,
        &[
            ("WANGGE_WEBHOOK_ALLOW_HOSTS", "[127.0.0.1]"),
            ("WANGGE_WEBHOOK_CA_FILE", ca),
        ],
    );
    b.execute(
        "UPDATE webhook_deliveries SET next_at = 0",
        "UPDATE webhook_deliveries SET next_at = 0",
    )
    .await;
    let start = Instant::now();
    while received.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no https delivery"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (headers, body) = received.lock().unwrap()[0].clone();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("x-wangge-event-id"), event.to_string());
    let signature = header("x-wangge-signature");
    let t: i64 = signature
        .strip_prefix("t=")
        .and_then(|s| s.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{signature:?}"));
    assert_eq!(signature, wangge::auth::sign_webhook(&secret, t, &body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["department"], T_URBAN);
    drop(trusting);

    // A service whose CA file is not certificates does not start.
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_wangge"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &b.url)
        .env("WANGGE_WEBHOOK_CA_FILE", dir.path().join("bad.pem"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("webhook_ca_file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn put_department(base: &str, token: &str, hook: &str) -> (StatusCode, Value) {
    put_named_department(base, token, T_URBAN, "urban_management", hook).await
}

async fn put_named_department(
    base: &str,
    token: &str,
    code: &str,
    kind: &str,
    hook: &str,
) -> (StatusCode, Value) {
    let resp = client()
        .put(format!("{base}/v1/departments/{code}"))
        .bearer_auth(token)
        .json(&json!({"code": code, "name": "部门", "kind": kind,
            "region_code": TOWNSHIP, "webhook_url": hook}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A resident's report, and a delivery of its first event queued to the department
/// (as an assignment would queue it); the event's id.
async fn report_and_queue_delivery(b: &Backend, base: &str) -> i64 {
    report_and_queue_delivery_to(b, base, T_URBAN).await
}

async fn report_and_queue_delivery_to(b: &Backend, base: &str, department: &str) -> i64 {
    let resp = client()
        .post(format!("{base}/v1/public/reports"))
        .json(
            &json!({"lon": IN_NE.0, "lat": IN_NE.1, "matter": "WG-001", "description": "井盖缺失"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let case: Value = resp.json().await.unwrap();
    let events = b
        .store
        .case_events(case["id"].as_i64().unwrap())
        .await
        .unwrap();
    let event = events[0].id;
    let insert = format!(
        "INSERT INTO webhook_deliveries (event_id, department_code, next_at) VALUES ({event}, '{department}', 0)"
    );
    b.execute(&insert, &insert).await;
    event
}

/// The delivery's last error, once it has one.
async fn delivery_error(b: &Backend, event: i64) -> Option<String> {
    let sql = format!("SELECT last_error FROM webhook_deliveries WHERE event_id = {event}");
    match &b.raw {
        Raw::Sqlite(p) => sqlx::query_scalar::<_, Option<String>>(&sql)
            .fetch_one(p)
            .await
            .unwrap(),
        Raw::Postgres(p) => sqlx::query_scalar::<_, Option<String>>(&sql)
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

async fn wait_until<T, F: std::future::Future<Output = Option<T>>>(f: impl Fn() -> F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "waited 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A receiver that never answers holds one delivery until its timeout, not everyone's:
/// another department's notice, queued behind it, arrives meanwhile.
async fn a_receiver_that_never_answers_delays_no_other_department(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sink = sink.clone();
            async move {
                let id = headers
                    .get("x-wangge-event-id")
                    .and_then(|v| v.to_str().ok());
                sink.lock().unwrap().push(id.unwrap_or("").to_string());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let quick_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_WEBHOOK_ALLOW_HOSTS", "[127.0.0.1]"),
            ("WANGGE_WEBHOOK_ALLOW_HTTP", "true"),
        ],
    );
    let (st, body) =
        put_named_department(&s.url, &admin, T_URBAN, "urban_management", &silent_url).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) =
        put_named_department(&s.url, &admin, T_SOCIAL, "social_affairs", &quick_url).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // The silent department's notice first, the other's behind it.
    let silent = report_and_queue_delivery_to(&b, &s.url, T_URBAN).await;
    // Let a delivery round take up the silent one before the other is queued: the next
    // round must not wait for it either.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let quick = report_and_queue_delivery_to(&b, &s.url, T_SOCIAL).await;
    let start = Instant::now();
    while !got.lock().unwrap().contains(&quick.to_string()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never delivered: got {:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The silent receiver holds its delivery until the 10 s timeout records an error:
    // the quick one arrived before that, so it was not queued behind it, however slow
    // this machine is.
    assert_eq!(
        delivery_error(&b, silent).await,
        None,
        "the quick delivery waited for the silent one's timeout"
    );
}

/// A delivery's attempts and whether it was delivered.
async fn delivery_state(b: &Backend, event: i64) -> (i64, bool) {
    let sql = format!(
        "SELECT attempts, delivered_at IS NOT NULL FROM webhook_deliveries WHERE event_id = {event}"
    );
    let row: (i32, bool) = match &b.raw {
        Raw::Sqlite(p) => sqlx::query_as(&sql).fetch_one(p).await.unwrap(),
        Raw::Postgres(p) => sqlx::query_as(&sql).fetch_one(p).await.unwrap(),
    };
    (i64::from(row.0), row.1)
}

/// A receiver that answers 500 once gets the same event again after the backoff (not
/// forced: the deliverer's own schedule), signed alike, and it is delivered once.
async fn a_failed_delivery_is_retried_with_the_same_event_after_its_backoff(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    seed_dispatch(store).await;
    let admin = user(store, "city.zhao", UserRole::CityAdmin, "3716").await;
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sink = sink.clone();
            async move {
                let header = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let mut seen = sink.lock().unwrap();
                seen.push((header("x-wangge-event-id"), header("x-wangge-signature")));
                if seen.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let s = Server::start(
        &b.url,
        &[
            ("WANGGE_WEBHOOK_ALLOW_HOSTS", "[127.0.0.1]"),
            ("WANGGE_WEBHOOK_ALLOW_HTTP", "true"),
        ],
    );
    let (st, body) = put_department(&s.url, &admin, &hook).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let event = report_and_queue_delivery(&b, &s.url).await;

    let failed = wait_until(|| async { delivery_error(&b, event).await }).await;
    assert!(failed.contains("500"), "{failed}");
    assert_eq!(delivery_state(&b, event).await, (1, false));
    // The retry comes by itself after the first backoff (10 s); generous deadline.
    let start = Instant::now();
    while !delivery_state(&b, event).await.1 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not retried within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "retried only after a pause"
    );
    assert_eq!(delivery_state(&b, event).await, (2, true));
    let seen = got.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one failure, one success: {seen:?}");
    assert!(
        seen.iter().all(|(id, _)| *id == event.to_string()),
        "the same event both times: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, sig)| sig.starts_with("t=")),
        "{seen:?}"
    );
}

crate::contract!(
    webhooks_reach_an_https_receiver_the_configured_ca_vouches_for,
    a_receiver_that_never_answers_delays_no_other_department,
    a_failed_delivery_is_retried_with_the_same_event_after_its_backoff,
);
