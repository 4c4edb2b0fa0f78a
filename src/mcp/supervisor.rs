//! One server's life: connect, serve until the connection ends, reconnect
//! with exponential backoff, until the hub shuts down.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, PingRequest, ServerNotification,
    SubscriptionFilterBuilder,
};
use rmcp::service::ServiceError;
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::common::client_side_sse::ExponentialBackoff;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{Peer, RoleClient, ServiceExt};

use super::bearer::BearerClient;
use super::catalog::ServerTool;
use super::hub::{Hub, Slot};
use super::oauth::TokenSource;
use super::sse_transport::SseClientTransport;
use super::stdio;
use crate::settings::servers::Transport;

const BACKOFF_START: Duration = Duration::from_millis(250);
/// A connection that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// The rmcp client handler of one server: it refreshes the catalog when the
/// server says its tool list changed.
#[derive(Clone)]
pub(crate) struct HubClient {
    hub: Weak<Hub>,
    slot: Weak<Slot>,
}

impl ClientHandler for HubClient {
    fn on_tool_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        // Listing is a request on the same session: never hold up the
        // session's message loop waiting for it.
        tokio::spawn(refresh_tools(self.hub.clone(), self.slot.clone(), context.peer));
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-chat-proxy", env!("CARGO_PKG_VERSION")),
        )
    }
}

async fn refresh_tools(hub: Weak<Hub>, slot: Weak<Slot>, peer: Peer<RoleClient>) {
    let Some(server) = slot.upgrade().map(|s| s.config.name.clone()) else { return };
    match peer.list_all_tools().await {
        Ok(tools) => {
            if let (Some(hub), Some(slot)) = (hub.upgrade(), slot.upgrade()) {
                tracing::info!(target: "mcp", server = %server, "tool list changed");
                hub.set_tools(&slot, tools.into_iter().map(convert).collect());
            }
        }
        Err(e) => tracing::warn!(target: "mcp", server = %server, "re-listing tools failed: {e}"),
    }
}

/// Servers on protocol 2026-07-28 and later send `tools/list_changed` only
/// on a `subscriptions/listen` stream; older servers send it unscoped, to
/// [`HubClient::on_tool_list_changed`]. This listens on the stream where the
/// server supports it; the task ends with the connection.
async fn watch_tool_changes(hub: Weak<Hub>, slot: Weak<Slot>, peer: Peer<RoleClient>) {
    let server = slot.upgrade().map(|s| s.config.name.clone()).unwrap_or_default();
    let filter = SubscriptionFilterBuilder::default().tools_list_changed().build();
    let mut subscription = match peer.listen(filter).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(target: "mcp", server = %server, "no list-change subscription ({e})");
            return;
        }
    };
    while let Ok(Some(notification)) = subscription.next().await {
        if matches!(notification, ServerNotification::ToolListChangedNotification(_)) {
            refresh_tools(hub.clone(), slot.clone(), peer.clone()).await;
        }
    }
}

pub(crate) fn convert(tool: rmcp::model::Tool) -> ServerTool {
    let description = tool.description.map(|d| d.into_owned()).or(tool.title).unwrap_or_default();
    ServerTool {
        name: tool.name.into_owned(),
        description,
        input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
    }
}

struct Connection {
    running: RunningService<RoleClient, HubClient>,
    tools: Vec<ServerTool>,
    pid: Option<u32>,
}

