//! The Anthropic Messages surface (`POST /v1/messages`), over the one tool
//! loop and the upstream's chat completions. Built in steps; so far:
//!
//! | file | owns |
//! | --- | --- |
//! | `request` | the body checked field by field, in chat-completions terms |
//! | `conversation` | `system` and `messages` (text, image, tool_use, tool_result, thinking blocks) as chat messages |

pub mod conversation;
pub mod request;
