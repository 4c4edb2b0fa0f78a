//! Every knob of the proxy, read once at start-up and validated.
//!
//! Sources, later ones winning: built-in defaults → the TOML file under `conf/`
//! → the environment (after `.env` is loaded). The five names users know from
//! the original service (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `DEFAULT_MODEL`,
//! `PORT`, `HOST`) are read as they are; every key of the TOML file can be
//! overridden by `SECTION_KEY` in upper case (`[upstream] connect_timeout_seconds`
//! → `UPSTREAM_CONNECT_TIMEOUT_SECONDS`; lists are comma-separated).
//!
//! Nothing else in the crate reads environment variables.

//!
//! | file | owns |
//! | --- | --- |
//! | `file` | the TOML file's shape and how the sources are layered |
//! | `validate` | each part's raw values checked, with errors naming the setting |
//! | `parts` | the validated settings of each part, as the parts read them |
//! | `servers` | `servers_config.json` |
//! | `oauth` | a remote server's `oauth` block: client credentials, secret kept out of `Debug` |
//! | `keys` | client keys and their tool allow-lists |
//! | `sources` | what a reload reads again (servers file, keys) |

mod file;
pub mod keys;
pub mod oauth;
mod parts;
pub mod servers;
mod sources;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use file::ServerSection;
use file::{raw_config, RawConfig};
pub use parts::{
    HttpLimits, HubSettings, MetricsSettings, ModeSetting, RetryPolicy, SessionSettings, ToolLimits, ToolSettings,
    UpstreamTimeouts,
};
use servers::ServerConfig;
pub use sources::ReloadSources;
use validate::{
    bracket_v6, read_file, secs, validate_limits, validate_mcp, validate_metrics, validate_origins, validate_tool,
};

/// Where the TOML file is looked for when `CONFIG_FILE` is not set.
pub const DEFAULT_CONFIG_FILE: &str = "conf/mcp-chat-proxy.toml";

/// A setting that failed validation: names the setting and its value, so the
/// one line printed at start-up tells the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub setting: String,
    /// The offending value, already redacted when the setting is a secret.
    pub value: String,
    pub reason: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting {}={:?}: {}", self.setting, self.value, self.reason)
    }
}

impl std::error::Error for SettingsError {}

fn invalid(setting: &str, value: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError { setting: setting.into(), value: value.into(), reason: reason.into() }
}

/// A secret that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The parsed `OPENAI_BASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (`""`, `"/v1"`, `"/api/openai/v1"`).
    pub path_prefix: String,
}

impl UpstreamUrl {
    pub fn parse(setting: &str, raw: &str) -> Result<Self, SettingsError> {
        // A URL may carry credentials; never echo them back.
        let shown = if raw.contains('@') { "<redacted>" } else { raw };
        let url = url::Url::parse(raw).map_err(|e| invalid(setting, shown, e.to_string()))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(invalid(setting, shown, format!("scheme {other:?} is not http or https"))),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid(setting, shown, "the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(setting, shown, "a base URL takes no query or fragment"));
        }
        let path_prefix = url.path().trim_end_matches('/').to_string();
        Ok(Self { tls, host, port, path_prefix })
    }

    /// `host:port`, the port always given (`[v6]:port` for an IPv6 address):
    /// where the upstream is, with nothing of its path or key.
    pub fn address(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{host}:{}", self.port)
    }

    /// The `Host` header value for requests to this upstream.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// CORS policy for browsers calling the proxy directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin, without credentials (the original service's default).
    Any,
    /// Only these exact origins (`scheme://host[:port]`).
    List(Vec<String>),
}

/// The validated settings. Built only by [`Settings::load`] or
/// [`Settings::from_sources`], so every instance has passed validation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub openai_api_key: Option<Secret>,
    pub upstream: UpstreamUrl,
    pub default_model: String,
    pub host: String,
    pub port: u16,
    pub server: ServerSection,
    pub upstream_timeouts: UpstreamTimeouts,
    pub cors: AllowedOrigins,
    pub cors_max_age_seconds: u64,
    pub models_fallback: bool,
    /// CAs to trust for the upstream instead of the system's (private CAs).
    pub upstream_ca_file: Option<std::path::PathBuf>,
    /// The enabled MCP servers, validated, variables expanded.
    pub mcp_servers: Vec<ServerConfig>,
    pub hub: HubSettings,
    /// The part of the environment stdio MCP servers may inherit.
    pub child_env: HashMap<String, String>,
    pub tool: ToolSettings,
    /// Largest request body the proxy reads or forwards (every route).
    pub max_body_bytes: usize,
    /// What a client connection may cost: header size, read and write
    /// timeouts, requests in flight.
    pub limits: HttpLimits,
    /// Retries of failed upstream calls before the first byte reaches the client.
    pub upstream_retry: RetryPolicy,
    pub session: SessionSettings,
    /// `responses.passthrough_without_tools`: a Responses request with no MCP
    /// tool in play goes to the upstream's own `/v1/responses` unchanged.
    pub responses_passthrough: bool,
    /// `mcp_server.enabled`: `/mcp` serves the catalog to MCP clients.
    pub mcp_server_enabled: bool,
    /// Client keys; empty: anyone may call (see README).
    pub keys: keys::Keys,
    /// `metrics.enabled`, `metrics.listen`.
    pub metrics: MetricsSettings,
    /// The servers file and keys as a reload reads them again.
    pub reload: ReloadSources,
}

