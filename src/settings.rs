//! Service settings: defaults, then a TOML file, then `WANGGE_*` environment variables
//! (and `DATABASE_URL`), checked at start-up so a bad value stops the service with a
//! message naming it instead of surfacing later.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// Everything `wangge serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`WANGGE_LISTEN`). Port 0 picks a free one.
    pub listen: SocketAddr,
    /// `postgres://…` (PostGIS) or `sqlite://path`; `DATABASE_URL` also sets it.
    pub database_url: String,
    /// Largest accepted request body (uploads of plans), bytes.
    pub body_limit_bytes: usize,
    /// A request taking longer is answered 503 and abandoned.
    pub request_timeout_secs: u64,
    /// Requests per minute per client address on the public endpoints.
    pub public_rate_per_minute: u32,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` is believed: the
    /// client is the right-most address in it that is not one of them. Empty: the peer.
    pub trusted_proxies: Vec<String>,
    /// Publish members' phones masked (`138****5678`) on public cards.
    pub mask_public_phones: bool,
    /// Publish residents' descriptions, addresses, photos and exact locations in
    /// Open311's request listings (the GeoReport v2 fields). Off: those fields are empty,
    /// the location is rounded to about 100 m, and only the reporter, with the report's
    /// follow-up key, reads what they wrote.
    pub open311_publish_details: bool,
    /// Lifetime of tokens issued by login, hours.
    pub login_token_hours: u32,
    /// Seconds between checks for plans activated by other replicas (a fallback to
    /// PostgreSQL notifications, and the only mechanism on SQLite).
    pub reload_check_secs: u64,
    /// A point closer than this to another grid is flagged `near_boundary`, metres.
    pub near_boundary_m: f64,
    /// A point in no grid gets the nearest within this distance, metres.
    pub max_outside_m: f64,
    /// Points accepted by one `POST /v1/locate`.
    pub max_batch_points: usize,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Reports per minute per client address on the public intake (form and Open311).
    pub public_reports_per_minute: u32,
    /// Seconds between sweeps for due and overdue cases.
    pub sweep_secs: u64,
    /// A new report must be accepted by its dispatch centre within this many working
    /// hours; later, it is noticed as overdue (and escalated when so configured).
    pub accept_within_hours: u32,
    /// A deadline this many hours ahead is noticed as due soon.
    pub due_soon_hours: u32,
    /// Move overdue cases to the dispatch centre one level up.
    pub escalate_overdue: bool,
    /// Raster basemap under the web map, an XYZ URL with `{z}`, `{x}`, `{y}` (e.g.
    /// Tianditu with its key); empty: none, the regions are the context.
    pub basemap_url: String,
    /// Attribution shown for the basemap.
    pub basemap_attribution: String,
    /// Memory (address space) an upload's reader process may use, MiB.
    pub upload_reader_memory_mb: u64,
    /// CPU seconds an upload's reader process may use (wall clock: twice this).
    pub upload_reader_cpu_secs: u64,
    /// Bytes an uploaded zip may unpack to.
    pub upload_unpacked_limit_bytes: u64,
    /// Open event streams per account.
    pub max_streams_per_account: usize,
    /// OGC API requests per client address and minute; a page of items costs one
    /// more for every 100 features asked (`limit`).
    pub ogc_rate_per_minute: u32,
    /// Map tiles per client address and minute.
    pub tile_rate_per_minute: u32,
    /// Where webhooks may go although the address is internal (loopback, private,
    /// link-local): host names, addresses or CIDR blocks.
    pub webhook_allow_hosts: Vec<String>,
    /// Whether webhooks may use plain `http://` (a trusted network only): otherwise
    /// `https://` is required.
    pub webhook_allow_http: bool,
    /// A PEM file of CA certificates trusted for https webhooks besides the system's
    /// (a municipal network's own CA).
    pub webhook_ca_file: Option<std::path::PathBuf>,
    /// The service's address as its clients reach it (`https://wangge.example.gov.cn`),
    /// on which the absolute links of OGC API, TileJSON and Open311 answers are built.
    /// Empty: the request's `Host` (a plain host name or address only), with `https`
    /// only when a trusted proxy says so.
    pub public_url: String,
    /// A second person decides: a plan's approver is not its submitter, a matter's
    /// admitter is not its proposer.
    pub four_eyes: bool,
    /// Anonymous reads of past dates (OGC `datetime`, tiles `as_of` of a date not yet
    /// cached) per client address and minute: each may rebuild an index of the city.
    pub historic_reads_per_minute: u32,
    /// Failed logins for one account or from one address before each further attempt
    /// must wait (1 s, doubling, at most 15 min).
    pub login_free_failures: u32,
    /// Connections one client address may hold open at once (trusted proxies are not
    /// counted); 0: no limit.
    pub max_connections_per_address: usize,
    /// Seconds for a request's head to arrive; a kept-alive connection idle as long is
    /// closed.
    pub header_read_timeout_secs: u64,
    /// Connections the server holds at once (keep it under the process's file limit);
    /// 0: no limit.
    pub max_connections: usize,
    /// Seconds an answer may wait on a client that reads nothing of it; then the
    /// connection is closed.
    pub write_stall_timeout_secs: u64,
    /// Who may read `/metrics` (addresses or CIDRs; the client as `trusted_proxies`
    /// decides it): request counts and case totals are the operators' business.
    pub metrics_allow: Vec<String>,
}

