//! Which route a request takes, the request id, and the bodies of the small
//! routes the proxy answers itself.

use http::{HeaderValue, Method};
use serde_json::{json, Value};

use crate::error::ProxyError;
use crate::mcp::{Hub, Phase};
use crate::metrics::Surface;
use crate::reload::ReloadStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: a short welcome.
    Welcome,
    /// `GET /healthz`.
    Health,
    /// `OPTIONS` anything: a CORS preflight, answered by the proxy.
    Preflight,
    /// `GET /v1/models`: proxied, with a fallback list when the upstream cannot answer.
    Models,
    /// `POST /v1/chat/completions`: the tool loop when MCP tools are available, else proxied.
    ChatCompletions,
    /// `POST /v1/responses`: the tool loop behind the Responses API.
    Responses,
    /// `POST /v1/messages`: Anthropic's Messages API over the tool loop.
    Messages,
    /// `POST /v1/messages/count_tokens`: an estimate.
    CountTokens,
    /// `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`: stored responses.
    ResponseItem,
    /// Every other `/v1/*` request: proxied transparently.
    Proxy,
    /// `POST /chat`: one turn of a server-side session.
    Chat,
    /// `GET` / `DELETE /chat/{id}`: a session's history, or its removal.
    ChatHistory,
    /// `POST`, `GET`, `DELETE /mcp`: the catalog as an MCP server (streamable HTTP).
    Mcp,
    /// `GET /metrics`: Prometheus metrics (when served on the main listener).
    Metrics,
    /// `GET /ui` and its assets: the web console's static files (no key needed).
    Ui,
    /// `GET /ui/status`: what the console shows of the MCP servers and the upstream.
    UiStatus,
    /// A path the proxy does not serve.
    NotFound,
    /// A local route with the wrong method.
    MethodNotAllowed,
}

impl Route {
    pub fn classify(method: &Method, path: &str) -> Route {
        if method == Method::OPTIONS {
            return Route::Preflight;
        }
        let get = method == Method::GET || method == Method::HEAD;
        match path {
            "/" if get => Route::Welcome,
            "/healthz" if get => Route::Health,
            "/metrics" if get => Route::Metrics,
            "/ui" | "/ui/" | "/ui/app.js" | "/ui/style.css" if get => Route::Ui,
            "/ui/status" if get => Route::UiStatus,
            "/" | "/healthz" | "/metrics" | "/ui" | "/ui/" | "/ui/app.js" | "/ui/style.css" | "/ui/status" => {
                Route::MethodNotAllowed
            }
            "/chat" if method == Method::POST => Route::Chat,
            "/chat" => Route::MethodNotAllowed,
            "/mcp" if matches!(*method, Method::POST | Method::GET | Method::DELETE) => Route::Mcp,
            "/mcp" => Route::MethodNotAllowed,
            p if p.starts_with("/chat/") && p.len() > 6 => match *method {
                Method::GET | Method::DELETE => Route::ChatHistory,
                _ => Route::MethodNotAllowed,
            },
            "/v1/models" if get => Route::Models,
            "/v1/chat/completions" if method == Method::POST => Route::ChatCompletions,
            "/v1/responses" if method == Method::POST => Route::Responses,
            "/v1/messages" if method == Method::POST => Route::Messages,
            "/v1/messages/count_tokens" if method == Method::POST => Route::CountTokens,
            p if is_response_item(method, p) => Route::ResponseItem,
            p if p == "/v1" || p.starts_with("/v1/") => Route::Proxy,
            _ => Route::NotFound,
        }
    }
}

impl Route {
    /// The route's name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Route::Welcome => "welcome",
            Route::Health => "health",
            Route::Preflight => "preflight",
            Route::Models => "models",
            Route::ChatCompletions => "chat_completions",
            Route::Responses => "responses",
            Route::Messages => "messages",
            Route::CountTokens => "count_tokens",
            Route::ResponseItem => "response_item",
            Route::Proxy => "proxy",
            Route::Chat => "chat",
            Route::ChatHistory => "chat_history",
            Route::Metrics => "metrics",
            Route::Mcp => "mcp",
            Route::Ui => "ui",
            Route::UiStatus => "ui_status",
            Route::NotFound => "not_found",
            Route::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The API a request on this route speaks.
    pub fn surface(self) -> Surface {
        match self {
            Route::ChatCompletions => Surface::ChatCompletions,
            Route::Responses | Route::ResponseItem => Surface::Responses,
            Route::Messages | Route::CountTokens => Surface::Messages,
            Route::Chat | Route::ChatHistory => Surface::Session,
            Route::Mcp => Surface::Mcp,
            Route::Welcome
            | Route::Health
            | Route::Preflight
            | Route::Models
            | Route::Proxy
            | Route::Metrics
            | Route::Ui
            | Route::UiStatus
            | Route::NotFound
            | Route::MethodNotAllowed => Surface::None,
        }
    }
}

/// `/v1/responses/{id}` (GET, DELETE) or `/v1/responses/{id}/input_items` (GET).
fn is_response_item(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/responses/") else { return false };
    let (id, items) = match rest.strip_suffix("/input_items") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let id_ok = !id.is_empty() && !id.contains('/');
    id_ok && (*method == Method::GET || (!items && *method == Method::DELETE))
}

