//! mcp-chat-proxy: a drop-in OpenAI-compatible gateway that gives any model
//! the tools of MCP servers.
//!
//! # Layout
//!
//! | module | owns |
//! | --- | --- |
//! | [`settings`] | every knob: `.env`, the environment, `conf/`; validation with errors that name the setting |
//! | [`auth`] | client keys and their tool allow-lists |
//! | [`error`] | the proxy's error enum, its HTTP status, the OpenAI error body and SSE error event |
//! | [`openai`] | OpenAI wire types (unknown fields kept) |
//! | [`gate`] | pingora `ProxyHttp`: routing, CORS, request ids, access log, transparent proxying |
//! | [`front`] | the client connection under the gate: request-head deadline, keep-alive idle timeout |
//! | [`server`] | the pingora server around the gate: listen, run, graceful shutdown |
//! | [`sse`] | incremental server-sent-events decoder, bounded |
//! | [`mcp`] | the MCP hub: clients of every configured server, the tool catalog, calls |
//! | [`upstream`] | calling the LLM for the tool loop: the `ChatUpstream` seam, reqwest client |
//! | [`retry`] | when a failed upstream call is repeated and the wait before it (both paths) |
//! | [`tool_loop`] | rounds of upstream call → tool calls → results, both tool modes, streaming or not |
//! | [`chat_client`] | the `chat` subcommand: an interactive client of `/chat` that streams answers and keeps the session |
//!
//! The gate is a component: [`gate::Gate::new`] builds it from [`settings::Settings`]
//! and any pingora server can mount it; the binary only wires the command line to it.

pub mod auth;
pub mod chat_client;
pub mod error;
pub mod front;
pub mod gate;
pub mod mcp;
pub mod openai;
pub mod retry;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod sse;
pub mod surfaces;
pub mod tool_loop;
pub mod upstream;
