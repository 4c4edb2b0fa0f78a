//! `mcp-chat-proxy chat`: an interactive client of a running proxy's `/chat`.
//!
//! Each line read is one streaming turn; the answer is printed as it arrives
//! and the session id from the stream's final `chat.session` event is kept
//! for the next turns. It reads no proxy settings: it may run on a machine
//! that only reaches the proxy over the network. Failures of one turn are
//! reported and the prompt comes back; only a broken terminal ends it early.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use url::Url;

use crate::sse::SseDecoder;

/// Longer than the proxy's own upstream read timeout (300 s by default), so
/// a slow model is reported by the proxy, not cut off here.
const READ_TIMEOUT: Duration = Duration::from_secs(330);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunks are small; this only stops a misbehaving server filling memory.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// Arguments of `mcp-chat-proxy chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The proxy [default: $MCP_CHAT_URL, else http://127.0.0.1:$PORT, PORT defaulting to 8000]
    #[arg(long)]
    pub url: Option<String>,
    /// Resume this session (its id was printed after its first answer).
    #[arg(long)]
    pub session: Option<String>,
    /// The model to ask [default: the proxy's DEFAULT_MODEL]
    #[arg(long)]
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer KEY`; the key owns the session.
    /// Prefer the environment: arguments are visible to other local users
    /// [default: $MCP_CHAT_API_KEY]
    #[arg(long)]
    pub api_key: Option<String>,
}

/// Why a turn produced no complete answer.
#[derive(Debug, thiserror::Error)]
enum TurnError {
    #[error("cannot reach the proxy at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("session {0} does not exist (it expired, was deleted, or belongs to another API key)")]
    SessionNotFound(String),
    #[error("the proxy answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// The proxy's in-stream error event.
    #[error("{0}")]
    InStream(String),
    #[error("the answer was cut off: {0}")]
    Cut(String),
    /// Writing to our own stdout failed: the only error that ends the client.
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

/// ANSI styling of stdout, only on a terminal and unless `NO_COLOR` is set.
#[derive(Clone, Copy)]
struct Style {
    color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Runs the subcommand to its end; exit 0 on `quit`, `exit` or end of input.
pub fn run(args: ChatArgs) -> ExitCode {
    // Only for MCP_CHAT_URL, MCP_CHAT_API_KEY and PORT; none of it is required.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("mcp-chat-proxy: ignoring .env: {e}");
        }
    }
    let (mut client, runtime) = match setup(args) {
        Ok(ready) => ready,
        Err(message) => {
            eprintln!("mcp-chat-proxy chat: {message}");
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let ended = match client.start(&runtime) {
        Ok(true) => client.repl(&runtime, stdin.lock(), interactive),
        Ok(false) => return ExitCode::FAILURE,
        Err(e) => Err(e),
    };
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-chat-proxy chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn setup(args: ChatArgs) -> Result<(Client, tokio::runtime::Runtime), String> {
    let raw = match args.url.or_else(|| env_value("MCP_CHAT_URL")) {
        Some(url) => url,
        None => {
            let port = env_value("PORT").unwrap_or_else(|| "8000".into());
            let port: u16 = port.parse().map_err(|_| format!("PORT={port:?} is not a port number; give --url"))?;
            format!("http://127.0.0.1:{port}")
        }
    };
    let shown = raw.trim().trim_end_matches('/').to_string();
    let base = Url::parse(&shown)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| format!("--url {raw:?} is not an http:// or https:// URL"))?;
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let client = Client {
        http,
        base,
        shown,
        api_key: args.api_key.or_else(|| env_value("MCP_CHAT_API_KEY")),
        model: args.model,
        session: args.session,
        style: Style { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() },
    };
    Ok((client, runtime))
}

struct Client {
    http: reqwest::Client,
    base: Url,
    /// The URL as the user gave it, for messages.
    shown: String,
    api_key: Option<String>,
    model: Option<String>,
    session: Option<String>,
    style: Style,
}

/// What one `data:` payload of the stream means to us.
#[derive(Debug, PartialEq)]
enum Event {
    Delta(String),
    /// The session id, and whether the proxy marked the answer empty.
    Session(String, bool),
    Error(String),
    Done,
    Other,
}

fn read_event(data: &str) -> Event {
    if data == "[DONE]" {
        return Event::Done;
    }
    let Ok(v) = serde_json::from_str::<Value>(data) else { return Event::Other };
    if let Some(err) = v.get("error") {
        let message = err.get("message").and_then(Value::as_str).map_or_else(|| err.to_string(), str::to_string);
        return Event::Error(message);
    }
    if v["object"] == "chat.session" {
        if let Some(id) = v["session_id"].as_str() {
            return Event::Session(id.to_string(), v["empty"] == true);
        }
    }
    match v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Event::Delta(text.to_string()),
        _ => Event::Other,
    }
}

/// The innermost cause, as reqwest's own message ("error sending request")
/// says little; with a hint for the usual case, a proxy not started.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    match cause.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused — is it running?".into(),
        _ => cause.to_string(),
    }
}

fn is_quit(line: &str) -> bool {
    line.eq_ignore_ascii_case("quit") || line.eq_ignore_ascii_case("exit")
}

/// One line of input without its line ending; `None` at end of input.
/// Invalid UTF-8 is replaced rather than ending the conversation.
fn read_line(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    if input.read_until(b'\n', &mut bytes)? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string()))
}

impl Client {
    fn endpoint(&self, id: Option<&str>) -> Url {
        let mut url = self.base.clone();
        // http(s) URLs always have path segments; the id is escaped as one segment.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("chat");
            path.extend(id);
        }
        url
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    fn send_error(&self, e: reqwest::Error) -> TurnError {
        if e.is_connect() {
            TurnError::Unreachable { url: self.shown.clone(), reason: root_cause(&e) }
        } else if e.is_timeout() {
            TurnError::Cut(format!("no answer from {} within {} s", self.shown, READ_TIMEOUT.as_secs()))
        } else {
            TurnError::Cut(root_cause(&e))
        }
    }

    /// A non-2xx answer, read as the proxy's OpenAI-shaped error body.
    async fn refusal(&self, resp: reqwest::Response) -> TurnError {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        if status == 404 && body.pointer("/error/code").and_then(Value::as_str) == Some("session_not_found") {
            return TurnError::SessionNotFound(self.session.clone().unwrap_or_default());
        }
        let message = body.pointer("/error/message").and_then(Value::as_str).map(str::to_string);
        let message = message.unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason given").to_string());
        TurnError::Refused { status: status.as_u16(), message }
    }

    /// The banner, and for `--session` a check that the session exists, so a
    /// mistyped id is reported before anything is typed. `Ok(false)`: it does not.
    fn start(&mut self, runtime: &tokio::runtime::Runtime) -> std::io::Result<bool> {
        let mut out = std::io::stdout().lock();
        let title = self.style.paint("1", "mcp-chat-proxy chat");
        writeln!(out, "{title} — {} (type quit or exit, or press Ctrl-D, to leave)", self.shown)?;
        let Some(id) = self.session.clone() else { return Ok(true) };
        match runtime.block_on(self.history_len(&id)) {
            Ok(n) => writeln!(out, "{}", self.style.paint("2", &format!("resuming session {id} ({n} messages)")))?,
            Err(e) => {
                out.flush()?;
                eprintln!("error: {e}");
                // A proxy that is down may come up before the first turn; a missing session will not.
                return Ok(!matches!(e, TurnError::SessionNotFound(_)));
            }
        }
        Ok(true)
    }

    async fn history_len(&self, id: &str) -> Result<usize, TurnError> {
        let resp = self.request(reqwest::Method::GET, self.endpoint(Some(id))).send().await;
        let resp = resp.map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp).await);
        }
        let history: Value = resp.json().await.map_err(|e| TurnError::Cut(root_cause(&e)))?;
        Ok(history["messages"].as_array().map_or(0, Vec::len))
    }

    /// Reads lines until `quit`, `exit` or end of input; an `Err` is our own
    /// stdin or stdout failing.
    fn repl(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        mut input: impl BufRead,
        interactive: bool,
    ) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        loop {
            write!(out, "{}", self.style.paint("1;32", "You: "))?;
            out.flush()?;
            let Some(line) = read_line(&mut input)? else {
                writeln!(out)?;
                return Ok(());
            };
            if !interactive {
                // The terminal echoes what is typed; a pipe does not, and a
                // transcript without the questions is hard to read.
                writeln!(out, "{line}")?;
            }
            if line.is_empty() {
                continue;
            }
            if is_quit(&line) {
                return Ok(());
            }
            let before = self.session.clone();
            match runtime.block_on(self.turn(&line, &mut out)) {
                Ok(()) => self.announce_session(before.as_deref(), &mut out)?,
                Err(TurnError::Output(e)) => return Err(e),
                Err(e) => {
                    out.flush()?;
                    eprintln!("error: {e}");
                    if matches!(e, TurnError::SessionNotFound(_)) {
                        self.session = None;
                        writeln!(out, "{}", self.style.paint("2", "(the next message starts a new session)"))?;
                    }
                }
            }
        }
    }

    /// Prints the session id once, when it is first learned, so the user can resume it.
    fn announce_session(&self, before: Option<&str>, out: &mut impl Write) -> std::io::Result<()> {
        match self.session.as_deref() {
            Some(id) if before != Some(id) => {
                let line = format!("(to resume this conversation later: --session {id})");
                writeln!(out, "{}", self.style.paint("2", &line))
            }
            _ => Ok(()),
        }
    }

    /// One streaming turn: prints `Assistant: `, the deltas as they arrive, a newline.
    async fn turn(&mut self, message: &str, out: &mut impl Write) -> Result<(), TurnError> {
        let mut body = json!({"message": message, "stream": true});
        if let Some(id) = &self.session {
            body["session_id"] = json!(id);
        }
        if let Some(model) = &self.model {
            body["model"] = json!(model);
        }
        let resp = self.request(reqwest::Method::POST, self.endpoint(None)).json(&body).send().await;
        let resp = resp.map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp).await);
        }
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            let message = format!("expected an event stream, got {content_type:?}; is {} the proxy?", self.shown);
            return Err(TurnError::Cut(message));
        }
        write!(out, "{}", self.style.paint("1;36", "Assistant: "))?;
        out.flush()?;
        let streamed = self.stream(resp, out).await;
        // End the answer's line whatever happened, so an error starts on its own.
        writeln!(out)?;
        streamed
    }

    async fn stream(&mut self, resp: reqwest::Response, out: &mut impl Write) -> Result<(), TurnError> {
        let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
        let mut chunks = resp.bytes_stream();
        let (mut said, mut empty) = (String::new(), false);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| self.send_error(e))?;
            for event in decoder.feed(&chunk).map_err(|e| TurnError::Cut(e.to_string()))? {
                match read_event(&event.data) {
                    Event::Delta(text) => {
                        out.write_all(text.as_bytes())?;
                        out.flush()?;
                        said.push_str(&text);
                    }
                    Event::Session(id, marked_empty) => {
                        self.session = Some(id);
                        empty = marked_empty;
                    }
                    Event::Error(message) => return Err(TurnError::InStream(message)),
                    Event::Done => {
                        if empty || said.trim().is_empty() {
                            // As the original service did: say so, rather than print nothing.
                            let notice = "(the model gave an empty answer; try rephrasing your message)";
                            write!(out, "{}", self.style.paint("2", notice))?;
                        }
                        return Ok(());
                    }
                    Event::Other => {}
                }
            }
        }
        Err(TurnError::Cut("the connection closed before the end of the answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_payloads() {
        let delta = r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#;
        assert_eq!(read_event(delta), Event::Delta("Hel".into()));
        assert_eq!(read_event(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#), Event::Other);
        let session = r#"{"object":"chat.session","session_id":"abc"}"#;
        assert_eq!(read_event(session), Event::Session("abc".into(), false));
        let empty = r#"{"object":"chat.session","session_id":"abc","empty":true}"#;
        assert_eq!(read_event(empty), Event::Session("abc".into(), true));
        assert_eq!(read_event(r#"{"error":{"message":"upstream died"}}"#), Event::Error("upstream died".into()));
        assert_eq!(read_event(r#"{"error":"bare"}"#), Event::Error("\"bare\"".into()));
        assert_eq!(read_event("[DONE]"), Event::Done);
        assert_eq!(read_event("not json"), Event::Other);
    }

    #[test]
    fn quit_words_and_lines() {
        assert!(is_quit("QUIT") && is_quit("Exit") && !is_quit("quit now"));
        let mut input: &[u8] = b"  exit \r\n\xffok\n";
        assert_eq!(read_line(&mut input).ok().flatten().as_deref(), Some("exit"));
        assert_eq!(read_line(&mut input).ok().flatten().as_deref(), Some("\u{fffd}ok"));
        assert_eq!(read_line(&mut input).ok().flatten(), None);
    }

    #[test]
    fn session_ids_are_one_escaped_segment_under_any_prefix() {
        let client = |base: &str| Client {
            http: reqwest::Client::new(),
            base: Url::parse(base).unwrap_or_else(|e| panic!("{e}")),
            shown: base.into(),
            api_key: None,
            model: None,
            session: None,
            style: Style { color: false },
        };
        assert_eq!(client("http://h:1").endpoint(None).as_str(), "http://h:1/chat");
        assert_eq!(client("http://h:1/gw").endpoint(Some("a/b?c")).as_str(), "http://h:1/gw/chat/a%2Fb%3Fc");
    }
}