pub fn route_error(route: Route, method: &Method, path: &str) -> ProxyError {
    let (method, path) = (method.to_string(), path.to_string());
    match route {
        Route::MethodNotAllowed => ProxyError::MethodNotAllowed { method, path },
        _ => ProxyError::NotFound { method, path },
    }
}

/// The client's own `x-request-id` when it is a sane token, else a new uuid.
pub fn request_id(given: Option<&HeaderValue>) -> String {
    let sane = |v: &&str| {
        !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    given
        .and_then(|v| v.to_str().ok())
        .filter(sane)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// `metrics_here`: `/metrics` is on this port; `mcp`: `/mcp` is served (`mcp_server.enabled`).
pub fn welcome(metrics_here: bool, mcp: bool) -> Value {
    let mut endpoints =
        vec!["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/models", "/chat", "/healthz", "/ui"];
    if metrics_here {
        endpoints.push("/metrics");
    }
    if mcp {
        endpoints.push("/mcp");
    }
    json!({
        "message": "mcp-chat-proxy is running",
        "version": env!("CARGO_PKG_VERSION"),
        "openai_base_url": "/v1",
        "endpoints": endpoints,
    })
}

/// `ok` when every MCP server is connected, `degraded` otherwise (still
/// 200: the proxy itself serves; the body says what is missing). `runtime`
/// counts live tokio tasks on the serving runtime and the hub's, so a soak
/// can tell tasks left behind (e.g. by hung-up clients) from load.
pub fn health(hub: &Hub, config: &ReloadStatus) -> Value {
    let servers = hub.status();
    let all_up = servers.iter().all(|s| s.state == Phase::Connected);
    json!({
        "status": if all_up { "ok" } else { "degraded" },
        "tools": hub.catalog().len(),
        "mcp_servers": servers,
        "config": config,
        "runtime": {
            "tasks": tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks()),
            "hub_tasks": hub.runtime_tasks(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::classify(&Method::GET, "/"), Route::Welcome);
        assert_eq!(Route::classify(&Method::POST, "/"), Route::MethodNotAllowed);
        assert_eq!(Route::classify(&Method::GET, "/v1/models"), Route::Models);
        assert_eq!(Route::classify(&Method::GET, "/v1/models/gpt-4o"), Route::Proxy);
        assert_eq!(Route::classify(&Method::POST, "/v1/chat/completions"), Route::ChatCompletions);
        assert_eq!(Route::classify(&Method::POST, "/v1/embeddings"), Route::Proxy);
        assert_eq!(Route::classify(&Method::POST, "/v1/responses"), Route::Responses);
        assert_eq!(Route::classify(&Method::POST, "/v1/messages"), Route::Messages);
        assert_eq!(Route::classify(&Method::POST, "/v1/messages/count_tokens"), Route::CountTokens);
        assert_eq!(Route::classify(&Method::GET, "/v1/messages/batches"), Route::Proxy);
        assert_eq!(Route::classify(&Method::GET, "/v1/responses/resp_1"), Route::ResponseItem);
        assert_eq!(Route::classify(&Method::DELETE, "/v1/responses/resp_1"), Route::ResponseItem);
        assert_eq!(Route::classify(&Method::GET, "/v1/responses/resp_1/input_items"), Route::ResponseItem);
        assert_eq!(Route::classify(&Method::POST, "/v1/responses/resp_1/cancel"), Route::Proxy);
        assert_eq!(Route::classify(&Method::POST, "/v1/responses/input_tokens"), Route::Proxy);
        assert_eq!(Route::classify(&Method::GET, "/v1x"), Route::NotFound);
        assert_eq!(Route::classify(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(Route::classify(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(Route::classify(&Method::OPTIONS, "/v1/chat/completions"), Route::Preflight);
        assert_eq!(Route::classify(&Method::POST, "/mcp"), Route::Mcp);
        assert_eq!(Route::classify(&Method::DELETE, "/mcp"), Route::Mcp);
        assert_eq!(Route::classify(&Method::PUT, "/mcp"), Route::MethodNotAllowed);
        assert_eq!(Route::classify(&Method::POST, "/mcp/x"), Route::NotFound);
        assert_eq!(Route::classify(&Method::GET, "/ui"), Route::Ui);
        assert_eq!(Route::classify(&Method::HEAD, "/ui/app.js"), Route::Ui);
        assert_eq!(Route::classify(&Method::GET, "/ui/status"), Route::UiStatus);
        assert_eq!(Route::classify(&Method::POST, "/ui/status"), Route::MethodNotAllowed);
        assert_eq!(Route::classify(&Method::GET, "/ui/secret.txt"), Route::NotFound);
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert_eq!(request_id(Some(&HeaderValue::from_static("abc-123"))), "abc-123");
        let fresh = request_id(Some(&HeaderValue::from_static("has space")));
        assert_eq!(fresh.len(), 36);
        assert_ne!(request_id(None), request_id(None));
    }
}
