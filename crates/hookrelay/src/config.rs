//! Configuration: command-line flags, `HOOKRELAY_*` environment variables (clap reads
//! both, flags first), then the TOML file given by `--config`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::retry::RetrySchedule;
use hookrelay_core::secrets::Cipher;
use hookrelay_delivery::breaker::BreakerConfig;
use hookrelay_delivery::eventbridge::{self, EventBridgeSettings};
use hookrelay_delivery::ingest::DEFAULT_MAX_EVENT_BYTES;
use hookrelay_delivery::EngineConfig;
use serde::{Deserialize, Serialize};

/// Every setting, as one source gives it: the flags and `HOOKRELAY_*` variables (clap
/// reads both, flags first), or the TOML file of `--config`, with the same names. Every
/// command that touches the database takes all of them, and [`Settings::load`] merges the
/// sources in one place, so that `publish` reads `max_event_bytes` exactly as `serve`
/// does. Unknown keys in the file are refused, so that a typo does not go unnoticed.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Settings (flags, HOOKRELAY_* variables, or the --config file)")]
pub struct Settings {
    /// TOML configuration file.
    #[arg(long, env = "HOOKRELAY_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite database and generated master key.
    #[arg(long, env = "HOOKRELAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host:port/database) instead of the
    /// embedded database: any number of nodes may share it. Needs HOOKRELAY_MASTER_KEY.
    #[arg(long, env = "HOOKRELAY_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Event types added to the built-in catalog (comma-separated; a list in the file).
    #[arg(
        long,
        env = "HOOKRELAY_EVENT_TYPES",
        value_name = "TYPES",
        value_delimiter = ','
    )]
    pub event_types: Option<Vec<String>>,
    /// Address to listen on.
    #[arg(long, env = "HOOKRELAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Allow http:// webhook URLs and auth endpoints (default: https only).
    #[arg(long, env = "HOOKRELAY_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_http: Option<bool>,
    /// Comma-separated CIDRs destinations may use although they are non-public (a list
    /// or a string in the file).
    #[arg(long, env = "HOOKRELAY_ALLOWED_NETWORKS", value_name = "CIDRS")]
    #[serde(default, deserialize_with = "text_or_list")]
    pub allowed_networks: Option<String>,
    /// The only ports webhook URLs and token endpoints may use, comma-separated (a list
    /// or a string in the file), e.g. 443; default: any port.
    #[arg(long, env = "HOOKRELAY_ALLOWED_PORTS", value_name = "PORTS")]
    #[serde(default, deserialize_with = "text_or_list")]
    pub allowed_ports: Option<String>,
    /// Names to resolve to a fixed address instead of asking DNS, `name=address`
    /// comma-separated (a list in the file), like curl's --resolve; the address policy
    /// still judges the address.
    #[arg(long, env = "HOOKRELAY_DNS_PINS", value_name = "PINS")]
    #[serde(default, deserialize_with = "text_or_list")]
    pub dns_pins: Option<String>,
    /// Base64 of 32 bytes; encrypts stored secrets. Generated in the data dir when absent
    /// (SQLite only: with PostgreSQL every node must be given the same key).
    #[arg(
        long,
        env = "HOOKRELAY_MASTER_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub master_key: Option<String>,
    /// More master keys (base64, comma-separated; a list in the file). Each opens the
    /// secrets sealed under it, and seals once `rotate-master-key` names it in the
    /// database: give every node the new key here before a rotation
    /// (docs/operations.md#rotating-the-master-key).
    #[arg(
        long,
        env = "HOOKRELAY_OTHER_MASTER_KEYS",
        hide_env_values = true,
        value_name = "KEYS"
    )]
    #[serde(default, deserialize_with = "text_or_list")]
    pub other_master_keys: Option<String>,
    /// Seconds to wait before each retry, comma-separated; its length is the number of retries.
    #[arg(long, env = "HOOKRELAY_RETRY_SCHEDULE", value_name = "SECS,...")]
    pub retry_schedule: Option<String>,
    /// Whole-request timeout of one webhook attempt (e.g. 10s, 500ms).
    #[arg(long, env = "HOOKRELAY_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Largest event `data` accepted, in bytes of JSON.
    #[arg(long, env = "HOOKRELAY_MAX_EVENT_BYTES", value_name = "BYTES")]
    pub max_event_bytes: Option<usize>,
    /// How long a silent node keeps its deliveries before others take them (e.g. 30s).
    #[arg(long, env = "HOOKRELAY_LEASE_TIMEOUT", value_name = "DURATION")]
    pub lease_timeout: Option<String>,
    /// Events (with their deliveries and attempts) are deleted this long after they were
    /// accepted (e.g. 30d, 12h).
    #[arg(long, env = "HOOKRELAY_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// The ceiling of the adaptive limit of requests in flight per destination host.
    #[arg(long, env = "HOOKRELAY_MAX_IN_FLIGHT_PER_HOST", value_name = "N")]
    pub max_in_flight_per_host: Option<usize>,
    /// The floor of that limit, where each host starts.
    #[arg(long, env = "HOOKRELAY_MIN_IN_FLIGHT_PER_HOST", value_name = "N")]
    pub min_in_flight_per_host: Option<usize>,
    /// Circuit breaker (hosts; endpoints too unless set apart): the sliding window (e.g. 2m).
    #[arg(long, env = "HOOKRELAY_BREAKER_WINDOW", value_name = "DURATION")]
    pub breaker_window: Option<String>,
    /// Circuit breaker: requests in the window before it may open.
    #[arg(long, env = "HOOKRELAY_BREAKER_MIN_REQUESTS", value_name = "N")]
    pub breaker_min_requests: Option<u32>,
    /// Circuit breaker: opens below this share of successes (0-1).
    #[arg(long, env = "HOOKRELAY_BREAKER_SUCCESS_RATIO", value_name = "RATIO")]
    pub breaker_success_ratio: Option<f64>,
    /// Circuit breaker: how long a failing host is paused (e.g. 3m).
    #[arg(long, env = "HOOKRELAY_BREAKER_PAUSE", value_name = "DURATION")]
    pub breaker_pause: Option<String>,
    /// Endpoint breaker (one webhook URL, judged by its answers): the sliding window;
    /// default: breaker_window.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_WINDOW",
        value_name = "DURATION"
    )]
    pub endpoint_breaker_window: Option<String>,
    /// Endpoint breaker: requests in the window before it may open; default:
    /// breaker_min_requests.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_MIN_REQUESTS",
        value_name = "N"
    )]
    pub endpoint_breaker_min_requests: Option<u32>,
    /// Endpoint breaker: opens below this share of successes; default:
    /// breaker_success_ratio.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_SUCCESS_RATIO",
        value_name = "RATIO"
    )]
    pub endpoint_breaker_success_ratio: Option<f64>,
    /// Endpoint breaker: how long a failing endpoint is paused; default: breaker_pause.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_PAUSE",
        value_name = "DURATION"
    )]
    pub endpoint_breaker_pause: Option<String>,
    /// The SaaS partner name in EventBridge partner event source names
    /// (aws.partner/{name}/{store}/{source}).
    #[arg(long, env = "HOOKRELAY_EVENTBRIDGE_PARTNER_NAME", value_name = "NAME")]
    pub eventbridge_partner_name: Option<String>,
    /// The EventBridge DetailType of BigCommerce-style events.
    #[arg(long, env = "HOOKRELAY_EVENTBRIDGE_DETAIL_TYPE", value_name = "TEXT")]
    pub eventbridge_detail_type: Option<String>,
    /// How long a partial EventBridge batch waits for more events (e.g. 50ms).
    #[arg(
        long,
        env = "HOOKRELAY_EVENTBRIDGE_BATCH_WAIT",
        value_name = "DURATION"
    )]
    pub eventbridge_batch_wait: Option<String>,
    /// The URL the portal's links start with (default: http:// and the listen address).
    #[arg(long, env = "HOOKRELAY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Origins that may show the portal in a frame (the platform's dashboard), space- or
    /// comma-separated; default 'none'.
    #[arg(long, env = "HOOKRELAY_PORTAL_FRAME_ANCESTORS", value_name = "ORIGINS")]
    pub portal_frame_ancestors: Option<String>,
    /// Database round trips one GraphQL request may make at most, counted from the query
    /// before it runs (docs/api.md#limits); default 60.
    #[arg(long, env = "HOOKRELAY_GRAPHQL_MAX_ROUND_TRIPS", value_name = "N")]
    pub graphql_max_round_trips: Option<usize>,
    /// Answer GraphQL introspection (`__schema`, `__type`; GraphiQL's docs need it);
    /// default true.
    #[arg(long, env = "HOOKRELAY_GRAPHQL_INTROSPECTION", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub graphql_introspection: Option<bool>,
}

