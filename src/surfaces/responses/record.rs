//! What is kept of a stored response (`store: true`), in the session store:
//! the response as the client got it, the input items it was made from, and
//! the conversation the next response continues (`previous_response_id`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::openai::chat::{Message, ToolCall};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    /// The response object, as returned (and as `GET /v1/responses/{id}` returns it).
    pub response: Value,
    /// This request's input items, with ids (`GET …/input_items`).
    pub input_items: Vec<Value>,
    /// The upstream messages up to and including this response's output,
    /// without the request's `instructions` (they are not carried over).
    pub conversation: Vec<Message>,
    /// Servers whose `mcp_list_tools` item the conversation already has.
    #[serde(default)]
    pub listed: BTreeSet<String>,
    /// MCP calls this response left waiting for approval.
    #[serde(default)]
    pub awaiting: Vec<Awaiting>,
}

/// One `mcp_approval_request` of a response, and the call it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Awaiting {
    /// The `mcp_approval_request` item's id, which the client's `mcp_approval_response` names.
    pub request_id: String,
    pub server_label: String,
    /// The tool's own name on its server.
    pub name: String,
    /// The call as the conversation holds it (its exposed name and id).
    pub call: ToolCall,
}

/// [`Stored`] as it is written, from borrows (the same JSON).
#[derive(Serialize)]
pub struct StoredRef<'a> {
    pub response: &'a Value,
    pub input_items: &'a [Value],
    pub conversation: Vec<&'a Message>,
    pub listed: &'a BTreeSet<String>,
    pub awaiting: &'a [Awaiting],
}

impl Stored {
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_is_written_from_borrows_reads_back_whole() {
        let response = json!({"id": "resp_1", "output": []});
        let items = vec![json!({"type": "message", "role": "user", "content": "hi"})];
        let user = Message::text("user", "hi");
        let listed: BTreeSet<String> = ["t".to_string()].into();
        let awaiting = vec![Awaiting {
            request_id: "mcpr_c1".into(),
            server_label: "t".into(),
            name: "echo".into(),
            call: ToolCall::new("c1", "echo", "{}"),
        }];
        let written = StoredRef {
            response: &response,
            input_items: &items,
            conversation: vec![&user],
            listed: &listed,
            awaiting: &awaiting,
        };
        let text = serde_json::to_string(&written).unwrap_or_default();
        let read = Stored::from_json(&text).unwrap_or_default();
        assert_eq!(read.response, response);
        assert_eq!(read.input_items, items);
        assert_eq!(read.conversation, [user]);
        assert_eq!(read.listed, listed);
        assert_eq!(read.awaiting, awaiting);
    }
}
