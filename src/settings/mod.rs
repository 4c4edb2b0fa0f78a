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

mod file;
pub mod keys;
pub mod servers;

pub use file::ServerSection;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use file::{raw_config, LimitsSection, McpSection, RawConfig, ToolSection};

use servers::ServerConfig;

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
    /// Client keys; empty: anyone may call (see README).
    pub keys: keys::Keys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    /// Longest wait for the first byte of a response (the status line).
    pub first_byte: Duration,
    /// Longest gap between two reads of a response body (stream chunks).
    pub idle: Duration,
    pub write: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub pool_idle: Duration,
}

/// Limits on what one client connection or request may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Request line and headers together; larger: 431 and the connection closed.
    pub max_header_bytes: usize,
    /// From a connection's first byte (or its accept) to the end of the request headers.
    pub header_timeout: Duration,
    /// Longest gap between two reads of a request body.
    pub body_timeout: Duration,
    /// Longest time a write to a client may wait (a client that stopped reading).
    pub write_timeout: Duration,
    /// Requests served at once; beyond it: 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// The `Retry-After` of that 503, in seconds.
    pub retry_after_seconds: u64,
}

/// When and how often a failed upstream call is repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub retries: u32,
    /// The first backoff; it doubles each retry, with jitter.
    pub backoff: Duration,
    /// No wait (backoff or the upstream's `Retry-After`) is longer than this.
    pub max_delay: Duration,
}

/// The validated `/chat` session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    pub store: String,
    pub ttl: Duration,
    pub context_budget_chars: usize,
    pub system_prompt: String,
}

/// `TOOL_MODE` and the per-request `x-mcp-tool-mode` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSetting {
    Auto,
    Native,
    Prompt,
}

impl ModeSetting {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "native" => Some(Self::Native),
            "prompt" => Some(Self::Prompt),
            _ => None,
        }
    }
}

/// Hub-wide defaults; a server's own config may override the call settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub call_timeout: Duration,
    pub retries: u32,
    pub max_result_bytes: usize,
    /// How long start-up waits for servers before serving without them.
    pub startup_wait: Duration,
    /// How long one connection attempt (spawn + initialize + list) may take.
    pub connect_timeout: Duration,
    pub backoff_max: Duration,
    /// A server down this long has its tools withdrawn from the catalog.
    pub withdraw_after: Duration,
    /// Calls one server runs at once (a server's own `max_concurrent_calls` overrides).
    pub max_concurrent_calls: usize,
    /// Calls that may wait for a free slot per server; beyond: a tool error at once.
    pub max_queued_calls: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(60),
            retries: 2,
            max_result_bytes: 64 * 1024,
            startup_wait: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(60),
            backoff_max: Duration::from_secs(30),
            withdraw_after: Duration::from_secs(120),
            max_concurrent_calls: 4,
            max_queued_calls: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// The tool loop's limits.
pub struct ToolLimits {
    pub max_rounds: u32,
    pub max_calls_per_round: usize,
    /// Wall-clock budget for tool rounds: past it, the model is asked to
    /// answer without tools.
    pub budget: Duration,
    /// Hard wall-clock limit of the whole request: past it, the request fails
    /// (504 before the first byte, an SSE error after it).
    pub deadline: Duration,
    /// While tools run, a `: tool … running` comment this often (streaming).
    pub keepalive: Duration,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            max_rounds: 10,
            max_calls_per_round: 8,
            budget: Duration::from_secs(600),
            deadline: Duration::from_secs(900),
            keepalive: Duration::from_secs(3),
        }
    }
}

/// The validated tool-loop settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSettings {
    pub mode: ModeSetting,
    pub limits: ToolLimits,
    /// How long `auto` mode keeps a model prompt-only after its upstream refused `tools`.
    pub learned_mode: Duration,
    model_modes: Vec<(String, ModeSetting)>,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            mode: ModeSetting::Auto,
            limits: ToolLimits::default(),
            learned_mode: Duration::from_secs(3600),
            model_modes: Vec::new(),
        }
    }
}

impl ToolSettings {
    /// The configured mode for `model`: its own entry, else the global one.
    pub fn mode_for(&self, model: &str) -> ModeSetting {
        self.model_modes
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => model == pattern,
            })
            .map(|(_, m)| *m)
            .unwrap_or(self.mode)
    }
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
        let keys = keys::Keys::load(&raw.auth.keys, (!keys_file.is_empty()).then(|| Path::new(keys_file)), env)
            .map_err(|e| invalid("AUTH_KEYS_FILE", keys_file, e))?;
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
            keys,
        })
    }

    /// `host:port` to listen on.
    pub fn listen_addr(&self) -> String {
        format!("{}:{}", bracket_v6(&self.host), self.port)
    }
}

/// A duration setting that must be at least one second.
fn secs(name: &str, v: u64) -> Result<Duration, SettingsError> {
    if v == 0 {
        return Err(invalid(name, "0", "must be at least 1 second"));
    }
    Ok(Duration::from_secs(v))
}

