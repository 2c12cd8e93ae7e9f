//! The service as its users' own clients call it (issue 19): `wangge serve --demo`
//! started from an empty directory (the demo travels inside the binary), then OWSLib,
//! GDAL's OAPIF driver, the OpenAPI validator, prometheus_client's parser and a strict
//! XML parser, from `tests/clients/conformance.py` in the environment that
//! `scripts/pyclients` makes.

use std::path::Path;
use std::process::Command;

#[test]
fn the_users_clients_read_and_write_the_demo_service() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = Command::new("bash")
        .arg(root.join("scripts/pyclients"))
        .output()
        .expect("scripts/pyclients runs");
    assert!(
        python.status.success(),
        "scripts/pyclients: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();

    let empty = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_wangge"));
    serve
        .current_dir(empty.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        // The clients page through everything from one address.
        .env("WANGGE_OGC_RATE_PER_MINUTE", "100000")
        .env("WANGGE_TILE_RATE_PER_MINUTE", "100000")
        .env("WANGGE_PUBLIC_RATE_PER_MINUTE", "100000")
        .env("WANGGE_HISTORIC_READS_PER_MINUTE", "1000");
    let server = crate::service::Server::listening(serve);
    let url = server.url.clone();

    let run = Command::new(&python)
        .arg(root.join("tests/clients/conformance.py"))
        .arg(&url)
        .output()
        .expect("the client script runs");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}\n{err}");
    assert!(out.contains("\"failed\": []"), "{out}");
    drop(server);
}
