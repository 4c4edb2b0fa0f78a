//! rmcp's streamable-HTTP client (reqwest) with an OAuth bearer token on
//! every request: the same seam rmcp's own `AuthClient` wraps, fed by our
//! [`TokenSource`] instead of its authorization-code manager.
//!
//! A 401 (which rmcp reports as `AuthRequired` when the server sends
//! `WWW-Authenticate`, as RFC 6750 and MCP's authorization spec require) gets
//! one new token and one retry of the same request; a second 401 is the
//! server's answer. The transport's own `auth_header` is not used.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use super::oauth::{TokenError, TokenSource};
use crate::settings::oauth::Secret;

type Error = StreamableHttpError<rmcp_reqwest::Error>;
type Headers = HashMap<HeaderName, HeaderValue>;
type Events = BoxStream<'static, Result<Sse, SseError>>;

#[derive(Clone, Debug)]
pub struct BearerClient {
    http: rmcp_reqwest::Client,
    tokens: Arc<TokenSource>,
}

impl BearerClient {
    pub fn new(tokens: Arc<TokenSource>) -> Self {
        Self { http: rmcp_reqwest::Client::default(), tokens }
    }

    /// Runs `call` with the current token; on a 401, once more with a new one.
    async fn authorized<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let sent = self.tokens.token().await.map_err(token_error)?;
        match call(Some(sent.expose().to_string())).await {
            Err(StreamableHttpError::AuthRequired(_)) => {
                let fresh: Secret = self.tokens.rejected(&sent).await.map_err(token_error)?;
                call(Some(fresh.expose().to_string())).await
            }
            other => other,
        }
    }
}

/// rmcp's error type has no variant of ours; an I/O error carries the
/// message (the token URL and OAuth error code) through to the hub.
fn token_error(e: TokenError) -> Error {
    StreamableHttpError::Io(std::io::Error::other(e))
}

impl StreamableHttpClient for BearerClient {
    type Error = rmcp_reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<StreamableHttpPostResponse, Error> {
        self.authorized(|token| {
            self.http.post_message(uri.clone(), message.clone(), session_id.clone(), token, custom_headers.clone())
        })
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, Error> {
        self.authorized(|token| {
            self.http.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Error> {
        self.authorized(|token| {
            self.http.post_message_with_response_limits(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                limits,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<(), Error> {
        self.authorized(|token| {
            self.http.delete_session(uri.clone(), session_id.clone(), token, custom_headers.clone())
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<Events, Error> {
        self.authorized(|token| {
            self.http.get_stream(uri.clone(), session_id.clone(), last_event_id.clone(), token, custom_headers.clone())
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<Events, Error> {
        self.authorized(|token| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}
