//! The Anthropic Messages surface (`POST /v1/messages`), over the one tool
//! loop and the upstream's chat completions (the gate's `messages` route
//! reads the body and drives the loop with these):
//!
//! | file | owns |
//! | --- | --- |
//! | `request` | the body checked field by field, in chat-completions terms |
//! | `output` | the loop's answer as a `message`: thinking, text and the client's `tool_use` blocks, stop reason, usage |
//! | `stream` | the loop's events as Anthropic's stream events (`message_start` … `message_stop`, `ping`, `error`) |
//! | `conversation` | `system` and `messages` (text, image, tool_use, tool_result, thinking blocks, system messages) as chat messages |
//! | `toolset` | the client's tools, and which are offered (deferred tools, mid-conversation tool changes) |

pub mod conversation;
pub mod output;
pub mod request;
pub mod stream;
pub mod toolset;
