//! The MCP hub: every configured MCP server connected, supervised and
//! callable, over stdio, legacy HTTP+SSE and streamable HTTP.
//!
//! | file | owns |
//! | --- | --- |
//! | `catalog` | exposed tool names (unique, sanitised, stable) and the lookup back |
//! | `hub` | the slots, their state, the catalog snapshot, shutdown |
//! | `supervisor` | one task per server: connect, wait, reconnect with backoff |
//! | `call` | tool calls: timeout, retry, result to text |
//! | `limit` | per server: calls running at once, a bounded queue for the rest |
//! | `stdio` | child processes: clean env, own process group, stderr to log |
//! | `sse_transport` | the legacy HTTP+SSE client transport on rmcp's `Transport` trait |
//! | `reload` | a new set of servers for a running hub: keep, add, restart, retire |
//! | `result` | MCP content to text, size cap |
//! | `status_metrics` | the servers' state as `/metrics` reads it at each scrape |
//! | `oauth` | bearer tokens by the client-credentials grant: cache, refresh before expiry and on 401 |
//! | `bearer` | rmcp's streamable-HTTP client with that token on every request, one retry on 401 |

mod bearer;
mod call;
pub mod catalog;
mod hub;
mod limit;
mod oauth;
mod reload;
pub mod result;
mod sse_transport;
mod status_metrics;
mod stdio;
mod supervisor;

pub use crate::settings::HubSettings;
pub use catalog::{Catalog, CatalogTool};
pub use hub::{Hub, Phase, ServerStatus};
pub use reload::Reconciled;
pub use result::ToolOutput;
pub use sse_transport::SseClientTransport;
