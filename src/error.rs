//! The proxy's own errors: one enum, one exhaustive status mapping, one
//! renderer for the OpenAI JSON body and one for the SSE error event.
//!
//! Errors that come from the upstream as HTTP responses are not represented
//! here: they pass through to the client unchanged.

use bytes::Bytes;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The request cannot be understood (bad JSON, wrong types, bad header values).
    #[error("{message}")]
    BadRequest { message: String, param: Option<String> },
    /// Client keys are configured and the request has none, or a wrong one.
    #[error("Incorrect API key provided. Send a valid key as 'Authorization: Bearer <key>'.")]
    InvalidApiKey,
    /// The request body is larger than the configured cap.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A `/chat` session that does not exist, expired, or is not the caller's.
    #[error("no session {id}")]
    SessionNotFound { id: String },
    /// A stored response that does not exist, expired, or is not the caller's.
    #[error("Response with id '{id}' not found.")]
    ResponseNotFound { id: String },
    /// Another turn on the same session did not finish in time.
    #[error("session {id} is busy with another turn; try again")]
    SessionBusy { id: String },
    /// No route at this path.
    #[error("no route for {method} {path}; the OpenAI API is served under /v1/")]
    NotFound { method: String, path: String },
    /// A local route was called with a method it does not serve.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// A CORS preflight from an origin that is not allowed.
    #[error("origin {origin} is not allowed")]
    OriginNotAllowed { origin: String },
    /// The upstream could not be reached (refused, unresolvable, reset before a response).
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(String),
    /// The upstream answered with something that is not valid HTTP or not what was expected.
    #[error("bad response from upstream: {0}")]
    UpstreamProtocol(String),
    /// A bug or resource failure inside the proxy.
    #[error("internal error: {0}")]
    Internal(String),
    /// The request line and headers together are larger than the configured cap.
    #[error("the request line and headers are larger than {limit} bytes")]
    HeaderTooLarge { limit: usize },
    /// More requests in flight than the configured limit; sent with `Retry-After`.
    #[error("the proxy is serving as many requests as it may; retry after {retry_after_seconds} s")]
    Overloaded { retry_after_seconds: u64 },
}

