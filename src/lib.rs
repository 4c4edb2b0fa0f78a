//! mcp-chat-proxy: a drop-in OpenAI-compatible gateway that gives any model
//! the tools of MCP servers.
//!
//! # Layout
//!
//! | module | owns |
//! | --- | --- |
//! | [`settings`] | every knob: `.env`, the environment, `conf/`, `servers_config.json`, the keys file; validation with errors that name the setting. Imports nothing else of the crate: the parts depend on it |
//! | [`auth`] | which client key a request presents, and the tools as one key may see and call them |
//! | [`error`] | the proxy's error enum, its HTTP status, the OpenAI error body and SSE error event |
//! | [`openai`] | OpenAI wire types (unknown fields kept), streamed tool-call assembly |
//! | [`gate`] | pingora `ProxyHttp`: routing, auth, CORS, limits, request ids, access log, transparent proxying, the web console (`/ui`); runs the tool loop for a connection |
//! | [`front`] | the client connection under the gate: request-head deadline, keep-alive idle timeout |
//! | [`server`] | the pingora server around the gate: listen, run, signals, graceful shutdown |
//! | [`sse`] | incremental server-sent-events decoder, bounded |
//! | [`mcp`] | the MCP hub: clients of every configured server, the tool catalog, calls |
//! | [`metrics`] | the Prometheus families every part records into, and what a scrape of `/metrics` gets; labels from the configuration and fixed sets only |
//! | [`reload`] | SIGHUP and file changes: the servers and client keys read again, swapped in one step; a broken file keeps the running set |
//! | [`upstream`] | calling the LLM for the tool loop: the `ChatUpstream` seam, reqwest client |
//! | [`retry`] | when a failed upstream call is repeated and the wait before it (both paths) |
//! | [`tool_loop`] | the core: rounds of upstream call → tool calls → results, both tool modes; typed events and outcome, no wire format |
//! | [`surfaces`] | one codec per client API: the loop's events and answer in that API's wire format |
//! | [`sessions`] | `/chat` conversation history: the `SessionStore` seam, SQLite and Redis |
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
pub mod metrics;
pub mod openai;
pub mod reload;
pub mod retry;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod sse;
pub mod surfaces;
pub mod tool_loop;
pub mod upstream;