/// Every setting's name (also its `WANGGE_` variable, upper-cased).
const KEYS: [&str; 39] = [
    "listen",
    "database_url",
    "body_limit_bytes",
    "request_timeout_secs",
    "public_rate_per_minute",
    "trusted_proxies",
    "mask_public_phones",
    "open311_publish_details",
    "login_token_hours",
    "reload_check_secs",
    "near_boundary_m",
    "max_outside_m",
    "max_batch_points",
    "log_format",
    "public_reports_per_minute",
    "sweep_secs",
    "accept_within_hours",
    "due_soon_hours",
    "escalate_overdue",
    "basemap_url",
    "basemap_attribution",
    "upload_reader_memory_mb",
    "upload_reader_cpu_secs",
    "upload_unpacked_limit_bytes",
    "max_streams_per_account",
    "login_free_failures",
    "historic_reads_per_minute",
    "four_eyes",
    "ogc_rate_per_minute",
    "tile_rate_per_minute",
    "webhook_allow_hosts",
    "webhook_allow_http",
    "webhook_ca_file",
    "public_url",
    "max_connections_per_address",
    "header_read_timeout_secs",
    "metrics_allow",
    "max_connections",
    "write_stall_timeout_secs",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: crate::store::DEFAULT_URL.to_string(),
            body_limit_bytes: 256 << 20,
            request_timeout_secs: 120,
            public_rate_per_minute: 120,
            trusted_proxies: Vec::new(),
            mask_public_phones: false,
            open311_publish_details: false,
            login_token_hours: 12,
            reload_check_secs: 5,
            near_boundary_m: 15.0,
            max_outside_m: 200.0,
            max_batch_points: 100_000,
            log_format: "text".into(),
            public_reports_per_minute: 20,
            sweep_secs: 60,
            accept_within_hours: 2,
            due_soon_hours: 4,
            escalate_overdue: true,
            basemap_url: String::new(),
            basemap_attribution: String::new(),
            upload_reader_memory_mb: 4096,
            upload_reader_cpu_secs: 120,
            upload_unpacked_limit_bytes: 2 << 30,
            max_streams_per_account: 8,
            login_free_failures: 5,
            historic_reads_per_minute: 60,
            four_eyes: true,
            ogc_rate_per_minute: 600,
            tile_rate_per_minute: 3000,
            webhook_allow_hosts: Vec::new(),
            webhook_allow_http: false,
            webhook_ca_file: None,
            public_url: String::new(),
            max_connections_per_address: 256,
            header_read_timeout_secs: 30,
            metrics_allow: vec!["127.0.0.1".into(), "::1".into()],
            max_connections: 10_000,
            write_stall_timeout_secs: 60,
        }
    }
}

