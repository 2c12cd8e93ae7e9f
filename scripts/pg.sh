# Sourced by scripts/test and scripts/bench: a throwaway PostgreSQL + PostGIS cluster in
# a temporary directory, reachable only through a Unix socket there, so it neither needs
# nor disturbs a system cluster. It is stopped and deleted when the calling script exits.
#
# After `wangge_start_postgis`, WANGGE_PG_ADMIN_URL names a superuser connection and
# WANGGE_TEST_DATABASE_URL a database with PostGIS installed (the template tests copy).

wangge_pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || { echo "no PostgreSQL server found under /usr/lib/postgresql" >&2; return 1; }
  echo "$bin"
}

# The PostGIS package for the newest installed server (or for 15, Debian 12's).
wangge_postgis_packages() {
  local major=15 bin
  if bin=$(wangge_pg_bin 2>/dev/null); then major=$(basename "$(dirname "$bin")"); fi
  echo "postgresql-$major postgresql-$major-postgis-3"
}

wangge_start_postgis() {
  local bin dir as_pg=()
  bin=$(wangge_pg_bin)
  dir=$(mktemp -d /tmp/wangge-pg.XXXXXX)
  chmod 755 "$dir"
  WANGGE_PG_DIR=$dir
  # PostgreSQL refuses to run as root: run the cluster as the packaged postgres user.
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U wangge --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  # Durability off for tests: this cluster lives for one run. Benches set
  # WANGGE_PG_DURABLE=1 so commits reach the disk as in production.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${WANGGE_PG_DURABLE:-0}" = 1 ] && durability=""
  # WANGGE_PG_EXTRA: more server options for experiments, e.g. "-c wal_init_zero=off".
  "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s \
    -o "-c listen_addresses='' -k $dir $durability -c max_connections=300 ${WANGGE_PG_EXTRA:-}" start \
    || { cat "$dir/server.log" >&2; return 1; }
  trap wangge_stop_postgis EXIT
  WANGGE_PG_ADMIN_URL="postgres://wangge@localhost/postgres?host=$dir"
  "$bin/psql" -q -h "$dir" -U wangge -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE wangge_template" >/dev/null
  "$bin/psql" -q -h "$dir" -U wangge -d wangge_template -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION postgis" >/dev/null
  export WANGGE_PG_ADMIN_URL
  export WANGGE_TEST_DATABASE_URL="postgres://wangge@localhost/wangge_template?host=$dir"
  echo "PostGIS test cluster at $dir" >&2
}

wangge_stop_postgis() {
  [ -n "${WANGGE_PG_DIR:-}" ] || return 0
  local bin as_pg=()
  bin=$(wangge_pg_bin)
  [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
  "${as_pg[@]}" "$bin/pg_ctl" -D "$WANGGE_PG_DIR/data" -m immediate -w -s stop >/dev/null 2>&1 || true
  rm -rf "$WANGGE_PG_DIR"
  WANGGE_PG_DIR=
}
