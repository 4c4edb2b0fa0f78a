//! Validating the merged raw configuration, one part at a time: each error
//! names the setting (its environment name) and the value.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::file::{LimitsSection, McpSection, MetricsSection, ServerSection, ToolSection};
use super::servers::{self, ServerConfig};
use super::ModeSetting;
use super::{
    invalid, AllowedOrigins, HttpLimits, HubSettings, MetricsSettings, SettingsError, ToolLimits, ToolSettings,
    DEFAULT_SERVERS_CONFIG,
};

/// A duration setting that must be at least one second.
pub(super) fn secs(name: &str, v: u64) -> Result<Duration, SettingsError> {
    if v == 0 {
        return Err(invalid(name, "0", "must be at least 1 second"));
    }
    Ok(Duration::from_secs(v))
}

pub(super) fn validate_limits(l: &LimitsSection, s: &ServerSection) -> Result<HttpLimits, SettingsError> {
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

pub(super) fn validate_tool(t: &ToolSection) -> Result<ToolSettings, SettingsError> {
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

pub(super) fn validate_mcp(
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

pub(super) fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

pub(super) fn read_file(setting: &str, path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|e| invalid(setting, &path.display().to_string(), e.to_string()))
}

pub(super) fn validate_origins(origins: &[String]) -> Result<AllowedOrigins, SettingsError> {
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

pub(super) fn validate_metrics(m: &MetricsSection) -> Result<MetricsSettings, SettingsError> {
    let listen = m.listen.trim();
    match (m.enabled, listen) {
        (false, _) => Ok(MetricsSettings::Off),
        (true, "") => Ok(MetricsSettings::OnMainPort),
        (true, addr) if addr.parse::<std::net::SocketAddr>().is_ok() => Ok(MetricsSettings::Listen(addr.to_string())),
        (true, addr) => Err(invalid("METRICS_LISTEN", addr, "must be an address to listen on, e.g. 127.0.0.1:9464")),
    }
}