/// `allowed_networks` or `allowed_ports` in the file: `"10.0.0.0/8,127.0.0.0/8"`, a list
/// of strings, or (ports) a number or a list of numbers.
fn text_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Networks {
        Text(String),
        List(Vec<String>),
        Number(u64),
        Numbers(Vec<u64>),
    }
    Ok(Option::<Networks>::deserialize(d)?.map(|n| match n {
        Networks::Text(text) => text,
        Networks::List(list) => list.join(","),
        Networks::Number(n) => n.to_string(),
        Networks::Numbers(list) => list
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }))
}

impl Settings {
    /// The settings in force: each one from the flags or environment if given there, else
    /// from the file, else left to its default.
    pub fn load(&self) -> Result<Settings> {
        let file = read_file(self.config.as_deref())?;
        let mut merged = serde_json::to_value(&file).context("settings")?;
        if let (Some(merged), serde_json::Value::Object(given)) = (
            merged.as_object_mut(),
            serde_json::to_value(self).context("settings")?,
        ) {
            merged.extend(given.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let mut settings: Settings = serde_json::from_value(merged).context("settings")?;
        settings.config = self.config.clone();
        Ok(settings)
    }

    /// Event types added to the built-in catalog.
    pub fn extra_event_types(&self) -> Vec<String> {
        self.event_types.clone().unwrap_or_default()
    }

    /// `max_event_bytes`, checked.
    pub fn max_event_bytes(&self) -> Result<usize> {
        let bytes = self.max_event_bytes.unwrap_or(DEFAULT_MAX_EVENT_BYTES);
        if !(1..=16 * 1024 * 1024).contains(&bytes) {
            bail!("max_event_bytes must be between 1 and 16777216");
        }
        Ok(bytes)
    }

    /// `public_url`, else http:// and the listen address.
    pub fn public_url(&self) -> Result<String> {
        let url = match &self.public_url {
            Some(url) => url.trim().trim_end_matches('/').to_owned(),
            None => format!(
                "http://{}",
                self.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
            ),
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => Ok(url),
            _ => bail!("public_url {url:?} must be an http:// or https:// URL such as https://hooks.example.com"),
        }
    }

    /// `portal_frame_ancestors` as a CSP source list: `'none'` by default.
    pub fn frame_ancestors(&self) -> Result<String> {
        let Some(text) = &self.portal_frame_ancestors else {
            return Ok("'none'".to_owned());
        };
        let sources: Vec<&str> = text.split([' ', ',']).filter(|s| !s.is_empty()).collect();
        for source in &sources {
            let keyword = matches!(*source, "'none'" | "'self'");
            let origin = (source.starts_with("https://") || source.starts_with("http://"))
                && source.is_ascii()
                && !source.contains([';', '\'', '"']);
            if !(keyword || origin) {
                bail!(
                    "portal_frame_ancestors: {source:?} is not an origin like https://dashboard.example.com (or 'self' / 'none')"
                );
            }
        }
        if sources.is_empty() {
            bail!("portal_frame_ancestors is empty; leave it out for 'none'");
        }
        Ok(sources.join(" "))
    }
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `30d` or a bare number of seconds.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration> {
    hookrelay_core::duration::parse(text).map_err(|e| anyhow::anyhow!("{name} {e}"))
}

fn read_file(path: Option<&Path>) -> Result<Settings> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Which database, resolved.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Backend {
    /// For logs and output: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(path) => path.display().to_string(),
            Backend::Postgres(url) => hookrelay_store::PgStore::describe(url),
        }
    }
}

/// Where the data lives, resolved.
#[derive(Debug, Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

pub const DEFAULT_DATA_DIR: &str = "./hookrelay-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DATABASE_FILE: &str = "hookrelay.sqlite3";
pub const MASTER_KEY_FILE: &str = "master.key";
/// The SaaS partner name when none is configured (docs/operations.md#configuration).
pub const DEFAULT_PARTNER_NAME: &str = "hookrelay.example";

impl Storage {
    /// From loaded settings ([`Settings::load`]).
    pub fn resolve(settings: &Settings) -> Self {
        Storage {
            data_dir: settings
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: settings.database_url.clone(),
        }
    }

