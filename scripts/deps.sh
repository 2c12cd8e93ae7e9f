# Sourced by the other scripts: installs the Debian packages wangge needs to build and
# test, when they are missing. Needs root (or sudo) the first time only.

# Build: PROJ through pkg-config (and libclang for the proj-sys bindings); GDAL for the
# file formats of the import command; the system SQLite, shared by sqlx and GDAL;
# OpenSSL for https webhooks.
WANGGE_BUILD_PACKAGES="pkg-config libproj-dev libclang-dev clang libgdal-dev libsqlite3-dev libssl-dev"
# Tests: ogr2ogr makes the Shapefile/KML fixtures from data/ (the PostgreSQL server and
# PostGIS come from scripts/pg.sh, matched to the installed server version); Chromium
# for the web app's browser tests, with a CJK font so its screenshots are readable.
WANGGE_TEST_PACKAGES="gdal-bin chromium fonts-wqy-zenhei"

wangge_missing_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

wangge_ensure_packages() {
  local missing
  missing=$(wangge_missing_packages "$@")
  [ -z "$missing" ] && return 0
  echo "installing Debian packages: $missing" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
}

wangge_ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (rustup) first" >&2; exit 2; }
}
