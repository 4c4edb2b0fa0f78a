//! Calling a tool through the hub: lookup by exposed name, timeout, retry on
//! transport failure, and the result mapped to text for the model.
//!
//! Every outcome is a [`ToolOutput`]: a tool that fails, times out, or whose
//! server is down or busy gives the model an error text, never an HTTP error.
//!
//! A call first takes one of its server's call slots (see `limit`); the wait
//! for it counts against the call's timeout, and the slot is held through
//! retries, so a call that is retried does not lose its turn.
//!
//! Retries: a call whose request could not be sent, or whose remote (HTTP)
//! connection dropped, is retried after the server reconnects, up to
//! `retries` times. A call whose stdio server died while running it is not
//! replayed: the call itself may be what killed it.

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use serde_json::Value;
use tokio::time::Instant;

use super::catalog::CatalogTool;
use super::hub::{Hub, Slot};
use super::limit::Refused;
use super::result::{cap, content_to_text, ToolOutput};
use crate::metrics::CallOutcome;
use crate::settings::servers::Transport;

/// How long a retry waits for its server to come back.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

impl Hub {
    /// Runs the tool exposed as `name` with `arguments` (a JSON object or
    /// null), and records how it went for `/metrics`.
    pub async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        let started = std::time::Instant::now();
        let catalog = self.catalog();
        let Some(tool) = catalog.get(name) else {
            self.tool_metrics.unknown(started.elapsed());
            return ToolOutput::error(catalog.unknown_tool(name));
        };
        let (output, outcome) = self.run(tool, arguments).await;
        self.tool_metrics.record(&tool.server, &tool.name, outcome, started.elapsed());
        output
    }

    async fn run(&self, tool: &CatalogTool, arguments: Value) -> (ToolOutput, CallOutcome) {
        let name = tool.name.as_str();
        let arguments = match arguments {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                let why = format!("arguments for {name:?} must be a JSON object, not {other}");
                return (ToolOutput::error(why), CallOutcome::ToolError);
            }
        };
        let Some(slot) = self.slot(&tool.server) else {
            let why = format!("the server of tool {name:?} is not configured");
            return (ToolOutput::error(why), CallOutcome::Unavailable);
        };
        let slot = &slot;
        let params = CallToolRequestParams::new(tool.original.clone()).with_arguments(arguments);
        let timeout = slot.config.call_timeout.unwrap_or(self.settings.call_timeout);
        let retries = slot.config.retries.unwrap_or(self.settings.retries);
        let max_bytes = slot.config.max_result_bytes.unwrap_or(self.settings.max_result_bytes);

        let deadline = Instant::now() + timeout;
        let _slot_taken = match slot.limit.admit(deadline).await {
            Ok(permit) => permit,
            Err(refused) => {
                let outcome = match refused {
                    Refused::TimedOut { .. } => CallOutcome::Timeout,
                    Refused::Busy { .. } | Refused::Closed => CallOutcome::Busy,
                };
                return (ToolOutput::error(refusal(refused, name, &tool.server, timeout)), outcome);
            }
        };
        let mut attempt = 0;
        loop {
            let seen_attempts = *slot.attempts.borrow();
            // A peer whose transport already closed (the supervisor has not
            // noticed yet) is no connection: nothing sent on it could arrive.
            let peer = slot.peer.read().ok().and_then(|p| p.clone()).filter(|p| !p.is_transport_closed());
            let Some(peer) = peer else {
                if attempt < retries && self.wait_reconnect(slot, seen_attempts, deadline).await {
                    attempt += 1;
                    continue;
                }
                return (ToolOutput::error(self.unavailable_reason(slot)), CallOutcome::Unavailable);
            };
            let result = tokio::time::timeout_at(deadline, peer.call_tool(params.clone())).await;
            let failed = |why: String, outcome| (ToolOutput::error(why), outcome);
            return match result {
                Err(_) => {
                    failed(format!("tool {name:?} did not finish within {} s", timeout.as_secs()), CallOutcome::Timeout)
                }
                Ok(Ok(r)) => {
                    let content: Vec<Value> = r.content.iter().filter_map(|c| serde_json::to_value(c).ok()).collect();
                    let text = cap(content_to_text(&content, r.structured_content.as_ref()), max_bytes);
                    let is_error = r.is_error.unwrap_or(false);
                    let outcome = if is_error { CallOutcome::ToolError } else { CallOutcome::Ok };
                    (ToolOutput { text, is_error }, outcome)
                }
                Ok(Err(ServiceError::McpError(e))) => {
                    failed(format!("tool {name:?} failed: {}", e.message), CallOutcome::ToolError)
                }
                Ok(Err(e)) if is_transport(&e) => {
                    let replayable = matches!(e, ServiceError::TransportSend(_)) || is_remote(slot);
                    if replayable && attempt < retries && self.wait_reconnect(slot, seen_attempts, deadline).await {
                        attempt += 1;
                        continue;
                    }
                    let why = format!("MCP server {:?} failed during the call to {name:?}: {e}", tool.server);
                    failed(why, CallOutcome::Unavailable)
                }
                Ok(Err(e)) => failed(format!("tool {name:?} failed: {e}"), CallOutcome::ToolError),
            };
        }
    }

    /// Waits until the supervisor has connected again after `seen` attempts,
    /// at most [`RECONNECT_WAIT`] and never past `deadline`.
    async fn wait_reconnect(&self, slot: &Slot, seen: u64, deadline: Instant) -> bool {
        let until = deadline.min(Instant::now() + RECONNECT_WAIT);
        let mut rx = slot.attempts.subscribe();
        let reconnected = async {
            loop {
                let connected = slot.peer.read().map(|p| p.is_some()).unwrap_or(false);
                if *rx.borrow_and_update() > seen && connected {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout_at(until, reconnected).await.unwrap_or(false)
    }
}

/// What the model reads when a call never got a slot on its server.
fn refusal(refused: Refused, tool: &str, server: &str, timeout: Duration) -> String {
    match refused {
        Refused::Busy { running, queued } => {
            format!("MCP server {server:?} is busy: {} running and {queued} waiting; try again later", calls(running))
        }
        Refused::TimedOut { running } => format!(
            "tool {tool:?} did not start within {} s: MCP server {server:?} was busy with {}; try again later",
            timeout.as_secs(),
            calls(running)
        ),
        Refused::Closed => format!("MCP server {server:?} is shutting down"),
    }
}

fn calls(n: usize) -> String {
    if n == 1 {
        "1 call".into()
    } else {
        format!("{n} calls")
    }
}

fn is_transport(e: &ServiceError) -> bool {
    matches!(e, ServiceError::TransportSend(_) | ServiceError::TransportClosed)
}

fn is_remote(slot: &Slot) -> bool {
    !matches!(slot.config.transport, Transport::Stdio { .. })
}
