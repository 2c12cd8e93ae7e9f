// The web app (web/dist, built by scripts/web) is embedded in release builds by
// rust-embed. Vite names files by content, so a rebuilt app has new file names that the
// compiler never saw: watch the whole directory so the binary is rebuilt with them.
//
// sqlx::migrate! embeds migrations/ the same way and does not notice a new file either.
fn main() {
    println!("cargo:rerun-if-changed=web/dist");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=build.rs");
}