/// A trusted proxy: an address, or a CIDR block.
pub fn parse_proxy(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Settings that cannot be used, each problem on its own line.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings:\n{}", .0.join("\n"))]
pub struct SettingsError(pub Vec<String>);

impl Settings {
    /// Reads defaults, then `file` (if given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(SettingsError(vec![format!(
                    "settings file {} does not exist",
                    file.display()
                )]));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            // Only the settings' own names: other WANGGE_* variables (the CLI's actor, the
            // test harness's URLs) are not settings.
            .merge(Env::prefixed("WANGGE_").only(&KEYS))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database_url".into()),
            );
        let settings: Settings = figment.extract().map_err(|e| {
            SettingsError(
                e.into_iter()
                    .map(|e| {
                        let key = e.path.join(".");
                        let source = e
                            .metadata
                            .as_ref()
                            .map(|m| m.name.to_string())
                            .unwrap_or_default();
                        format!("  {key}: {} ({source})", e.kind)
                    })
                    .collect(),
            )
        })?;
        settings.check()?;
        Ok(settings)
    }

    /// Range checks the types alone do not express.
    pub fn check(&self) -> Result<(), SettingsError> {
        let mut bad = Vec::new();

        if !(self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
            || self.database_url.starts_with("sqlite:"))
        {
            bad.push(format!(
                "  database_url: {:?} is neither postgres://… nor sqlite://…",
                self.database_url
            ));
        }
        if self.public_reports_per_minute == 0 {
            bad.push("  public_reports_per_minute: must be at least 1".into());
        }
        if self.sweep_secs == 0 {
            bad.push("  sweep_secs: must be at least 1".into());
        }
        if !(1..=240).contains(&self.accept_within_hours) {
            bad.push("  accept_within_hours: must be 1 to 240 (working hours)".into());
        }
        if self.body_limit_bytes < 1024 {
            bad.push("  body_limit_bytes: must be at least 1024".into());
        }
        if !(1..=3600).contains(&self.write_stall_timeout_secs) {
            bad.push("  write_stall_timeout_secs: must be 1 to 3600".into());
        }
        if !(1..=3600).contains(&self.header_read_timeout_secs) {
            bad.push("  header_read_timeout_secs: must be 1 to 3600".into());
        }
        if self.request_timeout_secs == 0 {
            bad.push("  request_timeout_secs: must be at least 1".into());
        }
        if self.public_rate_per_minute == 0 {
            bad.push("  public_rate_per_minute: must be at least 1".into());
        }
        if self.login_token_hours == 0 {
            bad.push("  login_token_hours: must be at least 1".into());
        }
        if self.reload_check_secs == 0 {
            bad.push("  reload_check_secs: must be at least 1".into());
        }
        if !(self.near_boundary_m.is_finite() && self.near_boundary_m >= 0.0) {
            bad.push("  near_boundary_m: must be a distance ≥ 0".into());
        }
        if !(self.max_outside_m.is_finite() && self.max_outside_m >= 0.0) {
            bad.push("  max_outside_m: must be a distance ≥ 0".into());
        }
        for allowed in &self.metrics_allow {
            if parse_proxy(allowed).is_none() {
                bad.push(format!(
                    "  metrics_allow: {allowed:?} is neither an address nor a CIDR block"
                ));
            }
        }
        for proxy in &self.trusted_proxies {
            if parse_proxy(proxy).is_none() {
                bad.push(format!(
                    "  trusted_proxies: {proxy:?} is neither an address nor a CIDR block"
                ));
            }
        }
        if !self.public_url.is_empty()
            && !((self.public_url.starts_with("http://")
                || self.public_url.starts_with("https://"))
                && self.public_url.parse::<axum::http::Uri>().is_ok_and(|u| {
                    u.host().is_some() && u.query().is_none() && !self.public_url.contains('"')
                }))
        {
            bad.push(format!(
                "  public_url: {:?} is not an http(s) address such as https://wangge.example.gov.cn",
                self.public_url
            ));
        }
        if self.upload_reader_memory_mb < 256 {
            bad.push("  upload_reader_memory_mb: must be at least 256".into());
        }
        if self.upload_reader_cpu_secs == 0 {
            bad.push("  upload_reader_cpu_secs: must be at least 1".into());
        }
        if self.ogc_rate_per_minute < 100 {
            bad.push("  ogc_rate_per_minute: must be at least 100 (a full page costs 100)".into());
        }
        if self.tile_rate_per_minute == 0 {
            bad.push("  tile_rate_per_minute: must be at least 1".into());
        }
        if self.historic_reads_per_minute == 0 {
            bad.push("  historic_reads_per_minute: must be at least 1".into());
        }
        if self.max_streams_per_account == 0 {
            bad.push("  max_streams_per_account: must be at least 1".into());
        }
        if self.max_batch_points == 0 {
            bad.push("  max_batch_points: must be at least 1".into());
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bad.push(format!(
                "  log_format: {:?} is neither text nor json",
                self.log_format
            ));
        }
        if !self.basemap_url.is_empty()
            && !((self.basemap_url.starts_with("http://")
                || self.basemap_url.starts_with("https://"))
                && ["{z}", "{x}", "{y}"]
                    .iter()
                    .all(|p| self.basemap_url.contains(p)))
        {
            bad.push(format!(
                "  basemap_url: {:?} is not an http(s) URL with {{z}}, {{x}} and {{y}}",
                self.basemap_url
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(SettingsError(bad))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_can_come_from_the_environment() {
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        let mut names: Vec<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys = KEYS.to_vec();
        names.sort();
        keys.sort();
        assert_eq!(names, keys);
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().check().unwrap();
    }

    #[test]
    fn every_bad_value_is_named() {
        let s = Settings {
            database_url: "mysql://x".into(),
            request_timeout_secs: 0,
            log_format: "xml".into(),
            ..Settings::default()
        };
        let e = s.check().unwrap_err().to_string();
        for key in ["database_url", "request_timeout_secs", "log_format"] {
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn a_file_and_the_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "w.toml",
                "listen = \"127.0.0.1:9999\"\npublic_rate_per_minute = 7",
            )?;
            jail.set_env("WANGGE_PUBLIC_RATE_PER_MINUTE", "9");
            jail.set_env("DATABASE_URL", "sqlite://x.db");
            jail.set_env("WANGGE_ACTOR", "not a setting");
            let s = Settings::load(Some(Path::new("w.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.listen.port(), 9999);
            assert_eq!(s.public_rate_per_minute, 9);
            assert_eq!(s.database_url, "sqlite://x.db");
            jail.set_env("WANGGE_LISTEN", "not an address");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("listen"), "{e}");
            Ok(())
        });
    }
}
