//! The two real backends the contract suite runs against: an SQLite file in a temp dir,
//! and a fresh database in the throwaway PostGIS cluster `scripts/test` starts.

use std::sync::Arc;
use wangge::store::{PgStore, SqliteStore, Store};

/// A store plus a raw connection to the same database (for fault injection).
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub raw: Raw,
    /// The URL a server process opens the same database with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Backend {
    /// Runs one statement outside the store (e.g. installing a failing trigger).
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::raw_sql(sqlite)
                    .execute(p)
                    .await
                    .expect("raw sqlite statement");
            }
            Raw::Postgres(p) => {
                sqlx::raw_sql(postgres)
                    .execute(p)
                    .await
                    .expect("raw postgres statement");
            }
        }
    }
}

impl Backend {
    /// Asserts `table` refuses UPDATE and DELETE with its trigger's own message (not
    /// any error: a lock would do) and keeps every row. Call it with no other process
    /// holding the database.
    pub async fn assert_append_only(&self, table: &str, column: &str) {
        let count = format!("SELECT count(*) FROM {table}");
        let rows = || async {
            match &self.raw {
                Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>(&count).fetch_one(p).await,
                Raw::Postgres(p) => sqlx::query_scalar::<_, i64>(&count).fetch_one(p).await,
            }
            .expect("count rows")
        };
        let before = rows().await;
        assert!(before > 0, "{table} has rows to protect");
        for statement in [
            format!("UPDATE {table} SET {column} = {column}"),
            format!("DELETE FROM {table}"),
        ] {
            let result = match &self.raw {
                Raw::Sqlite(p) => sqlx::raw_sql(&statement).execute(p).await.map(|_| ()),
                Raw::Postgres(p) => sqlx::raw_sql(&statement).execute(p).await.map(|_| ()),
            };
            let err = match result {
                Ok(()) => panic!("{statement} was allowed"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(&format!("{table} is append-only")),
                "{statement} refused for another reason: {err}"
            );
        }
        assert_eq!(rows().await, before, "{table} kept every row");
    }
}

pub async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wangge.db");
    let store = SqliteStore::open(&path).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw sqlite");
    Some(Backend {
        store: Arc::new(store),
        raw: Raw::Sqlite(raw),
        url: format!("sqlite://{}", path.display()),
        _dir: Some(dir),
    })
}

/// A new database cloned from the cluster's PostGIS template. Without a cluster the
/// PostGIS half of every test fails, naming why: never a silent pass.
/// (`Option` so callers read alike for both backends; it is always `Some`.)
pub async fn postgis() -> Option<Backend> {
    let Ok(template_url) = std::env::var("WANGGE_TEST_DATABASE_URL") else {
        panic!(
            "no PostGIS to test against: WANGGE_TEST_DATABASE_URL is not set (scripts/test \
             starts a throwaway cluster and sets it; `cargo test sqlite` runs the SQLite half)"
        );
    };
    let name = format!("t_{}", uuid_like());
    let admin_url = template_url.replacen("/wangge_template", "/postgres", 1);
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("connect to PostGIS cluster");
    // Concurrent clones of one template can collide; retry briefly.
    let mut tries = 0;
    loop {
        match sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE wangge_template"))
            .execute(&admin)
            .await
        {
            Ok(_) => break,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot create test database: {e}"),
        }
    }
    admin.close().await;
    let url = template_url.replacen("/wangge_template", &format!("/{name}"), 1);
    let store = PgStore::connect(&url)
        .await
        .expect("connect to test database");
    store.migrate().await.expect("migrate postgis");
    let raw = sqlx::PgPool::connect(&url).await.expect("raw postgres");
    Some(Backend {
        store: Arc::new(store),
        raw: Raw::Postgres(raw),
        url,
        _dir: None,
    })
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        t % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declares each listed contract test once per backend: `<name>::sqlite` and
/// `<name>::postgis`.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(b) = $crate::backends::sqlite().await {
                        super::$name(b).await;
                    }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgis() {
                    if let Some(b) = $crate::backends::postgis().await {
                        super::$name(b).await;
                    }
                }
            }
        )*
    };
}
