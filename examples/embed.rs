//! Mounting the gate in a pingora server of your own, beside your own
//! services: the gate is a component, the binary is only one way to run it.
//!
//! ```sh
//! OPENAI_BASE_URL=http://127.0.0.1:11434/v1 cargo run --example embed
//! curl http://127.0.0.1:8080/healthz
//! ```

use std::sync::Arc;

use mcp_chat_proxy::front::Front;
use mcp_chat_proxy::gate::Gate;
use mcp_chat_proxy::server::{server_conf, HubRuntime};
use mcp_chat_proxy::settings::Settings;
use pingora::proxy::http_proxy;
use pingora::server::Server;
use pingora::services::listening::Service;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Arc::new(Settings::load()?);
    // The MCP clients and the /chat session store live on their own runtime.
    let background = HubRuntime::start(&settings)?;

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&settings));
    server.bootstrap();

    let gate = Gate::new(settings.clone(), background.hub.clone(), background.sessions.clone())?;
    // Front adds what pingora leaves open on client connections (a deadline
    // for request heads, an idle limit between keep-alive requests); mounting
    // `http_proxy_service(&server.configuration, gate)` directly also works,
    // without those two guards.
    let front = Front::new(http_proxy(&server.configuration, gate), &settings);
    let mut llm = Service::new("llm".to_string(), front);
    llm.add_tcp("127.0.0.1:8080");
    server.add_service(llm);
    // ... add your own services here, e.g. another http_proxy_service on another port.

    server.run(pingora::server::RunArgs::default());
    background.shutdown();
    Ok(())
}
