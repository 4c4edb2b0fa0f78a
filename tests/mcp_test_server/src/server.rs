//! The `ServerHandler`: what the server says about itself and which tools a client sees.
//!
//! The tools come from rmcp's `#[tool_router]` (schemas by schemars, argument parsing, dispatch),
//! but listing and calling are written by hand so the visible set can change at run time: `--tools`
//! narrows it once at start-up, and `toggle_extra` flips the `extra` tool per connection.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

/// The tool that `toggle_extra` adds and removes; `--tools` does not govern it.
pub const EXTRA_TOOL: &str = "extra";

/// What the command line asked for, shared by every connection.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    name: Arc<str>,
    /// `None` exposes every tool.
    exposed: Option<Arc<BTreeSet<String>>>,
}

impl ServerSpec {
    /// Checks `--tools` against the real tool names, so a typo fails at start-up, not in a test.
    pub fn new(name: String, tools: Vec<String>) -> Result<Self, String> {
        let known: BTreeSet<String> = TestServer::tool_router().list_all().into_iter().map(|t| t.name.into()).collect();
        if let Some(unknown) = tools.iter().find(|name| !known.contains(*name)) {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(format!("--tools names unknown tool {unknown:?}; known tools: {}", known.join(",")));
        }
        let exposed = (!tools.is_empty()).then(|| Arc::new(tools.into_iter().collect()));
        Ok(Self { name: name.into(), exposed })
    }
}

/// One server instance per connection (stdio process, HTTP session, SSE session).
#[derive(Clone)]
pub struct TestServer {
    spec: ServerSpec,
    router: ToolRouter<Self>,
    /// Per connection, like any state a real server keeps for its client.
    extra_on: Arc<AtomicBool>,
}

impl TestServer {
    pub fn new(spec: ServerSpec) -> Self {
        Self { spec, router: Self::tool_router(), extra_on: Arc::new(AtomicBool::new(false)) }
    }

    fn is_visible(&self, name: &str) -> bool {
        if name == EXTRA_TOOL {
            return self.extra_on.load(Ordering::SeqCst);
        }
        self.router.has_route(name) && self.spec.exposed.as_ref().is_none_or(|exposed| exposed.contains(name))
    }

    /// Flips `extra` and returns whether it is now on.
    pub fn flip_extra(&self) -> bool {
        !self.extra_on.fetch_xor(true, Ordering::SeqCst)
    }
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(self.spec.name.as_ref(), env!("CARGO_PKG_VERSION")))
    }

    /// Only the revisions that still have the `initialize` handshake: this server models the
    /// session-based servers deployed today, so a client that offers 2026-07-28 is answered
    /// with 2025-11-25 and gets a session (and list_changed notifications on it).
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::LATEST_WITH_INITIALIZE))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self.router.list_all().into_iter().filter(|tool| self.is_visible(&tool.name)).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // An unknown tool is a protocol error (-32602), as in rmcp's own router.
        if !self.is_visible(&request.name) {
            return Err(ErrorData::invalid_params(format!("tool not found: {}", request.name), None));
        }
        self.router.call(ToolCallContext::new(self, request, context)).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router.get(name).filter(|_| self.is_visible(name)).cloned()
    }
}

/// Serves one client on stdin/stdout until it closes stdin.
pub async fn serve_stdio(spec: ServerSpec) -> Result<(), Box<dyn std::error::Error>> {
    // `stdio_pipes` drives pipes on the IO reactor rather than the blocking pool, which
    // matters with many calls in flight; it falls back to plain stdio for non-pipes.
    let running = TestServer::new(spec).serve(rmcp::transport::stdio_pipes()).await?;
    running.waiting().await?;
    Ok(())
}