    /// The database: PostgreSQL when a URL is given, else the SQLite file (with the data
    /// dir created, owner-only, if needed).
    pub fn backend(&self) -> Result<Backend> {
        if let Some(url) = &self.database_url {
            let scheme = url.split("://").next().unwrap_or_default();
            if !matches!(scheme, "postgres" | "postgresql") {
                bail!(
                    "--database-url must be a PostgreSQL URL (postgres://user:password@host:port/database), \
                     not {scheme:?}; leave it out to use the embedded SQLite database in --data-dir"
                );
            }
            return Ok(Backend::Postgres(url.clone()));
        }
        create_private_dir(&self.data_dir)?;
        Ok(Backend::Sqlite(self.data_dir.join(DATABASE_FILE)))
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub storage: Storage,
    pub listen: SocketAddr,
    pub policy: AddressPolicy,
    pub master_key: Option<String>,
    /// `other_master_keys`, one per entry.
    pub other_master_keys: Vec<String>,
    pub extra_event_types: Vec<String>,
    pub engine: EngineConfig,
    pub max_event_bytes: usize,
    pub eventbridge_partner_name: String,
    /// `public_url` as given; `None`: http:// and the address bound.
    pub public_url: Option<String>,
    pub portal_frame_ancestors: String,
    pub graphql: hookrelay_api::graphql::SchemaLimits,
}

impl ServeConfig {
    /// From loaded settings ([`Settings::load`]), checked.
    pub fn resolve(s: &Settings) -> Result<Self> {
        let storage = Storage::resolve(s);
        let listen_text = s
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let networks = s.allowed_networks.clone().unwrap_or_default();
        let allowed_networks = AddressPolicy::parse_networks(&networks)
            .map_err(|e| anyhow::anyhow!("allowed_networks: {e}"))?;
        let allowed_ports =
            AddressPolicy::parse_ports(s.allowed_ports.as_deref().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("allowed_ports: {e}"))?;
        let pinned = AddressPolicy::parse_pins(s.dns_pins.as_deref().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("dns_pins: {e}"))?;
        let policy = AddressPolicy {
            allow_http: s.allow_http.unwrap_or(false),
            allowed_networks,
            allowed_ports,
            pinned,
        };
        let duration = |name: &str, value: &Option<String>, default: Duration| match value {
            Some(text) => parse_duration(name, text),
            None => Ok(default),
        };
        let defaults = EngineConfig::default();
        let retry = match &s.retry_schedule {
            Some(text) => RetrySchedule::parse(text).map_err(|e| anyhow::anyhow!(e))?,
            None => RetrySchedule::default(),
        };
        let request_timeout = duration(
            "request_timeout",
            &s.request_timeout,
            defaults.request_timeout,
        )?;
        if request_timeout.is_zero() {
            bail!("request_timeout must be more than 0");
        }
        let lease_timeout = duration("lease_timeout", &s.lease_timeout, defaults.lease_timeout)?;
        if lease_timeout < Duration::from_millis(300) {
            bail!("lease_timeout must be at least 300ms");
        }
        let retention = duration("retention", &s.retention, defaults.retention)?;
        if retention < Duration::from_secs(1) {
            bail!("retention must be at least 1s");
        }
        let max_in_flight_per_host = s
            .max_in_flight_per_host
            .unwrap_or(defaults.max_in_flight_per_host);
        if max_in_flight_per_host == 0 {
            bail!("max_in_flight_per_host must be at least 1");
        }
        let min_in_flight_per_host = match s.min_in_flight_per_host {
            Some(0) => bail!("min_in_flight_per_host must be at least 1"),
            Some(min) if min > max_in_flight_per_host => bail!(
                "min_in_flight_per_host ({min}) must not be above max_in_flight_per_host \
                 ({max_in_flight_per_host})"
            ),
            Some(min) => min,
            // A ceiling set under the default floor is a fixed limit.
            None => defaults.min_in_flight_per_host.min(max_in_flight_per_host),
        };
        let breaker = resolve_breaker(
            "breaker",
            BreakerInput {
                window: &s.breaker_window,
                min_requests: s.breaker_min_requests,
                success_ratio: s.breaker_success_ratio,
                pause: &s.breaker_pause,
            },
            defaults.breaker,
        )?;
        // Each endpoint setting defaults to the host level's, so `breaker_*` alone sets
        // the rule for both.
        let endpoint_breaker = resolve_breaker(
            "endpoint_breaker",
            BreakerInput {
                window: &s.endpoint_breaker_window,
                min_requests: s.endpoint_breaker_min_requests,
                success_ratio: s.endpoint_breaker_success_ratio,
                pause: &s.endpoint_breaker_pause,
            },
            breaker,
        )?;
        let max_event_bytes = s.max_event_bytes()?;
        let partner_name = s
            .eventbridge_partner_name
            .clone()
            .unwrap_or_else(|| DEFAULT_PARTNER_NAME.to_owned());
        if !hookrelay_core::aws::is_source_segment(&partner_name) {
            bail!("eventbridge_partner_name {partner_name:?} must be 1-64 characters of letters, digits, '.', '-' and '_'");
        }
        let detail_type = s
            .eventbridge_detail_type
            .clone()
            .unwrap_or_else(|| eventbridge::DEFAULT_DETAIL_TYPE.to_owned());
        if detail_type.trim().is_empty() || detail_type.len() > 128 {
            bail!("eventbridge_detail_type must be 1-128 characters");
        }
        let batch_wait = duration(
            "eventbridge_batch_wait",
            &s.eventbridge_batch_wait,
            eventbridge::DEFAULT_BATCH_WAIT,
        )?;
        if batch_wait > Duration::from_secs(10) {
            bail!("eventbridge_batch_wait must be at most 10s");
        }
        // Without one, `serve` uses the address it bound (so that --listen :0 works).
        let public_url = match &s.public_url {
            Some(_) => Some(s.public_url()?),
            None => None,
        };
        let portal_frame_ancestors = s.frame_ancestors()?;
        let graphql = hookrelay_api::graphql::SchemaLimits {
            max_round_trips: match s.graphql_max_round_trips {
                Some(0) => bail!("graphql_max_round_trips must be at least 1"),
                Some(n) => n,
                None => hookrelay_api::graphql::DEFAULT_MAX_ROUND_TRIPS,
            },
            introspection: s.graphql_introspection.unwrap_or(true),
        };
        Ok(ServeConfig {
            public_url,
            portal_frame_ancestors,
            graphql,
            eventbridge_partner_name: partner_name,
            listen,
            engine: EngineConfig {
                retry,
                request_timeout,
                lease_timeout,
                retention,
                max_in_flight_per_host,
                min_in_flight_per_host,
                breaker,
                endpoint_breaker,
                policy: policy.clone(),
                eventbridge: EventBridgeSettings {
                    detail_type,
                    batch_wait,
                },
                ..defaults
            },
            max_event_bytes,
            policy,
            master_key: s.master_key.clone(),
            other_master_keys: s
                .other_master_keys
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            extra_event_types: s.extra_event_types(),
            storage,
        })
    }

