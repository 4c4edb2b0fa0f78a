//! `/mcp`: the hub's catalog as an MCP server. rmcp speaks the protocol
//! (versions, JSON or SSE answers); this is the handler it runs: the
//! catalog's tools as MCP tools, and a call as one call through the hub.
//!
//! The handler holds no tools of its own. The gate puts the caller's view of
//! the hub ([`CallerTools`], already narrowed to the key's allow-list) in the
//! HTTP request's extensions, and rmcp hands the request's parts to every
//! handler method: so `tools/list` and `tools/call` see exactly what the chat
//! path would offer the same key, and nothing else.
//!
//! Changes reach a client through `subscriptions/listen` (MCP 2026-07-28,
//! no session needed): one `notifications/tools/list_changed` each time the
//! caller's own view of the catalog changes, none for tools it cannot see.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::mcp::{CatalogTool, Hub, ToolOutput};
use crate::metrics::CallOutcome;
use crate::tool_loop::ToolRunner;

/// The tools of the request being served: the hub as the caller's key sees
/// it, and the hub's signal that its catalog changed.
#[derive(Clone)]
pub struct CallerTools {
    pub tools: Arc<dyn ToolRunner>,
    /// The whole hub: its change signal, and where a refused call is counted.
    pub hub: Arc<Hub>,
    /// Cancelled when the proxy starts to drain: subscriptions end then,
    /// or a listening client would hold the shutdown for its whole grace period.
    pub draining: CancellationToken,
}

/// What rmcp runs for each `/mcp` request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogServer;

/// The caller's tools, from the request the gate built. A request without
/// them sees no tools: failing closed, not open, if a path ever forgets them.
fn caller(context: &RequestContext<RoleServer>) -> Result<CallerTools, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CallerTools>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("no caller for this request", None))
}

fn caller_tools(context: &RequestContext<RoleServer>) -> Result<Arc<dyn ToolRunner>, ErrorData> {
    caller(context).map(|c| c.tools)
}

/// Counts a refused call as the chat path does (the client hears the same
/// error either way; the operator's metrics tell a forbidden tool from a made-up name).
fn count_refusal(hub: &Hub, name: &str) {
    match hub.catalog().get(name) {
        Some(t) => hub.tool_metrics().record(&t.server, &t.name, CallOutcome::Refused, Duration::ZERO),
        None => hub.tool_metrics().unknown(Duration::ZERO),
    }
}

/// A catalog tool as MCP lists it: the exposed name, the server's description and schema.
pub fn tool(t: &CatalogTool) -> Tool {
    let schema = match &t.input_schema {
        Value::Object(schema) => schema.clone(),
        // The catalog's schemas are objects; an odd one still gives a valid listing.
        _ => JsonObject::from_iter([("type".to_string(), Value::from("object"))]),
    };
    let description = (!t.description.is_empty()).then(|| Cow::Owned(t.description.clone()));
    Tool::new_with_raw(t.name.clone(), description, Arc::new(schema))
}

/// A call's outcome as MCP returns it: a failed tool is a result with
/// `isError`, not a protocol error, as the chat path gives it to the model.
pub fn result(out: ToolOutput) -> CallToolResult {
    let content = vec![ContentBlock::text(out.text)];
    if out.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    }
}

impl ServerHandler for CatalogServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("mcp-chat-proxy", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let catalog = caller_tools(&context)?.catalog();
        Ok(ListToolsResult::with_all_items(catalog.tools().iter().map(tool).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let CallerTools { tools, hub, .. } = caller(&context)?;
        // Not in the caller's catalog, whether it does not exist or the key may
        // not use it: the same protocol error (-32602, as rmcp's own router
        // answers), so a key never learns of a tool it may not use.
        if tools.catalog().get(&request.name).is_none() {
            count_refusal(&hub, &request.name);
            return Err(ErrorData::invalid_params(format!("unknown tool: {}", request.name), None));
        }
        let arguments = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        tokio::select! {
            out = tools.call(&request.name, arguments) => Ok(result(out).into()),
            // The client went away: stop waiting for the tool, as the chat path does.
            _ = context.ct.cancelled() => Err(ErrorData::internal_error("the request was cancelled", None)),
        }
    }

    fn accepted_subscription_filter(&self, _requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        // Tool list changes only; rmcp intersects this with what was asked.
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// One subscription: runs until the client cancels it or goes away.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let CallerTools { tools, hub, draining } = caller(context.request_context())?;
        let mut changes = hub.catalog_changes();
        let mut seen = tools.catalog();
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                // A graceful end: rmcp sends the final listen result, so the client knows to reconnect.
                _ = draining.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The hub is gone (shutdown): end the subscription cleanly.
                        return Ok(());
                    }
                    let now = tools.catalog();
                    // Only the caller's own view counts: a change to tools it
                    // cannot see must not tell it they exist.
                    if now.tools() == seen.tools() {
                        continue;
                    }
                    seen = now;
                    if context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_tool_keeps_its_exposed_name_description_and_schema() {
        let schema = serde_json::json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let t = CatalogTool {
            name: "a__echo".into(),
            server: "a".into(),
            original: "echo".into(),
            description: "Echoes".into(),
            input_schema: schema.clone(),
        };
        let listed = serde_json::to_value(tool(&t)).unwrap_or_default();
        assert_eq!(listed["name"], "a__echo");
        assert_eq!(listed["description"], "Echoes");
        assert_eq!(listed["inputSchema"], schema);
    }

    #[test]
    fn a_failed_tool_is_a_result_with_is_error() {
        let failed = serde_json::to_value(result(ToolOutput::error("boom"))).unwrap_or_default();
        assert_eq!(failed["isError"], true);
        assert_eq!(failed["content"][0]["text"], "boom");
        let fine = serde_json::to_value(result(ToolOutput::ok("42"))).unwrap_or_default();
        assert_eq!(fine["isError"], false);
    }
}
