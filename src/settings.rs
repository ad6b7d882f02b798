//! The one `Settings` tree, layered by figment: built-in defaults → `config/default.toml` →
//! `config/<profile>.toml` → the file in `SYNCSCRIPT_CONFIG` → `SYNCSCRIPT_…__…` variables.
use std::{path::Path, time::Duration};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use serde::Deserialize;

const DEFAULT_TOML: &str = include_str!("../config/default.toml");
const DEV_TOML: &str = include_str!("../config/dev.toml");
const PRODUCTION_TOML: &str = include_str!("../config/production.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub session: SessionSettings,
    pub auth: AuthSettings,
    pub realtime: RealtimeSettings,
    pub demo: DemoSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<TrustedProxy>,
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// On SIGTERM, the node's sockets are closed spread over this long.
    #[serde(with = "humantime_serde")]
    pub drain_period: Duration,
    /// A connection that does not send a whole request head this long after it opened, or
    /// after its previous response, is closed (an idle keep-alive connection too).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
}

/// A reverse proxy, by address or CIDR range (`10.0.0.7`, `10.0.0.0/8`), whose
/// `X-Forwarded-For` names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(ipnet::IpNet);

impl TrustedProxy {
    pub fn contains(&self, ip: &std::net::IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl std::str::FromStr for TrustedProxy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Self)
            .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub cookie_name: String,
    pub secure: bool,
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub absolute_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub cleanup_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub allow_registration: bool,
    pub max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeSettings {
    pub max_replay: u64,
    /// Bytes of recent vault events this node holds for replays, across all vaults.
    pub history_budget: usize,
    #[serde(with = "humantime_serde")]
    pub presence_interval: Duration,
    pub max_payload: u64,
    pub ws_max_message_size: usize,
    pub ws_max_frame_size: usize,
    pub ws_read_buffer_size: usize,
    pub max_buffer_size: usize,
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    pub events_per_second: u32,
    pub max_sockets_per_user: usize,
    #[serde(with = "humantime_serde")]
    pub session_check_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    pub seed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// A configuration problem, rendered as one line that names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Loads from the working directory and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(Path::new("config"), std::env::vars())
    }

    /// Loads with an explicit config folder and environment, so tests need no global state.
    pub fn load_from(
        dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let profile = var("SYNCSCRIPT_PROFILE").unwrap_or_else(|| "dev".into());

        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        figment = merge_file_or(figment, &dir.join("default.toml"), None);
        let builtin = match profile.as_str() {
            "dev" => Some(DEV_TOML),
            "production" => Some(PRODUCTION_TOML),
            _ => None,
        };
        figment = merge_file_or(figment, &dir.join(format!("{profile}.toml")), builtin);
        if let Some(path) = var("SYNCSCRIPT_CONFIG") {
            if !Path::new(&path).is_file() {
                return Err(ConfigError(format!(
                    "SYNCSCRIPT_CONFIG: no such file `{path}`"
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        for (key, value) in &env {
            let Some(path) = key.strip_prefix("SYNCSCRIPT_") else {
                continue;
            };
            if path == "PROFILE" || path == "CONFIG" {
                continue;
            }
            let path = path.to_lowercase().replace("__", ".");
            let value: figment::value::Value =
                value.parse().unwrap_or_else(|_| value.clone().into());
            figment = figment.merge(Serialized::default(&path, value));
        }

        let settings: Settings = figment.extract().map_err(|e| ConfigError(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("`{key}` {why}")));
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return bad("database.url", "must start with sqlite: or postgres://");
        }
        let name = &self.session.cookie_name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return bad(
                "session.cookie_name",
                "must be non-empty and use only letters, digits, `-`, `_`, `.`",
            );
        }
        if self.session.ttl.is_zero() || self.session.absolute_lifetime < self.session.ttl {
            return bad(
                "session.ttl",
                "must be positive and not longer than session.absolute_lifetime",
            );
        }
        if self.server.drain_period >= self.server.shutdown_timeout {
            return bad(
                "server.drain_period",
                "must be shorter than server.shutdown_timeout",
            );
        }
        if self.server.header_timeout.is_zero() {
            return bad("server.header_timeout", "must be positive");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1");
        }
        if self.auth.max_failures == 0 {
            return bad("auth.max_failures", "must be at least 1");
        }
        if self.realtime.max_payload < 1024 || self.realtime.ws_max_message_size < 1024 {
            return bad(
                "realtime.max_payload",
                "and realtime.ws_max_message_size must be at least 1024",
            );
        }
        let budget = self.realtime.history_budget;
        if budget != 0 && (budget as u64) < self.realtime.max_payload {
            return bad(
                "realtime.history_budget",
                "is in bytes: 0 (keep no history) or at least realtime.max_payload",
            );
        }
        if self.realtime.ws_read_buffer_size < 256 {
            return bad("realtime.ws_read_buffer_size", "must be at least 256");
        }
        if self.realtime.events_per_second == 0 || self.realtime.max_sockets_per_user == 0 {
            return bad(
                "realtime.events_per_second",
                "and realtime.max_sockets_per_user must be at least 1",
            );
        }
        for origin in &self.server.allowed_origins {
            if url::Url::parse(origin)
                .map(|u| u.origin().ascii_serialization() != *origin)
                .unwrap_or(true)
            {
                return bad(
                    "server.allowed_origins",
                    &format!("has `{origin}`, which is not an origin like https://app.example.com"),
                );
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad(
                "log.level",
                "is not a valid filter such as `info` or `syncscript=debug`",
            );
        }
        Ok(())
    }

    /// Settings that work but probably are not what the operator wants, one line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let local = self
            .server
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || self.server.host == "localhost";
        if !local && self.server.trusted_proxies.is_empty() {
            warnings.push(
                "server.trusted_proxies is empty: behind a load balancer every client counts as \
                 the balancer's address in the login throttle; set it to the balancer's \
                 addresses, e.g. SYNCSCRIPT_SERVER__TRUSTED_PROXIES='[\"10.0.0.0/8\"]'"
                    .to_string(),
            );
        }
        warnings
    }

    /// The database URL with any password replaced, for logs.
    pub fn redacted_database_url(&self) -> String {
        redact_url(&self.database.url)
    }
}

pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => raw.to_string(),
        Err(_) => "<unparsable url>".into(),
    }
}

fn merge_file_or(figment: Figment, path: &Path, builtin: Option<&'static str>) -> Figment {
    if path.is_file() {
        figment.merge(Toml::file(path))
    } else if let Some(text) = builtin {
        figment.merge(Toml::string(text))
    } else {
        figment
    }
}

/// figment's message, folded to one line, with the key path it names.
fn one_line(e: &figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e.clone() {
        let key = err.path.join(".");
        let mut msg = err.kind.to_string();
        // Environment overrides are merged as values; their key already names the variable.
        if let Some(meta) = err
            .metadata
            .as_ref()
            .filter(|m| !m.name.contains("figment::"))
        {
            msg = format!("{msg} (from {})", meta.name);
        }
        parts.push(if key.is_empty() {
            msg
        } else {
            format!("`{key}`: {msg}")
        });
    }
    parts.join("; ").replace('\n', " ")
}
