//! The mock OpenAI upstream every benchmark scenario runs against.
//!
//! `POST …/chat/completions` answers a canned `chat.completion` of 1 KiB, or
//! of 16 KiB when the model name contains `16k`; with `"stream": true` it
//! answers an SSE stream of `--chunks` content events, the first after
//! `--first-token-ms` and then one every `--interval-ms`. `GET …/models` and
//! `GET /healthz` answer too. TCP_NODELAY is set on every connection: with
//! Nagle's algorithm a small response can wait 40 ms for a delayed ACK, which
//! would drown everything measured.
//!
//! Tool mode (scenario 5): a model name containing `tool` gets an answer
//! whose message calls the MCP tool `echo` with `{"text": "x"}` (native
//! `tool_calls`), unless the request's messages already hold a `role: tool`
//! message (the tool's result), which gets the 1 KiB text answer. Other
//! models are answered as before, without looking at the messages. With
//! `"stream": true` the call comes as one SSE `tool_calls` delta.
//!
//! Faults (the soak, `bench/soak`), also chosen by the model name: `err500`
//! and `err503` answer that status with an OpenAI error body, `drop` closes
//! the connection without answering, and `cut` streams a few chunks and then
//! aborts the connection mid-body.
//!
//! Flags: `--port` (required), `--threads` (1), `--chunks` (64),
//! `--interval-ms` (20), `--first-token-ms` (0).

use std::cmp::Ordering;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use mcp_chat_proxy_bench::{args::Args, canned};
use tokio::net::TcpListener;
use tokio::time::{Instant, Interval, MissedTickBehavior};

type MockBody = Either<Full<Bytes>, UnsyncBoxBody<Bytes, std::io::Error>>;

struct Config {
    small: Bytes,
    tool_call: Bytes,
    large: Bytes,
    chunks: u32,
    interval: Duration,
    first_token: Duration,
}

/// The two request fields the mock looks at; everything else is ignored.
#[derive(serde::Deserialize, Default)]
struct Ask {
    #[serde(default)]
    model: String,
    #[serde(default)]
    stream: bool,
}

/// Only for tool-mode models: the roles of the messages.
#[derive(serde::Deserialize, Default)]
struct Conversation {
    #[serde(default)]
    messages: Vec<Role>,
}

#[derive(serde::Deserialize)]
struct Role {
    #[serde(default)]
    role: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fast_mock: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args = Args::from_env()?;
    let port: u16 = args.required("port")?;
    let threads: usize = args.get("threads", 1)?;
    let config = Arc::new(Config {
        small: canned::completion(1024),
        tool_call: canned::tool_call(),
        large: canned::completion(16 * 1024),
        chunks: args.get("chunks", 64)?,
        // tokio's interval refuses a zero period.
        interval: Duration::from_millis(args.get("interval-ms", 20)?).max(Duration::from_micros(1)),
        first_token: Duration::from_millis(args.get("first-token-ms", 0)?),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("bind {port}: {e}"))?;
        eprintln!("fast_mock: listening on 127.0.0.1:{port}");
        serve(listener, config).await;
        Ok(())
    })
}

async fn serve(listener: TcpListener, config: Arc<Config>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors under a stream flood: back off, keep serving.
                eprintln!("fast_mock: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("fast_mock: TCP_NODELAY: {e}");
        }
        let config = config.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, config.clone()));
            // A client hanging up mid-response is normal under load.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// `Err` makes hyper close the connection without an answer (`drop`).
async fn handle(req: Request<Incoming>, config: Arc<Config>) -> Result<Response<MockBody>, std::io::Error> {
    let path = req.uri().path();
    if req.method() == Method::GET && path == "/healthz" {
        return Ok(json(200, Bytes::from_static(b"{\"status\":\"ok\"}")));
    }
    if req.method() == Method::GET && path.ends_with("/models") {
        return Ok(json(200, canned::models()));
    }
    if req.method() != Method::POST || !path.ends_with("/chat/completions") {
        return Ok(json(404, Bytes::from_static(b"{\"error\":{\"message\":\"no such route\"}}")));
    }
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(json(400, Bytes::from_static(b"{\"error\":{\"message\":\"bad body\"}}"))),
    };
    let ask: Ask = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(fault) = fault(&ask.model) {
        return fault;
    }
    // Only tool models look at the messages: the other answers stay canned.
    let calls_tool = ask.model.contains("tool") && {
        let conversation: Conversation = serde_json::from_slice(&body).unwrap_or_default();
        !conversation.messages.iter().any(|m| m.role == "tool")
    };
    if ask.stream {
        let cut = ask.model.contains("cut");
        return Ok(sse(&config, calls_tool, cut));
    }
    if ask.model.contains("tool") {
        return Ok(json(200, if calls_tool { config.tool_call.clone() } else { config.small.clone() }));
    }
    let canned = if ask.model.contains("16k") { config.large.clone() } else { config.small.clone() };
    Ok(json(200, canned))
}

/// The soak's upstream errors, by model name; `None` for every other model.
fn fault(model: &str) -> Option<Result<Response<MockBody>, std::io::Error>> {
    let error = |status, message: &'static str| Some(Ok(json(status, canned::error(message))));
    if model.contains("err500") {
        error(500, "mock: internal error")
    } else if model.contains("err503") {
        error(503, "mock: overloaded")
    } else if model.contains("drop") {
        Some(Err(std::io::Error::other("mock: dropping the connection")))
    } else {
        None
    }
}

fn json(status: u16, body: Bytes) -> Response<MockBody> {
    let mut resp = Response::new(Either::Left(Full::new(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// The SSE answer: content events on a fixed schedule, then the finish chunk
/// and `[DONE]` right after the last one. The schedule starts at the first
/// chunk, which goes out at once when there is no first-token delay (a timer
/// would round it up to the timer wheel's next millisecond). A tool call is
/// one event and `[DONE]`; a `cut` stream fails after a quarter of its chunks.
fn sse(config: &Config, calls_tool: bool, cut: bool) -> Response<MockBody> {
    let (first_token, interval) = (config.first_token, config.interval);
    let total = if calls_tool { 0 } else { config.chunks };
    let cut_at = if cut { Some(total / 4) } else { None };
    let events = futures_util::stream::unfold((None::<Interval>, 0u32), move |(mut ticks, sent)| async move {
        if cut_at == Some(sent) {
            return Some((Err(std::io::Error::other("mock: cutting the stream")), (ticks, total + 1)));
        }
        let frame = match sent.cmp(&total) {
            Ordering::Greater => return None,
            Ordering::Equal if calls_tool => canned::stream_tool_call(),
            Ordering::Equal => canned::stream_end(),
            Ordering::Less => {
                match ticks.as_mut() {
                    Some(ticks) => _ = ticks.tick().await,
                    None => {
                        if !first_token.is_zero() {
                            tokio::time::sleep(first_token).await;
                        }
                        let mut schedule = tokio::time::interval_at(Instant::now() + interval, interval);
                        // A late tick is sent late, not followed by a burst:
                        // a stall shows as one long gap.
                        schedule.set_missed_tick_behavior(MissedTickBehavior::Delay);
                        ticks = Some(schedule);
                    }
                }
                canned::content_event()
            }
        };
        Some((Ok(Frame::data(frame)), (ticks, sent + 1)))
    });
    let mut resp = Response::new(Either::Right(StreamBody::new(events).boxed_unsync()));
    let headers = resp.headers_mut();
    headers.insert("content-type", hyper::header::HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", hyper::header::HeaderValue::from_static("no-cache"));
    resp
}
