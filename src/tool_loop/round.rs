//! One round: send the conversation to the upstream and collect its answer,
//! forwarding content to a streaming client as it arrives.

use serde_json::Value;

use super::prompt::{classify_opening, Opening};
use super::stream::{ClientGone, SseWriter};
use super::ToolMode;
use crate::error::ProxyError;
use crate::openai::chat::{ChatCompletion, ToolCall, Usage};
use crate::openai::stream::ToolCallAccumulator;
use crate::upstream::{Caller, ChatUpstream, StreamItem, UpstreamReply};

/// What one round produced.
#[derive(Debug, Default)]
pub struct Answer {
    /// The reply's text (in prompt mode possibly a tool call).
    pub content: String,
    /// Native tool calls, assembled.
    pub calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// Non-streaming: the whole completion, to shape the final response.
    pub completion: Option<ChatCompletion>,
    /// Prompt mode, streaming: text held back because it may be a tool call.
    pub held: Option<String>,
}

pub enum RoundError {
    /// The upstream answered with an error status; pass it on if nothing was sent yet.
    Upstream {
        status: u16,
        retry_after: Option<String>,
        content_type: Option<String>,
        body: bytes::Bytes,
    },
    Proxy(ProxyError),
    Gone,
}

impl From<ProxyError> for RoundError {
    fn from(e: ProxyError) -> Self {
        RoundError::Proxy(e)
    }
}

impl From<ClientGone> for RoundError {
    fn from(_: ClientGone) -> Self {
        RoundError::Gone
    }
}

/// Sends `body` and collects the answer; with a writer, streams content to
/// the client as it comes (prompt mode holds it while it may be a tool call).
pub async fn run(
    upstream: &dyn ChatUpstream,
    body: &Value,
    caller: &Caller,
    mode: ToolMode,
    writer: Option<&mut SseWriter>,
) -> Result<Answer, RoundError> {
    match upstream.send(body, caller).await? {
        UpstreamReply::Failed { status, retry_after, content_type, body } => {
            Err(RoundError::Upstream { status, retry_after, content_type, body })
        }
        UpstreamReply::Complete(completion) => Ok(from_completion(completion)),
        UpstreamReply::Stream(stream) => match writer {
            Some(w) => collect_stream(stream, mode, w).await,
            None => Err(ProxyError::UpstreamProtocol("a stream came back for a non-streaming request".into()).into()),
        },
    }
}

fn from_completion(completion: ChatCompletion) -> Answer {
    let choice = completion.choices.first();
    Answer {
        content: choice.map(|c| c.message.content_text()).unwrap_or_default(),
        calls: choice.and_then(|c| c.message.tool_calls.clone()).unwrap_or_default(),
        finish_reason: choice.and_then(|c| c.finish_reason.clone()),
        usage: completion.usage,
        completion: Some(completion),
        held: None,
    }
}

async fn collect_stream(
    mut stream: crate::upstream::ChunkStream,
    mode: ToolMode,
    writer: &mut SseWriter,
) -> Result<Answer, RoundError> {
    use futures_util::StreamExt;
    let mut answer = Answer::default();
    let mut calls = ToolCallAccumulator::default();
    // Prompt mode: whether the reply's opening has shown it to be prose.
    let mut released = mode == ToolMode::Native;
    let mut held = String::new();
    while let Some(item) = stream.next().await {
        let chunk = match item? {
            StreamItem::Done => break,
            StreamItem::Chunk(c) => c,
        };
        if let Some(u) = chunk.usage {
            answer.usage = Some(u);
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(deltas) = &choice.delta.tool_calls {
                calls.push(deltas);
            }
            if let Some(reason) = &choice.finish_reason {
                answer.finish_reason = Some(reason.clone());
            }
            if let Some(text) = &choice.delta.content {
                answer.content.push_str(text);
            }
        }
        if released {
            writer.forward(chunk).await?;
            continue;
        }
        let piece: String = chunk.choices.iter().filter_map(|c| c.delta.content.as_deref()).collect();
        held.push_str(&piece);
        if classify_opening(&held) == Opening::Prose {
            released = true;
            writer.content(&std::mem::take(&mut held)).await?;
        }
    }
    answer.calls = calls.finish();
    if !released {
        answer.held = Some(held);
    }
    Ok(answer)
}
