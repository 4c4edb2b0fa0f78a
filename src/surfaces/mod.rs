//! API surfaces: one codec per client API. Each decodes its request into
//! the tool loop's terms and encodes the loop's [`Event`]s and
//! [`Answer`](crate::tool_loop::Answer) into its own wire format, errors in
//! its own shape. None of them runs a round, a limit or a retry (the loop's),
//! and none touches a socket (the gate's).
//!
//! | module | surface |
//! | --- | --- |
//! | [`chat`] | `POST /v1/chat/completions`: `chat.completion` and its chunk stream |
//! | [`session`] | `POST /chat`: one turn of a server-side session, `{"response", "session_id"}` |
//! | [`responses`] | `POST /v1/responses`: output items and the Responses event stream, stored responses |
//! | [`messages`] | `POST /v1/messages`: Anthropic's request in chat terms, the answer as a `message` and Anthropic's stream events |
//! | [`mcp`] | `/mcp`: the catalog as MCP tools for rmcp's server side, a call's outcome as an MCP result |
//! | [`progress`] | `x-mcp-progress: on`: a chat stream's MCP tool rounds as named SSE events |

pub mod chat;
pub mod mcp;
pub mod messages;
pub mod progress;
pub mod responses;
pub mod session;

use bytes::Bytes;

use crate::tool_loop::Event;

/// Turns the loop's events into the bytes of a streamed answer, as they come.
pub trait StreamEncoder: Send {
    /// The bytes for `event`, or `None` when it shows nothing on this surface.
    fn event(&mut self, event: &Event) -> Option<Bytes>;
}
