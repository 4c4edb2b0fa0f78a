//! The settings file's shape and how its sources are layered: built-in
//! defaults → the TOML file → `SECTION_KEY` environment overrides. The parent
//! module validates the result.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{invalid, SettingsError, DEFAULT_SERVERS_CONFIG};

/// The TOML file's shape. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: ServerSection,
    pub(super) upstream: UpstreamSection,
    pub(super) cors: CorsSection,
    pub(super) mcp: McpSection,
    pub(super) tool: ToolSection,
    pub(super) limits: LimitsSection,
    pub(super) session: SessionSection,
    pub(super) responses: ResponsesSection,
    pub(super) mcp_server: McpServerSection,
    pub(super) auth: AuthSection,
    pub(super) metrics: MetricsSection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Worker threads of the proxy service.
    pub threads: u64,
    /// After SIGTERM: the longest time in-flight requests get to finish.
    pub grace_period_seconds: u64,
    /// After the grace period: how long runtimes get to stop.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Accept HTTP/2 over cleartext (prior knowledge) beside HTTP/1.1.
    pub h2c: bool,
    /// An idle keep-alive client connection is closed after this long.
    pub keepalive_seconds: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            threads: 2,
            grace_period_seconds: 60,
            graceful_shutdown_timeout_seconds: 5,
            h2c: true,
            keepalive_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct UpstreamSection {
    pub(super) connect_timeout_seconds: u64,
    pub(super) first_byte_timeout_seconds: u64,
    pub(super) idle_timeout_seconds: u64,
    pub(super) write_timeout_seconds: u64,
    pub(super) pool_idle_seconds: u64,
    pub(super) retries: u64,
    pub(super) retry_backoff_ms: u64,
    pub(super) retry_max_delay_seconds: u64,
    pub(super) models_fallback: bool,
    /// PEM bundle of the CAs to trust for an https upstream; empty: the system's.
    pub(super) ca_file: String,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            connect_timeout_seconds: 10,
            first_byte_timeout_seconds: 300,
            idle_timeout_seconds: 120,
            write_timeout_seconds: 60,
            pool_idle_seconds: 90,
            retries: 2,
            retry_backoff_ms: 500,
            retry_max_delay_seconds: 10,
            models_fallback: true,
            ca_file: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct CorsSection {
    pub(super) allowed_origins: Vec<String>,
    pub(super) max_age_seconds: u64,
}

impl Default for CorsSection {
    fn default() -> Self {
        Self { allowed_origins: vec!["*".into()], max_age_seconds: 600 }
    }
}

/// The MCP hub's knobs; per-server overrides live in `servers_config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct McpSection {
    pub(super) servers_config: String,
    pub(super) call_timeout_seconds: u64,
    pub(super) retries: u64,
    pub(super) max_result_bytes: u64,
    pub(super) startup_wait_seconds: u64,
    pub(super) connect_timeout_seconds: u64,
    pub(super) restart_backoff_max_seconds: u64,
    pub(super) withdraw_after_seconds: u64,
    pub(super) max_concurrent_calls: u64,
    pub(super) max_queued_calls: u64,
}

impl Default for McpSection {
    fn default() -> Self {
        Self {
            servers_config: DEFAULT_SERVERS_CONFIG.into(),
            call_timeout_seconds: 60,
            retries: 2,
            max_result_bytes: 64 * 1024,
            startup_wait_seconds: 15,
            connect_timeout_seconds: 60,
            restart_backoff_max_seconds: 30,
            withdraw_after_seconds: 120,
            max_concurrent_calls: 4,
            max_queued_calls: 32,
        }
    }
}

/// The tool loop's knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ToolSection {
    pub(super) mode: String,
    pub(super) max_rounds: u64,
    pub(super) max_calls_per_round: u64,
    pub(super) budget_seconds: u64,
    pub(super) deadline_seconds: u64,
    pub(super) keepalive_seconds: u64,
    /// How long `auto` remembers that an upstream refused `tools` for a model.
    pub(super) learned_mode_seconds: u64,
    /// Per-model mode, e.g. `"llama-2-7b" = "prompt"`; a trailing `*` matches a prefix.
    pub(super) model_modes: BTreeMap<String, String>,
}