/// The servers file looked for by default; it may be absent (no MCP servers).
pub const DEFAULT_SERVERS_CONFIG: &str = "servers_config.json";

impl Settings {
    /// Loads `.env` (if present) into the process environment, then builds the
    /// settings from the environment and the config file.
    pub fn load() -> Result<Self, SettingsError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(invalid(".env", ".env", e.to_string())),
        }
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_sources(&env)
    }

    /// Builds settings from an explicit environment map: the config file is the
    /// one named by `CONFIG_FILE` (must exist) or [`DEFAULT_CONFIG_FILE`] (optional).
    pub fn from_sources(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let file_text = match env.get("CONFIG_FILE") {
            Some(path) => Some(read_file("CONFIG_FILE", Path::new(path))?),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Some(read_file("CONFIG_FILE", Path::new(DEFAULT_CONFIG_FILE))?)
            }
            None => None,
        };
        let raw = raw_config(file_text.as_deref(), env)?;
        Self::validate(raw, env)
    }

    fn validate(raw: RawConfig, env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let openai_api_key = match get("OPENAI_API_KEY") {
            None => None,
            Some(key) if http::HeaderValue::from_str(&format!("Bearer {key}")).is_err() => {
                return Err(invalid(
                    "OPENAI_API_KEY",
                    "<redacted>",
                    "contains characters not allowed in an HTTP header",
                ))
            }
            Some(key) => Some(Secret(key.to_string())),
        };
        let upstream =
            UpstreamUrl::parse("OPENAI_BASE_URL", get("OPENAI_BASE_URL").unwrap_or("https://api.openai.com/v1"))?;
        let default_model = get("DEFAULT_MODEL").unwrap_or("gpt-3.5-turbo").to_string();
        let port_raw = get("PORT").unwrap_or("8000");
        let port = match port_raw.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(invalid("PORT", port_raw, "must be a number from 1 to 65535")),
        };
        let host = get("HOST").unwrap_or("0.0.0.0").to_string();
        if format!("{}:{port}", bracket_v6(&host)).parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("HOST", &host, "must be an IP address to listen on, e.g. 0.0.0.0 or 127.0.0.1"));
        }

        let s = &raw.server;
        if s.threads == 0 || s.threads > 256 {
            return Err(invalid("SERVER_THREADS", &s.threads.to_string(), "must be from 1 to 256"));
        }
        let u = &raw.upstream;
        let upstream_timeouts = UpstreamTimeouts {
            connect: secs("UPSTREAM_CONNECT_TIMEOUT_SECONDS", u.connect_timeout_seconds)?,
            first_byte: secs("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", u.first_byte_timeout_seconds)?,
            idle: secs("UPSTREAM_IDLE_TIMEOUT_SECONDS", u.idle_timeout_seconds)?,
            write: secs("UPSTREAM_WRITE_TIMEOUT_SECONDS", u.write_timeout_seconds)?,
            pool_idle: secs("UPSTREAM_POOL_IDLE_SECONDS", u.pool_idle_seconds)?,
        };
        let cors = validate_origins(&raw.cors.allowed_origins)?;
        let upstream_ca_file = match u.ca_file.trim() {
            "" => None,
            path if Path::new(path).is_file() => Some(std::path::PathBuf::from(path)),
            path => return Err(invalid("UPSTREAM_CA_FILE", path, "no such file")),
        };
        let (mcp_servers, hub) = validate_mcp(&raw.mcp, env)?;
        let tool = validate_tool(&raw.tool)?;
        let max_body_bytes = usize::try_from(raw.limits.max_body_bytes).unwrap_or(usize::MAX);
        let limits = validate_limits(&raw.limits, &raw.server)?;
        let upstream_retry = RetryPolicy {
            retries: u32::try_from(u.retries.min(10)).unwrap_or(10),
            backoff: Duration::from_millis(u.retry_backoff_ms),
            max_delay: secs("UPSTREAM_RETRY_MAX_DELAY_SECONDS", u.retry_max_delay_seconds)?,
        };
        let ss = &raw.session;
        if ss.ttl_seconds == 0 || ss.ttl_seconds > 10 * 365 * 24 * 3600 {
            return Err(invalid(
                "SESSION_TTL_SECONDS",
                &ss.ttl_seconds.to_string(),
                "must be from 1 second to 10 years",
            ));
        }
        if ss.store.starts_with("rediss://") {
            return Err(invalid(
                "SESSION_STORE",
                "rediss://…",
                "TLS to Redis is not built in; use redis:// through a TLS tunnel",
            ));
        }
        let keys_file = raw.auth.keys_file.trim();
        let keys_path = (!keys_file.is_empty()).then(|| Path::new(keys_file));
        let keys =
            keys::Keys::load(&raw.auth.keys, keys_path, env).map_err(|e| invalid("AUTH_KEYS_FILE", keys_file, e))?;
        let session = SessionSettings {
            store: ss.store.clone(),
            ttl: Duration::from_secs(ss.ttl_seconds),
            context_budget_chars: usize::try_from(ss.context_budget_chars).unwrap_or(usize::MAX),
            system_prompt: ss.system_prompt.clone(),
        };
        let child_env = env
            .iter()
            .filter(|(k, _)| servers::INHERITED_ENV.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        Ok(Self {
            openai_api_key,
            upstream,
            default_model,
            host,
            port,
            server: raw.server.clone(),
            upstream_timeouts,
            cors,
            cors_max_age_seconds: raw.cors.max_age_seconds,
            models_fallback: u.models_fallback,
            upstream_ca_file,
            mcp_servers,
            hub,
            child_env,
            tool,
            max_body_bytes,
            limits,
            upstream_retry,
            session,
            responses_passthrough: raw.responses.passthrough_without_tools,
            mcp_server_enabled: raw.mcp_server.enabled,
            keys,
            metrics: validate_metrics(&raw.metrics)?,
            reload: ReloadSources::new(&raw.mcp.servers_config, &raw.auth.keys, keys_path, env),
        })
    }

    /// `host:port` to listen on.
    pub fn listen_addr(&self) -> String {
        format!("{}:{}", bracket_v6(&self.host), self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        // Keep the repository's conf/ file out of unit tests.
        m.entry("CONFIG_FILE".into()).or_insert_with(|| "/dev/null".into());
        m
    }

    #[test]
    fn defaults_match_the_original_service() {
        let s = Settings::from_sources(&env(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.port, 8000);
        assert_eq!(s.host, "0.0.0.0");
        assert_eq!(s.default_model, "gpt-3.5-turbo");
        assert_eq!(s.upstream.host, "api.openai.com");
        assert!(s.upstream.tls);
        assert_eq!(s.upstream.path_prefix, "/v1");
        assert_eq!(s.cors, AllowedOrigins::Any);
        assert!(s.openai_api_key.is_none());
    }

    #[test]
    fn bad_port_names_the_setting_and_value() {
        let e = Settings::from_sources(&env(&[("PORT", "99999")])).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.to_string(), "invalid setting PORT=\"99999\": must be a number from 1 to 65535");
    }

    #[test]
    fn path_prefix_and_port_are_kept() {
        let u = UpstreamUrl::parse("X", "https://gw.example:8443/api/openai/v1/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((u.port, u.path_prefix.as_str()), (8443, "/api/openai/v1"));
        assert_eq!(u.host_header(), "gw.example:8443");
    }

    #[test]
    fn env_overrides_file_values_and_lists_split_on_commas() {
        let dir = std::env::temp_dir().join(format!("mcp-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("c.toml");
        std::fs::write(&file, "[upstream]\nconnect_timeout_seconds = 3\n[server]\nthreads = 4\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let path = file.display().to_string();
        let s = Settings::from_sources(&env(&[
            ("CONFIG_FILE", &path),
            ("SERVER_THREADS", "1"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example, http://b.example:3000"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(s.upstream_timeouts.connect, Duration::from_secs(3));
        assert_eq!(s.server.threads, 1);
        assert_eq!(s.cors, AllowedOrigins::List(vec!["https://a.example".into(), "http://b.example:3000".into()]));
    }

    #[test]
    fn unknown_key_in_file_is_rejected_by_name() {
        let dir = std::env::temp_dir().join(format!("mcp-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("c.toml");
        std::fs::write(&file, "[upstream]\nconect_timeout_seconds = 3\n").unwrap_or_else(|e| panic!("{e}"));
        let e = Settings::from_sources(&env(&[("CONFIG_FILE", &file.display().to_string())]))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.to_string().contains("conect_timeout_seconds"), "{e}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let e = Settings::from_sources(&env(&[("OPENAI_API_KEY", "sk-secret\nvalue")]))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(!e.to_string().contains("sk-secret"));
        let e = Settings::from_sources(&env(&[("OPENAI_BASE_URL", "ftp://user:pw@host/v1")]))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