    /// The master keys: `master_key` (or, SQLite only, the key file in the data dir,
    /// generated the first time) and `other_master_keys`. The first seals until the
    /// database names another (docs/operations.md#rotating-the-master-key). Nodes sharing
    /// a PostgreSQL database must all be given the same keys.
    pub fn cipher(&self) -> Result<Cipher> {
        let mut keys: Vec<String> = match &self.master_key {
            Some(key) => vec![key.clone()],
            None => read_key_file(&self.key_file_or_bail()?)?,
        };
        keys.extend(self.other_master_keys.iter().cloned());
        let texts: Vec<&str> = keys.iter().map(String::as_str).collect();
        Cipher::from_keys(&texts).context(match self.master_key {
            Some(_) => "HOOKRELAY_MASTER_KEY or HOOKRELAY_OTHER_MASTER_KEYS",
            None => "the master key file or HOOKRELAY_OTHER_MASTER_KEYS",
        })
    }

    /// The key file in the data dir, when no `master_key` is given (SQLite only).
    pub fn key_file(&self) -> Option<PathBuf> {
        (self.master_key.is_none() && self.storage.database_url.is_none())
            .then(|| self.storage.data_dir.join(MASTER_KEY_FILE))
    }

    /// [`ServeConfig::key_file`], made the first time; an error with PostgreSQL, which
    /// needs the key given.
    fn key_file_or_bail(&self) -> Result<PathBuf> {
        let Some(path) = self.key_file() else {
            bail!(
                "HOOKRELAY_MASTER_KEY (or --master-key) is required with PostgreSQL: every node \
                 must use the same key to read the secrets it stores. Make one with \
                 `openssl rand -base64 32` and keep it safe"
            );
        };
        if !path.exists() {
            create_private_dir(&self.storage.data_dir)?;
            write_private(&path, &Cipher::generate_key())?;
            tracing::info!(path = %path.display(), "generated a new master key; back it up with the database");
        }
        Ok(path)
    }
}

/// The keys in a key file: one base64 key per line, the first sealing (until the database
/// names another).
pub fn read_key_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read master key {}", path.display()))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        bail!("master key file {} is empty", path.display());
    }
    for key in &keys {
        Cipher::key_id(key).with_context(|| format!("master key file {}", path.display()))?;
    }
    Ok(keys)
}

