//! The proxy's integration tests, one behaviour per module, in one test
//! binary: one link instead of one per file, and a component that is
//! missing fails its own tests (naming what to install) instead of stopping
//! cargo before the rest have run. `tests/run` provisions every component
//! and runs them all.

mod common;

mod auth_keys;
mod binary;
mod chat_client;
mod chat_durability;
mod chat_sessions;
mod console;
mod cors;
mod errors;
mod fuzz_corpus;
mod http_limits;
mod mcp_allow;
mod mcp_catalog;
mod mcp_cli;
mod mcp_everything;
mod mcp_limits;
mod mcp_listen;
mod mcp_oauth;
mod mcp_remote;
mod mcp_serve;
mod mcp_stdio;
mod messages_claude_code;
mod messages_failures;
mod messages_sdk;
mod metrics;
mod models;
mod openai_sdk;
mod passthrough;
mod progress;
mod real_model;
mod reload;
mod responses;
mod responses_agents;
mod responses_sdk;
mod responses_state;
mod sessions_redis;
mod slow_clients;
mod streaming;
mod tool_loop_agreement;
mod tool_loop_native;
mod tool_loop_prompt;
mod tool_loop_stream;
mod tool_mode_learning;
mod upstream_faults;
mod upstream_tls;