fn validate_limits(l: &LimitsSection, s: &ServerSection) -> Result<HttpLimits, SettingsError> {
    if l.max_header_bytes < 1024 || l.max_header_bytes > 1024 * 1024 {
        return Err(invalid(
            "LIMITS_MAX_HEADER_BYTES",
            &l.max_header_bytes.to_string(),
            "must be from 1024 to 1048576 (the HTTP engine's own ceiling)",
        ));
    }
    if l.max_in_flight == 0 {
        return Err(invalid("LIMITS_MAX_IN_FLIGHT", "0", "must be at least 1"));
    }
    secs("SERVER_KEEPALIVE_SECONDS", s.keepalive_seconds)?;
    Ok(HttpLimits {
        max_header_bytes: usize::try_from(l.max_header_bytes).unwrap_or(usize::MAX),
        header_timeout: secs("LIMITS_HEADER_TIMEOUT_SECONDS", l.header_timeout_seconds)?,
        body_timeout: secs("LIMITS_BODY_TIMEOUT_SECONDS", l.body_timeout_seconds)?,
        write_timeout: secs("LIMITS_WRITE_TIMEOUT_SECONDS", l.write_timeout_seconds)?,
        max_in_flight: usize::try_from(l.max_in_flight).unwrap_or(usize::MAX),
        retry_after_seconds: l.retry_after_seconds,
    })
}

fn validate_tool(t: &ToolSection) -> Result<ToolSettings, SettingsError> {
    let mode =
        ModeSetting::parse(&t.mode).ok_or_else(|| invalid("TOOL_MODE", &t.mode, "must be auto, native or prompt"))?;
    let mut model_modes = Vec::new();
    for (model, m) in &t.model_modes {
        let parsed = ModeSetting::parse(m)
            .ok_or_else(|| invalid(&format!("tool.model_modes.{model}"), m, "must be auto, native or prompt"))?;
        model_modes.push((model.clone(), parsed));
    }
    // Exact names before prefixes, longer prefixes before shorter.
    model_modes.sort_by_key(|(p, _)| (p.ends_with('*'), std::cmp::Reverse(p.len())));
    if t.max_rounds == 0 {
        return Err(invalid("TOOL_MAX_ROUNDS", "0", "must be at least 1"));
    }
    let limits = ToolLimits {
        max_rounds: u32::try_from(t.max_rounds).unwrap_or(u32::MAX),
        max_calls_per_round: usize::try_from(t.max_calls_per_round.max(1)).unwrap_or(usize::MAX),
        budget: Duration::from_secs(t.budget_seconds.max(1)),
        deadline: secs("TOOL_DEADLINE_SECONDS", t.deadline_seconds)?,
        keepalive: Duration::from_secs(t.keepalive_seconds.max(1)),
    };
    let learned_mode = secs("TOOL_LEARNED_MODE_SECONDS", t.learned_mode_seconds)?;
    Ok(ToolSettings { mode, limits, learned_mode, model_modes })
}

fn validate_mcp(
    m: &McpSection,
    env: &HashMap<String, String>,
) -> Result<(Vec<ServerConfig>, HubSettings), SettingsError> {
    let hub = HubSettings {
        call_timeout: secs("MCP_CALL_TIMEOUT_SECONDS", m.call_timeout_seconds)?,
        retries: u32::try_from(m.retries).map_err(|_| invalid("MCP_RETRIES", &m.retries.to_string(), "too large"))?,
        max_result_bytes: usize::try_from(m.max_result_bytes.max(256)).unwrap_or(usize::MAX),
        startup_wait: Duration::from_secs(m.startup_wait_seconds),
        connect_timeout: secs("MCP_CONNECT_TIMEOUT_SECONDS", m.connect_timeout_seconds)?,
        backoff_max: secs("MCP_RESTART_BACKOFF_MAX_SECONDS", m.restart_backoff_max_seconds)?,
        withdraw_after: Duration::from_secs(m.withdraw_after_seconds),
        max_concurrent_calls: usize::try_from(m.max_concurrent_calls.max(1)).unwrap_or(usize::MAX),
        max_queued_calls: usize::try_from(m.max_queued_calls).unwrap_or(usize::MAX),
    };
    let path = Path::new(&m.servers_config);
    // Empty: no MCP servers. The default file may be absent: no servers either.
    if m.servers_config.is_empty() || (m.servers_config == DEFAULT_SERVERS_CONFIG && !path.exists()) {
        return Ok((Vec::new(), hub));
    }
    let servers = servers::load(path, env).map_err(|e| invalid("MCP_SERVERS_CONFIG", &m.servers_config, e))?;
    Ok((servers, hub))
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn read_file(setting: &str, path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|e| invalid(setting, &path.display().to_string(), e.to_string()))
}

fn validate_origins(origins: &[String]) -> Result<AllowedOrigins, SettingsError> {
    if origins.iter().any(|o| o == "*") {
        return Ok(AllowedOrigins::Any);
    }
    for origin in origins {
        let ok = url::Url::parse(origin)
            .map(|u| u.path() == "/" && !origin.ends_with('/') && u.host_str().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(invalid(
                "CORS_ALLOWED_ORIGINS",
                origin,
                "each origin must be scheme://host[:port] with no path, or \"*\"",
            ));
        }
    }
    Ok(AllowedOrigins::List(origins.to_vec()))
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