impl Default for ToolSection {
    fn default() -> Self {
        Self {
            mode: "auto".into(),
            max_rounds: 10,
            max_calls_per_round: 8,
            budget_seconds: 600,
            deadline_seconds: 900,
            keepalive_seconds: 3,
            learned_mode_seconds: 3600,
            model_modes: BTreeMap::new(),
        }
    }
}

/// Client keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AuthSection {
    /// Keys with access to every tool; env `AUTH_KEYS` (comma-separated, `${VAR}` allowed).
    pub(super) keys: Vec<String>,
    /// A TOML file of keys with per-key tool allow-lists; empty: none.
    pub(super) keys_file: String,
}

/// `/chat` sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SessionSection {
    /// `sqlite:PATH` (default) or `redis://…`; env `SESSION_STORE`.
    pub(super) store: String,
    pub(super) ttl_seconds: u64,
    pub(super) context_budget_chars: u64,
    pub(super) system_prompt: String,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            store: "sqlite:data/sessions.db".into(),
            ttl_seconds: 7 * 24 * 3600,
            context_budget_chars: 48_000,
            system_prompt: "You are a helpful assistant.".into(),
        }
    }
}

/// `/v1/responses`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ResponsesSection {
    /// Proxy a Responses request unchanged to the upstream's own
    /// `/v1/responses` when no MCP tool is in play for it.
    pub(super) passthrough_without_tools: bool,
}

/// `/mcp`: the catalog served to MCP clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct McpServerSection {
    pub(super) enabled: bool,
}

impl Default for McpServerSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct MetricsSection {
    /// Serve Prometheus metrics at all.
    pub(super) enabled: bool,
    /// `host:port` of a listener of their own (then not on the main port);
    /// empty: `/metrics` on the main port.
    pub(super) listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self { enabled: true, listen: String::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LimitsSection {
    pub(super) max_body_bytes: u64,
    pub(super) max_header_bytes: u64,
    pub(super) header_timeout_seconds: u64,
    pub(super) body_timeout_seconds: u64,
    pub(super) write_timeout_seconds: u64,
    pub(super) max_in_flight: u64,
    pub(super) retry_after_seconds: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            write_timeout_seconds: 60,
            max_in_flight: 1024,
            retry_after_seconds: 1,
        }
    }
}

/// defaults → file → `SECTION_KEY` environment overrides → typed struct.
pub(super) fn raw_config(file_text: Option<&str>, env: &HashMap<String, String>) -> Result<RawConfig, SettingsError> {
    let mut merged =
        toml::Value::try_from(RawConfig::default()).map_err(|e| invalid("CONFIG_FILE", "<defaults>", e.to_string()))?;
    if let Some(text) = file_text {
        let file: toml::Value = toml::from_str(text).map_err(|e| invalid("CONFIG_FILE", "<file>", one_line(&e)))?;
        merge(&mut merged, file);
    }
    apply_env_overrides(&mut merged, env)?;
    merged.try_into::<RawConfig>().map_err(|e| invalid("CONFIG_FILE", "<file>", one_line(&e)))
}

fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(base), toml::Value::Table(over)) => {
            for (k, v) in over {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Every leaf `[section] key` of the defaults can be set by `SECTION_KEY`; the
/// value is parsed as the type the default has.
fn apply_env_overrides(merged: &mut toml::Value, env: &HashMap<String, String>) -> Result<(), SettingsError> {
    let toml::Value::Table(sections) = merged else { return Ok(()) };
    for (section, table) in sections.iter_mut() {
        let toml::Value::Table(table) = table else { continue };
        for (key, value) in table.iter_mut() {
            let name = format!("{section}_{key}").to_uppercase();
            let Some(raw) = env.get(&name) else { continue };
            let raw = raw.trim();
            *value = match value {
                toml::Value::Integer(_) => raw
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .map(toml::Value::Integer)
                    .ok_or_else(|| invalid(&name, raw, "must be a whole number"))?,
                toml::Value::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
                    "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
                    _ => return Err(invalid(&name, raw, "must be true or false")),
                },
                toml::Value::Array(_) => toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ),
                toml::Value::Table(_) => continue,
                _ => toml::Value::String(raw.to_string()),
            };
        }
    }
    Ok(())
}
