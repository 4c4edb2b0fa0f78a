//! The validated settings of each part (the HTTP limits, the upstream's
//! timeouts and retries, the hub, the tool loop, sessions): plain types that
//! the parts read; nothing here reads a source or validates.

use std::time::Duration;

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

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsSettings {
    Off,
    /// On the main listener, beside the API (under the client keys, if any).
    OnMainPort,
    /// On a listener of its own (`host:port`), and not on the main one.
    Listen(String),
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
    pub(super) model_modes: Vec<(String, ModeSetting)>,
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
