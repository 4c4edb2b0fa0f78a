//! The mock's canned bodies, built once at start-up so serving them costs a
//! reference-count increment, not formatting.

use bytes::Bytes;

/// A `chat.completion` body of exactly `len` bytes (the content is padded).
pub fn completion(len: usize) -> Bytes {
    let frame = |content: &str| {
        format!(
            concat!(
                r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock","#,
                r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"finish_reason":"stop"}}],"#,
                r#""usage":{{"prompt_tokens":8,"completion_tokens":64,"total_tokens":72}}}}"#
            ),
            content
        )
    };
    let overhead = frame("").len();
    let words = "lorem ipsum dolor sit amet ".repeat(len / 27 + 1);
    let content = &words[..len.saturating_sub(overhead).min(words.len())];
    Bytes::from(frame(content))
}

/// A `chat.completion` whose assistant message calls the MCP tool `echo`
/// with `{"text": "x"}` (scenario 5's first round).
pub fn tool_call() -> Bytes {
    Bytes::from_static(
        br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock-tool","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_bench","type":"function","function":{"name":"echo","arguments":"{\"text\":\"x\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":8,"completion_tokens":8,"total_tokens":16}}"#,
    )
}

/// One SSE content event: a one-token delta.
pub fn content_event() -> Bytes {
    Bytes::from_static(
        br#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}

"#,
    )
}

/// The closing events: the finish chunk and `[DONE]`, sent together.
pub fn stream_end() -> Bytes {
    Bytes::from_static(
        br#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: [DONE]

"#,
    )
}

/// A streamed call of `echo` (`{"text": "x"}`): one delta holding the whole
/// call, the `tool_calls` finish and `[DONE]`.
pub fn stream_tool_call() -> Bytes {
    Bytes::from_static(
        br#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock-tool","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_bench","type":"function","function":{"name":"echo","arguments":"{\"text\":\"x\"}"}}]},"finish_reason":null}]}

data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock-tool","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: [DONE]

"#,
    )
}

/// An OpenAI-shaped error body (the soak's upstream errors).
pub fn error(message: &'static str) -> Bytes {
    Bytes::from(format!(r#"{{"error":{{"message":"{message}","type":"server_error","code":null}}}}"#))
}

/// `GET /v1/models`, for clients that look before they ask.
pub fn models() -> Bytes {
    Bytes::from_static(
        br#"{"object":"list","data":[{"id":"mock","object":"model","created":1700000000,"owned_by":"bench"}]}"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{Event, EventScanner};

    #[test]
    fn completions_have_the_exact_size_and_parse() {
        for len in [1024, 16 * 1024] {
            let body = completion(len);
            assert_eq!(body.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        }
    }

    #[test]
    fn tool_call_parses_and_calls_echo() {
        let v: serde_json::Value = serde_json::from_slice(&tool_call()).unwrap_or_else(|e| panic!("{e}"));
        let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "echo");
        let args: serde_json::Value =
            serde_json::from_str(call["arguments"].as_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args["text"], "x");
    }

    #[test]
    fn streamed_tool_call_parses() {
        let text = String::from_utf8_lossy(&stream_tool_call()).into_owned();
        let first = text.lines().next().and_then(|l| l.strip_prefix("data: ")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}"));
        let call = &v["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "echo");
        assert_eq!(call["function"]["arguments"], r#"{"text":"x"}"#);
        assert!(text.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn stream_events_are_what_the_client_counts() {
        let mut seen = Vec::new();
        let mut scanner = EventScanner::default();
        scanner.push(&content_event(), |e| seen.push(e));
        scanner.push(&stream_end(), |e| seen.push(e));
        assert_eq!(seen, vec![Event::Content, Event::Other, Event::Done]);
    }
}