/// Replaces the key file with `keys`, one per line, through a new file renamed over it,
/// readable by its owner only.
pub fn write_key_file(path: &Path, keys: &[String]) -> Result<()> {
    let next = path.with_extension("key.next");
    let _ = std::fs::remove_file(&next);
    let mut text = keys.join("\n");
    text.push('\n');
    write_private(&next, &text)?;
    std::fs::rename(&next, path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        // The rename itself survives a crash once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// One breaker level's settings as given.
struct BreakerInput<'a> {
    window: &'a Option<String>,
    min_requests: Option<u32>,
    success_ratio: Option<f64>,
    pause: &'a Option<String>,
}

/// A breaker level (`prefix`: `breaker` or `endpoint_breaker`, as the options are
/// named) from its settings, else `default`; checked.
fn resolve_breaker(
    prefix: &str,
    given: BreakerInput<'_>,
    default: BreakerConfig,
) -> Result<BreakerConfig> {
    let duration = |name: &str, value: &Option<String>, default| match value {
        Some(text) => parse_duration(&format!("{prefix}_{name}"), text),
        None => Ok(default),
    };
    let breaker = BreakerConfig {
        window: duration("window", given.window, default.window)?,
        min_requests: given.min_requests.unwrap_or(default.min_requests),
        min_success_ratio: given.success_ratio.unwrap_or(default.min_success_ratio),
        pause: duration("pause", given.pause, default.pause)?,
    };
    if !(0.0..=1.0).contains(&breaker.min_success_ratio) {
        bail!("{prefix}_success_ratio must be between 0 and 1");
    }
    if breaker.window.is_zero() {
        bail!("{prefix}_window must be more than 0");
    }
    Ok(breaker)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
