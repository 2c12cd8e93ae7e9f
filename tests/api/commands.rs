//! Every `plan`, `user` and `token` subcommand, and stored imports, run by the binary
//! against either store (`DATABASE_URL` is the backend's): each step's success and its
//! main refusal, read back from the store.

use crate::backends::Backend;
use crate::service::{as_geojson, seeded};
use crate::store_contract::{COMMUNITY, second_grids};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use wangge::store::PlanStatus;

struct Cli {
    url: String,
}

impl Cli {
    fn run(&self, args: &[&str], actor: &str, stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wangge"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("WANGGE_ACTOR", actor)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wangge runs");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).expect("stdin");
        }
        child.wait_with_output().expect("wangge ends")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str], actor: &str) -> String {
        let o = self.run(args, actor, "");
        assert!(o.status.success(), "{args:?}: {}", said(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a command that must be refused; its stderr.
    fn refused(&self, args: &[&str], actor: &str) -> String {
        let o = self.run(args, actor, "");
        assert!(!o.status.success(), "{args:?} was allowed: {}", said(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn json(&self, args: &[&str], actor: &str) -> Value {
        let out = self.ok(args, actor);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Imports the second plan as a stored draft; its id.
    fn draft(&self, file: &str) -> i64 {
        let report = self.json(
            &["import", "grids", file, "--scope", COMMUNITY, "--json"],
            "li",
        );
        report["plan_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("stored: {report}"))
    }
}

fn said(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn the_command_line_takes_every_plan_step_on_either_store(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.geojson");
    std::fs::write(&file, as_geojson(second_grids("西北网格"))).unwrap();
    let file = file.display().to_string();
    let cli = Cli { url: b.url.clone() };

    let id = cli.draft(&file);
    let ids = id.to_string();
    let shown = cli.json(&["plan", "show", &ids], "li");
    assert_eq!(shown["plan"]["status"], "draft", "{shown}");
    cli.refused(&["plan", "show", "999999"], "li");
    let impact = cli.json(&["plan", "impact", &ids], "li");
    assert!(
        impact["changed"].as_array().is_some_and(|c| !c.is_empty()),
        "{impact}"
    );
    cli.refused(&["plan", "activate", &ids, "--actor", "wang"], "wang");

    // Submitted, returned with a reason, submitted again, rejected with a reason.
    cli.ok(&["plan", "submit", &ids], "li");
    cli.refused(&["plan", "return", &ids], "wang");
    cli.ok(
        &["plan", "return", &ids, "--reason", "西北角请再核"],
        "wang",
    );
    assert_eq!(store.plan(id).await.unwrap().status, PlanStatus::Draft);
    cli.refused(&["plan", "return", &ids, "--reason", "again"], "wang");
    let active = store.plans(None, Some(PlanStatus::Active)).await.unwrap()[0]
        .id
        .to_string();
    cli.refused(
        &["plan", "reject", &active, "--reason", "an active plan"],
        "wang",
    );
    cli.ok(&["plan", "submit", &ids], "li");
    cli.ok(&["plan", "reject", &ids, "--reason", "与规划不符"], "wang");
    assert_eq!(store.plan(id).await.unwrap().status, PlanStatus::Rejected);
    let rejected = cli.json(&["plan", "list", "--status", "rejected"], "li");
    assert!(
        rejected.as_array().unwrap().iter().any(|p| p["id"] == id),
        "{rejected}"
    );
    let reasons: Vec<Value> = store
        .plan_events(id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.reason.map(Value::from))
        .collect();
    assert_eq!(reasons, ["西北角请再核", "与规划不符"]);

    // Another draft, approved as due yesterday: the daily job activates it.
    let next = cli.draft(&file);
    let nexts = next.to_string();
    cli.ok(&["plan", "submit", &nexts], "li");
    let yesterday = wangge::domain::date_in_china(chrono::Utc::now()) - chrono::Days::new(1);
    cli.refused(
        &[
            "plan",
            "approve",
            &nexts,
            "--effective",
            &yesterday.to_string(),
        ],
        "li",
    );
    cli.ok(
        &[
            "plan",
            "approve",
            &nexts,
            "--effective",
            &yesterday.to_string(),
        ],
        "wang",
    );
    let due = cli.json(&["plan", "activate-due"], "wang");
    assert_eq!(due[0]["plan"], next, "{due}");
    assert_eq!(due[0]["activated"], true, "{due}");
    assert_eq!(store.plan(next).await.unwrap().status, PlanStatus::Active);
    let none = cli.json(&["plan", "activate-due"], "wang");
    assert_eq!(none, Value::Array(vec![]), "nothing left to activate");
}

async fn the_command_line_keeps_accounts_on_either_store(b: Backend) {
    let store = b.store.as_ref();
    seeded(store).await;
    let cli = Cli { url: b.url.clone() };
    cli.ok(
        &[
            "user",
            "add",
            "zhao",
            "--role",
            "dispatcher",
            "--scope",
            "371602",
        ],
        "admin",
    );
    cli.refused(
        &[
            "user",
            "add",
            "zhao",
            "--role",
            "dispatcher",
            "--scope",
            "371602",
        ],
        "admin",
    );
    cli.ok(
        &[
            "user", "grant", "zhao", "--role", "auditor", "--scope", "371602",
        ],
        "admin",
    );
    let err = cli.refused(
        &[
            "user", "grant", "zhao", "--role", "auditor", "--scope", "abc",
        ],
        "admin",
    );
    assert!(err.contains("abc"), "{err}");
    assert!(
        cli.ok(&["user", "list"], "admin")
            .contains("auditor@371602")
    );
    cli.ok(
        &[
            "user", "revoke", "zhao", "--role", "auditor", "--scope", "371602",
        ],
        "admin",
    );
    let listed = cli.ok(&["user", "list"], "admin");
    assert!(
        listed.contains("zhao") && !listed.contains("auditor@371602"),
        "{listed}"
    );

    // A token, then a new password: the password revokes the user's tokens.
    let token = cli.ok(&["token", "issue", "zhao"], "admin");
    let token = token.trim();
    let stored = wangge::auth::hash_token(token);
    assert!(store.token(&stored).await.unwrap().is_some());
    let o = cli.run(
        &["user", "password", "zhao"],
        "admin",
        "a new long password\n",
    );
    assert!(o.status.success(), "{}", said(&o));
    let live = store.token(&stored).await.unwrap();
    assert!(
        live.as_ref().is_none_or(|t| t.revoked_at.is_some()),
        "revoked: {live:?}"
    );
    let user = store.user("zhao").await.unwrap().unwrap();
    assert!(wangge::auth::verify_password(
        "a new long password",
        user.password_hash.as_deref().unwrap_or_default()
    ));
    let o = cli.run(
        &["user", "password", "nobody"],
        "admin",
        "whatever password\n",
    );
    assert!(!o.status.success(), "{}", said(&o));
    cli.refused(&["token", "revoke-all", "nobody"], "admin");
    cli.refused(&["token", "issue", "nobody"], "admin");

    // A region file imported into the store.
    let dir = tempfile::tempdir().unwrap();
    let regions = dir.path().join("regions.geojson");
    std::fs::write(
        &regions,
        serde_json::json!({"type": "FeatureCollection", "features": [{"type": "Feature",
            "properties": {"code": "371602001009", "name": "新建社区", "parent": "371602001"},
            "geometry": {"type": "Polygon", "coordinates": [[[118.03, 37.30], [118.04, 37.30],
                [118.04, 37.31], [118.03, 37.31], [118.03, 37.30]]]}}]})
        .to_string(),
    )
    .unwrap();
    cli.ok(
        &[
            "import",
            "regions",
            regions.to_str().unwrap(),
            "--level",
            "community",
        ],
        "admin",
    );
    let stored = store.regions(Some("371602001009")).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].name, "新建社区");
    cli.refused(
        &[
            "import",
            "regions",
            "/nonexistent.geojson",
            "--level",
            "community",
        ],
        "admin",
    );

    // Migrations are idempotent on a migrated store.
    cli.ok(&["migrate"], "admin");
    cli.ok(&["migrate"], "admin");
}

crate::contract!(
    the_command_line_takes_every_plan_step_on_either_store,
    the_command_line_keeps_accounts_on_either_store,
);