impl ProxyError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::BadRequest { message: message.into(), param: param.map(str::to_string) }
    }

    /// The HTTP status for this error. No wildcard arm: a new variant must choose.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest { .. } => 400,
            Self::InvalidApiKey => 401,
            Self::PayloadTooLarge { .. } => 413,
            Self::NotFound { .. } | Self::SessionNotFound { .. } | Self::ResponseNotFound { .. } => 404,
            Self::SessionBusy { .. } => 409,
            Self::MethodNotAllowed { .. } => 405,
            Self::OriginNotAllowed { .. } => 403,
            Self::UpstreamUnreachable(_) => 502,
            Self::UpstreamTimeout(_) => 504,
            Self::UpstreamProtocol(_) => 502,
            Self::Internal(_) => 500,
            Self::HeaderTooLarge { .. } => 431,
            Self::Overloaded { .. } => 503,
        }
    }

    /// OpenAI's `error.type`.
    fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest { .. }
            | Self::InvalidApiKey
            | Self::PayloadTooLarge { .. }
            | Self::NotFound { .. }
            | Self::SessionNotFound { .. }
            | Self::ResponseNotFound { .. }
            | Self::SessionBusy { .. }
            | Self::MethodNotAllowed { .. }
            | Self::HeaderTooLarge { .. } => "invalid_request_error",
            Self::OriginNotAllowed { .. } => "permission_error",
            Self::UpstreamUnreachable(_) | Self::UpstreamTimeout(_) | Self::UpstreamProtocol(_) => "upstream_error",
            Self::Internal(_) | Self::Overloaded { .. } => "server_error",
        }
    }

    /// OpenAI's `error.code`, a stable string clients can match on.
    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "invalid_request",
            Self::InvalidApiKey => "invalid_api_key",
            Self::PayloadTooLarge { .. } => "request_too_large",
            Self::NotFound { .. } => "unknown_url",
            Self::SessionNotFound { .. } => "session_not_found",
            Self::ResponseNotFound { .. } => "response_not_found",
            Self::SessionBusy { .. } => "session_busy",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::OriginNotAllowed { .. } => "origin_not_allowed",
            Self::UpstreamUnreachable(_) => "upstream_unreachable",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::UpstreamProtocol(_) => "upstream_bad_response",
            Self::Internal(_) => "internal_error",
            Self::HeaderTooLarge { .. } => "request_header_too_large",
            Self::Overloaded { .. } => "overloaded",
        }
    }

    /// The `Retry-After` (seconds) this error's response carries, if any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Overloaded { retry_after_seconds } => Some(*retry_after_seconds),
            _ => None,
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }

    /// `{"error": {"message", "type", "param", "code"}}`, the body OpenAI sends.
    pub fn openai_body(&self) -> Bytes {
        Bytes::from(self.to_json().to_string())
    }

    /// The SSE event sent when the error happens after a stream has started:
    /// the stream then ends without `[DONE]`, so clients raise.
    pub fn sse_event(&self) -> Bytes {
        Bytes::from(format!("data: {}\n\n", self.to_json()))
    }

    fn to_anthropic_json(&self) -> serde_json::Value {
        // Anthropic clients send their key as x-api-key: say so in their shape.
        let message = match self {
            Self::InvalidApiKey => {
                "Invalid API key. Send a valid key as 'x-api-key: <key>' or 'Authorization: Bearer <key>'.".to_string()
            }
            other => other.to_string(),
        };
        json!({"type": "error", "error": {"type": anthropic_error_type(self.status()), "message": message}})
    }

    /// `{"type": "error", "error": {"type", "message"}}`, the body Anthropic's API sends.
    pub fn anthropic_body(&self) -> Bytes {
        Bytes::from(self.to_anthropic_json().to_string())
    }

    /// Anthropic's `error` event, for an error after a Messages stream started.
    pub fn anthropic_sse_event(&self) -> Bytes {
        Bytes::from(format!("event: error\ndata: {}\n\n", self.to_anthropic_json()))
    }
}

/// Anthropic's error type for an answer with `status` (ours or the upstream's).
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ProxyError::UpstreamTimeout("no response within 5s".into());
        let v: serde_json::Value = serde_json::from_slice(&e.openai_body()).unwrap_or_default();
        assert_eq!(v["error"]["type"], "upstream_error");
        assert_eq!(v["error"]["code"], "upstream_timeout");
        assert_eq!(v["error"]["message"], "upstream timed out: no response within 5s");
        assert_eq!(e.status(), 504);
    }

    #[test]
    fn anthropic_errors_have_anthropics_shape() {
        let e = ProxyError::bad_request("max_tokens: a positive whole number is required", Some("max_tokens"));
        let v: serde_json::Value = serde_json::from_slice(&e.anthropic_body()).unwrap_or_default();
        assert_eq!(v, json!({"type": "error", "error": {"type": "invalid_request_error", "message": e.to_string()}}));
        let ev = String::from_utf8_lossy(&ProxyError::InvalidApiKey.anthropic_sse_event()).into_owned();
        assert!(ev.starts_with("event: error\ndata: {") && ev.ends_with("}\n\n"), "{ev}");
        assert!(ev.contains("authentication_error") && ev.contains("x-api-key"), "{ev}");
        let timeout = ProxyError::UpstreamTimeout("x".into()).anthropic_body();
        assert!(String::from_utf8_lossy(&timeout).contains("api_error"));
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let e = ProxyError::UpstreamUnreachable("connection reset".into());
        let ev = e.sse_event();
        assert!(ev.starts_with(b"data: {\"error\""));
        assert!(ev.ends_with(b"\n\n"));
    }
}
