//! The `/chat` surface: `POST /chat {"message", "session_id"?, "model"?,
//! "stream"?}` is one turn of a server-side session, answered
//! `{"response", "session_id"}` (with `"empty": true` when the model said
//! nothing, so a client can ask the user to rephrase), or a chat-completions
//! stream whose last event before `[DONE]` is `{"object": "chat.session", …}`.
//! `GET /chat/{id}` is the history.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ProxyError;
use crate::sessions::History;
use crate::tool_loop::Answer;

/// One turn as the client asks for it.
#[derive(Debug, Deserialize)]
pub struct TurnRequest {
    message: Value,
    pub session_id: Option<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
}

/// The turn and its message, or a 400 naming what is wrong.
pub fn parse(body: &[u8]) -> Result<(TurnRequest, String), ProxyError> {
    let req: TurnRequest = serde_json::from_slice(body)
        .map_err(|e| ProxyError::bad_request(format!("the body must be {{\"message\": \"...\"}}: {e}"), None))?;
    let message = match &req.message {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ProxyError::bad_request("'message' must be a non-empty string", Some("message"))),
    };
    Ok((req, message))
}

/// The non-streamed answer.
pub fn response(answer: &Answer, session_id: &str) -> Value {
    let text = answer.text();
    let mut v = json!({"response": text, "session_id": session_id});
    if text.trim().is_empty() {
        v["empty"] = json!(true);
    }
    v
}

/// The event that ends a streamed turn (before `[DONE]`), once it is stored.
pub fn session_event(answer: &Answer, session_id: &str) -> Value {
    let mut v = json!({"object": "chat.session", "session_id": session_id});
    if answer.text().trim().is_empty() {
        v["empty"] = json!(true);
    }
    v
}

/// The history as the client sees it: every message, each tagged with its
/// turn and whether that turn completed.
pub fn history(id: &str, history: &History) -> Value {
    let messages: Vec<Value> = history
        .turns
        .iter()
        .flat_map(|t| {
            t.messages.iter().map(move |m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("turn".into(), json!(t.number));
                    if !t.complete {
                        obj.insert("incomplete".into(), json!(true));
                    }
                }
                v
            })
        })
        .collect();
    json!({"session_id": id, "created": history.created, "updated": history.updated, "messages": messages})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_answer_is_marked() {
        let empty = Answer { texts: vec![" \n".into()], ..Answer::default() };
        assert_eq!(response(&empty, "s")["empty"], true);
        assert_eq!(session_event(&empty, "s")["empty"], true);
        let said = Answer { texts: vec!["Hi.".into()], ..Answer::default() };
        assert_eq!(response(&said, "s"), json!({"response": "Hi.", "session_id": "s"}));
        assert!(session_event(&said, "s").get("empty").is_none());
    }

    #[test]
    fn a_turn_needs_a_message() {
        assert!(parse(br#"{"message": "hi"}"#).is_ok());
        for body in [&br#"{"message": " "}"#[..], br#"{"message": 3}"#, b"{}", b"nope"] {
            assert_eq!(parse(body).err().map(|e| e.status()), Some(400), "{}", String::from_utf8_lossy(body));
        }
    }
}