/// The supervisor task of one server.
pub(crate) async fn run(hub: Arc<Hub>, slot: Arc<Slot>) {
    let name = slot.config.name.clone();
    // One per server for the supervisor's life, so a reconnect reuses a token still good.
    let tokens = match slot.config.transport.oauth().cloned().map(TokenSource::new).transpose() {
        Ok(tokens) => tokens.map(Arc::new),
        Err(why) => {
            // A local TLS setup problem: retrying cannot fix it.
            tracing::error!(target: "mcp", server = %name, "{why}");
            hub.down(&slot, why);
            return;
        }
    };
    let mut backoff = BACKOFF_START;
    loop {
        let attempt = tokio::time::timeout(hub.settings.connect_timeout, connect(&hub, &slot, tokens.as_ref()));
        let outcome = tokio::select! {
            r = attempt => r.unwrap_or_else(|_| Err(format!("no answer within {:?}", hub.settings.connect_timeout))),
            _ = slot.stop.cancelled() => return,
        };
        match outcome {
            Ok(conn) => {
                tracing::info!(target: "mcp", server = %name, tools = conn.tools.len(), "connected");
                let started = Instant::now();
                let token = conn.running.cancellation_token();
                hub.connected(&slot, conn.running.peer().clone(), conn.tools, conn.pid);
                tokio::spawn(watch_tool_changes(
                    Arc::downgrade(&hub),
                    Arc::downgrade(&slot),
                    conn.running.peer().clone(),
                ));
                let peer = conn.running.peer().clone();
                let wait = conn.running.waiting();
                tokio::pin!(wait);
                tokio::select! {
                    quit = &mut wait => {
                        let why = format!("connection ended ({})", describe(quit));
                        tracing::warn!(target: "mcp", server = %name, "{why}");
                        hub.down(&slot, why);
                    }
                    why = liveness(peer, &slot), if is_remote(&slot) => {
                        tracing::warn!(target: "mcp", server = %name, "{why}; reconnecting");
                        token.cancel();
                        let _ = tokio::time::timeout(Duration::from_secs(2), &mut wait).await;
                        hub.down(&slot, why);
                    }
                    _ = slot.stop.cancelled() => {
                        token.cancel();
                        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
                        return;
                    }
                }
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff = BACKOFF_START;
                }
            }
            Err(why) => {
                tracing::warn!(target: "mcp", server = %name, "could not connect: {why}");
                hub.down(&slot, why);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = slot.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(hub.settings.backoff_max);
        // Lets a server that has been down past the grace period drop out.
        hub.rebuild_catalog();
    }
}

fn is_remote(slot: &Slot) -> bool {
    !matches!(slot.config.transport, Transport::Stdio { .. })
}

/// A remote server that dies is not always noticed by its transport (rmcp's
/// streamable-HTTP client keeps resuming a broken stream), so calls in flight
/// would wait for their timeout. Pinging finds out: every half second while
/// calls run, every 15 s otherwise. Returns why the server is deemed gone.
async fn liveness(peer: Peer<RoleClient>, slot: &Slot) -> String {
    const BUSY_TICK: Duration = Duration::from_millis(500);
    const IDLE_EVERY: u32 = 30;
    let mut ticks = 0u32;
    let mut misses = 0;
    loop {
        tokio::time::sleep(BUSY_TICK).await;
        ticks += 1;
        if slot.limit.running() == 0 && ticks % IDLE_EVERY != 0 {
            continue;
        }
        let ping =
            ClientRequest::PingRequest(PingRequest { method: Default::default(), extensions: Default::default() });
        match tokio::time::timeout(Duration::from_secs(2), peer.send_request(ping)).await {
            Ok(Ok(_)) | Ok(Err(ServiceError::McpError(_))) => misses = 0,
            Ok(Err(e)) => return format!("ping failed: {e}"),
            Err(_) => {
                misses += 1;
                if misses >= 3 {
                    return "three pings went unanswered".into();
                }
            }
        }
    }
}

fn describe(quit: Result<rmcp::service::QuitReason, tokio::task::JoinError>) -> String {
    match quit {
        Ok(rmcp::service::QuitReason::Closed) => "the server closed it".into(),
        Ok(rmcp::service::QuitReason::Cancelled) => "cancelled".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => e.to_string(),
    }
}

async fn connect(hub: &Arc<Hub>, slot: &Arc<Slot>, tokens: Option<&Arc<TokenSource>>) -> Result<Connection, String> {
    if let Some(tokens) = tokens {
        // Up front, so a refused token request is the error the hub shows, in
        // its own words, not wrapped in a transport error.
        tokens.token().await.map_err(|e| e.to_string())?;
    }
    let handler = HubClient { hub: Arc::downgrade(hub), slot: Arc::downgrade(slot) };
    let (running, pid) = match &slot.config.transport {
        Transport::Stdio { command, args, env, cwd } => {
            let spawned = stdio::spawn(&slot.config.name, command, args, env, cwd.as_ref(), &hub.parent_env)
                .map_err(|e| format!("cannot start {command:?}: {e}"))?;
            let pid = spawned.pid;
            let running = handler.serve(spawned.transport).await.map_err(|e| {
                if let Some(pid) = pid {
                    stdio::kill_group(pid);
                }
                format!("initialize failed: {e}")
            })?;
            (running, pid)
        }
        Transport::Sse { url, headers, .. } => {
            let transport = SseClientTransport::connect(url, headers, tokens.cloned(), hub.settings.connect_timeout)
                .await
                .map_err(|e| format!("cannot open the SSE stream: {e}"))?;
            (handler.serve(transport).await.map_err(|e| format!("initialize failed: {e}"))?, None)
        }
        Transport::StreamableHttp { url, headers, .. } => {
            (serve_streamable_http(handler, url, headers, tokens).await?, None)
        }
    };
    let tools = running.peer().list_all_tools().await.map_err(|e| format!("tools/list failed: {e}"))?;
    Ok(Connection { running, tools: tools.into_iter().map(convert).collect(), pid })
}

async fn serve_streamable_http(
    handler: HubClient,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    tokens: Option<&Arc<TokenSource>>,
) -> Result<RunningService<RoleClient, HubClient>, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(http_headers(headers)?);
    // rmcp's default resumes a dropped stream forever, leaving calls on a
    // dead server pending until their timeout: give up fast instead, so
    // the connection ends and the hub reconnects and replays.
    let mut backoff = ExponentialBackoff::default();
    backoff.max_times = Some(3);
    backoff.base_duration = Duration::from_millis(100);
    backoff.max_delay = Some(Duration::from_millis(400));
    config.retry_config = Arc::new(backoff);
    let running = match tokens {
        Some(tokens) => {
            let client = BearerClient::new(tokens.clone());
            handler.serve(StreamableHttpClientTransport::with_client(client, config)).await
        }
        None => handler.serve(StreamableHttpClientTransport::from_config(config)).await,
    };
    running.map_err(|e| format!("initialize failed: {e}"))
}

fn http_headers(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::HashMap<http::HeaderName, http::HeaderValue>, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("bad header name {k:?}"))?;
            let mut value = http::HeaderValue::from_str(v).map_err(|_| format!("bad value for header {k}"))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}
