//! Merging every round into one SSE stream for the client: one `id`, one
//! `created`, one `model`, one role chunk, one final chunk, one `[DONE]`;
//! tool rounds show only as time and `: …` comment lines.

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ProxyError;
use crate::openai::chat::{Chunk, ChunkChoice, Delta, ToolCall, Usage};

/// The client has gone; stop working for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientGone;

pub struct SseWriter {
    tx: mpsc::Sender<Bytes>,
    id: Option<(String, u64, String)>,
    role_sent: bool,
    include_usage: bool,
    started: bool,
}

impl SseWriter {
    pub fn new(tx: mpsc::Sender<Bytes>, include_usage: bool) -> Self {
        Self { tx, id: None, role_sent: false, include_usage, started: false }
    }

    /// Whether any byte has gone to the client (after that, errors go in-band).
    pub fn started(&self) -> bool {
        self.started
    }

    async fn send(&mut self, bytes: Bytes) -> Result<(), ClientGone> {
        self.started = true;
        self.tx.send(bytes).await.map_err(|_| ClientGone)
    }

    /// The stream's identity, fixed by the first upstream chunk seen.
    fn identity(&mut self, from: Option<&Chunk>) -> (String, u64, String) {
        if self.id.is_none() {
            self.id = Some(match from {
                Some(c) if !c.id.is_empty() => (c.id.clone(), c.created, c.model.clone()),
                _ => (format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()), now(), String::new()),
            });
        }
        self.id.clone().unwrap_or_default()
    }

    /// Forwards what a client should see of an upstream chunk: its content
    /// and any other delta fields, without tool calls, finish reasons or
    /// usage (those are the loop's), and the role only once.
    pub async fn forward(&mut self, mut chunk: Chunk) -> Result<(), ClientGone> {
        let (id, created, model) = self.identity(Some(&chunk));
        chunk.usage = None;
        for choice in &mut chunk.choices {
            choice.finish_reason = None;
            choice.delta.tool_calls = None;
            if self.role_sent {
                choice.delta.role = None;
            }
        }
        chunk.choices.retain(|c| c.delta.role.is_some() || c.delta.content.is_some() || !c.delta.rest.is_empty());
        if chunk.choices.is_empty() {
            return Ok(());
        }
        (chunk.id, chunk.created, chunk.model) =
            (id, created, if chunk.model.is_empty() { model } else { chunk.model });
        self.emit(&chunk).await
    }

    /// Sends `text` as one content delta (released prompt-mode text).
    pub async fn content(&mut self, text: &str) -> Result<(), ClientGone> {
        if text.is_empty() {
            return Ok(());
        }
        let delta = Delta { content: Some(text.to_string()), ..Delta::default() };
        let chunk = self.chunk(delta, None, None);
        self.emit(&chunk).await
    }

    /// A comment line every SSE client ignores; keeps idle connections open.
    pub async fn comment(&mut self, text: &str) -> Result<(), ClientGone> {
        let line = text.replace(['\n', '\r'], " ");
        self.send(Bytes::from(format!(": {line}\n\n"))).await
    }

    /// Ends the stream: the client's own tool calls (if any), the final
    /// finish reason, the summed usage when asked for, and `[DONE]`.
    pub async fn finish(
        &mut self,
        finish_reason: &str,
        client_calls: &[ToolCall],
        usage: Usage,
        note: Option<&Value>,
    ) -> Result<(), ClientGone> {
        if !client_calls.is_empty() {
            let deltas = client_calls
                .iter()
                .enumerate()
                .map(|(i, c)| json!({"index": i, "id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}))
                .collect::<Vec<_>>();
            let delta = Delta { tool_calls: serde_json::from_value(Value::Array(deltas)).ok(), ..Delta::default() };
            let chunk = self.chunk(delta, None, None);
            self.emit(&chunk).await?;
        }
        let mut last = self.chunk(Delta::default(), Some(finish_reason), None);
        if let Some(note) = note {
            last.rest.insert("mcp_proxy".into(), note.clone());
        }
        self.emit(&last).await?;
        if self.include_usage {
            let mut usage_chunk = self.chunk(Delta::default(), None, Some(usage));
            usage_chunk.choices.clear();
            self.emit(&usage_chunk).await?;
        }
        self.send(Bytes::from_static(b"data: [DONE]\n\n")).await
    }

    /// An error after the stream started: one error event and no `[DONE]`,
    /// so clients raise instead of taking a cut answer as complete.
    pub async fn error(&mut self, err: &ProxyError) {
        let _ = self.send(err.sse_event()).await;
    }

    fn chunk(&mut self, mut delta: Delta, finish_reason: Option<&str>, usage: Option<Usage>) -> Chunk {
        let (id, created, model) = self.identity(None);
        if !self.role_sent {
            delta.role = Some("assistant".into());
        }
        Chunk {
            id,
            created,
            model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_string),
                rest: Default::default(),
            }],
            usage,
            rest: [("object".to_string(), json!("chat.completion.chunk"))].into_iter().collect(),
        }
    }

    async fn emit(&mut self, chunk: &Chunk) -> Result<(), ClientGone> {
        let mut value = serde_json::to_value(chunk).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.entry("object").or_insert(json!("chat.completion.chunk"));
            // OpenAI sends `"finish_reason": null` explicitly; some clients expect it.
            if let Some(Value::Array(choices)) = obj.get_mut("choices") {
                for c in choices.iter_mut().filter_map(Value::as_object_mut) {
                    c.entry("finish_reason").or_insert(Value::Null);
                }
            }
        }
        // Only the first chunk of the stream may carry the role.
        self.role_sent = true;
        self.send(Bytes::from(format!("data: {value}\n\n"))).await
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
