//! The test MCP server (`tests/mcp_test_server/`) as a client sees it: rmcp's own client over
//! stdio and streamable HTTP, and a raw reqwest client for the legacy HTTP+SSE mode. The proxy's
//! MCP tests build on this server, so its contract is checked here on its own.

use std::pin::Pin;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{future, Stream, StreamExt};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-test-server");
/// How long anything that should happen may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
const ALL_TOOLS: [&str; 12] = [
    "add",
    "big",
    "crash",
    "echo",
    "env",
    "fail",
    "image",
    "most_sleeping",
    "pid",
    "sleep",
    "spawn_child",
    "toggle_extra",
];

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;
type Client = RunningService<RoleClient, ListWatcher>;

/// A client that reports every `notifications/tools/list_changed` on a channel.
struct ListWatcher(mpsc::UnboundedSender<()>);

impl ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.0.send(());
    }
}

fn watcher() -> (ListWatcher, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ListWatcher(tx), rx)
}

/// The server command with a known environment: one variable set, one surely unset.
fn server_command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env("MCP_TEST_SERVER_VAR", "from the test").env_remove("MCP_TEST_SERVER_UNSET");
    // The tests provoke protocol errors on purpose; keep rmcp's warnings about them quiet.
    command.env("RUST_LOG", "error");
    command
}

async fn stdio_client(args: &[&str]) -> Result<(Client, mpsc::UnboundedReceiver<()>, u32), Error> {
    let mut all_args = vec!["stdio"];
    all_args.extend_from_slice(args);
    let transport = TokioChildProcess::new(server_command(&all_args))?;
    let pid = transport.id().ok_or("the server has no pid")?;
    let (watcher, changes) = watcher();
    Ok((watcher.serve(transport).await?, changes, pid))
}

/// A server in an HTTP mode on a free port, killed when dropped.
struct Listening {
    _child: Child,
    port: u16,
}

async fn start_listening(mode: &str, args: &[&str]) -> Result<Listening, Error> {
    let mut all_args = vec![mode, "--port", "0"];
    all_args.extend_from_slice(args);
    let mut command = server_command(&all_args);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let port = timeout(WAIT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(port) = line.strip_prefix("LISTENING ") {
                return Ok::<u16, Error>(port.parse()?);
            }
            eprintln!("[{BIN}] {line}");
        }
        Err("the server exited before LISTENING".into())
    })
    .await??;
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{BIN}] {line}");
        }
    });
    Ok(Listening { _child: child, port })
}

fn request(name: &'static str, arguments: Value) -> CallToolRequestParams {
    let params = CallToolRequestParams::new(name);
    match arguments {
        Value::Object(arguments) => params.with_arguments(arguments),
        _ => params,
    }
}

async fn call(client: &Client, name: &'static str, arguments: Value) -> Result<CallToolResult, Error> {
    let answer = timeout(WAIT, client.call_tool(request(name, arguments))).await;
    Ok(answer.map_err(|_| format!("{name} did not answer in time"))??)
}

fn texts(result: &CallToolResult) -> Vec<&str> {
    result.content.iter().filter_map(|block| block.as_text()).map(|text| text.text.as_str()).collect()
}

/// The single text block of a successful call.
async fn text(client: &Client, name: &'static str, arguments: Value) -> Result<String, Error> {
    let result = call(client, name, arguments).await?;
    assert_ne!(result.is_error, Some(true), "{name} failed: {result:?}");
    match texts(&result)[..] {
        [text] => Ok(text.to_owned()),
        _ => Err(format!("{name}: expected one text block, got {result:?}").into()),
    }
}

async fn tool_names(client: &Client) -> Result<Vec<String>, Error> {
    let tools = timeout(WAIT, client.list_all_tools()).await??;
    Ok(tools.into_iter().map(|tool| tool.name.into_owned()).collect())
}

async fn list_changed(changes: &mut mpsc::UnboundedReceiver<()>) -> TestResult {
    let notified = timeout(WAIT, changes.recv()).await.map_err(|_| "no notifications/tools/list_changed in time")?;
    notified.ok_or("the client stopped")?;
    Ok(())
}

/// The whole tool contract except `crash`, `sleep`, `pid` and `spawn_child`, which need their own set-ups.
async fn exercise_tools(client: &Client, changes: &mut mpsc::UnboundedReceiver<()>) -> TestResult {
    assert_eq!(tool_names(client).await?, ALL_TOOLS);
    assert_eq!(text(client, "echo", json!({"text": "héllo\nwörld"})).await?, "héllo\nwörld");
    assert_eq!(text(client, "add", json!({"a": 2, "b": 3})).await?, "5");
    assert_eq!(text(client, "add", json!({"a": 2.5, "b": 0.25})).await?, "2.75");

    let failed = call(client, "fail", json!({})).await?;
    assert_eq!((failed.is_error, texts(&failed)), (Some(true), vec!["failed on purpose"]));
    let failed = call(client, "fail", json!({"message": "boom"})).await?;
    assert_eq!((failed.is_error, texts(&failed)), (Some(true), vec!["boom"]));

    let big = text(client, "big", json!({"n": 100_003})).await?;
    assert_eq!((big.len(), &big[..12], &big[99_990..]), (100_003, "012345678901", "0123456789012"));
    assert_eq!(text(client, "big", json!({"n": 0})).await?, "");

    assert_eq!(text(client, "env", json!({"name": "MCP_TEST_SERVER_VAR"})).await?, "from the test");
    assert_eq!(text(client, "env", json!({"name": "MCP_TEST_SERVER_UNSET"})).await?, "<unset>");

    let image = call(client, "image", json!({})).await?;
    assert_eq!(image.content.len(), 2, "{image:?}");
    let png = image.content[0].as_image().ok_or("the first block is not an image")?;
    // "iVBORw0KGgo" is the base64 of the PNG signature.
    assert!(png.mime_type == "image/png" && png.data.starts_with("iVBORw0KGgo"), "{png:?}");
    assert_eq!(texts(&image), ["an image"]);

    assert_eq!(text(client, "toggle_extra", json!({})).await?, "extra on");
    list_changed(changes).await?;
    assert!(tool_names(client).await?.contains(&"extra".to_owned()));
    assert_eq!(text(client, "extra", json!({})).await?, "extra!");
    assert_eq!(text(client, "toggle_extra", json!({})).await?, "extra off");
    list_changed(changes).await?;
    assert_eq!(tool_names(client).await?, ALL_TOOLS);
    let gone = timeout(WAIT, client.call_tool(request("extra", json!({})))).await?;
    assert!(matches!(&gone, Err(ServiceError::McpError(e)) if e.code == ErrorCode::INVALID_PARAMS), "{gone:?}");
    Ok(())
}

#[tokio::test]
async fn stdio_serves_every_tool_and_announces_list_changes() -> TestResult {
    let (client, mut changes, pid) = stdio_client(&[]).await?;
    let info = client.peer_info().ok_or("no server info")?;
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("mcp-test-server"));
    assert_eq!(info.capabilities.tools.as_ref().and_then(|t| t.list_changed), Some(true));
    exercise_tools(&client, &mut changes).await?;
    assert_eq!(text(&client, "pid", json!({})).await?, pid.to_string());
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn stdio_answers_fifty_concurrent_calls_each_with_its_own_result() -> TestResult {
    let (client, _changes, _pid) = stdio_client(&[]).await?;
    let texts: Vec<String> = (0..50).map(|i| format!("call number {i}")).collect();
    let calls = texts.iter().map(|t| text(&client, "echo", json!({ "text": t })));
    let answers = future::try_join_all(calls).await?;
    assert_eq!(answers, texts);

    // Ten one-second sleeps at once finish in about one second, not ten.
    let started = Instant::now();
    let sleeps = future::try_join_all((0..10).map(|_| text(&client, "sleep", json!({"ms": 1000})))).await?;
    assert!(sleeps.iter().all(|s| s == "slept 1000ms"), "{sleeps:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "calls ran one by one: {:?}", started.elapsed());
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn tools_option_narrows_the_list_and_name_option_renames_the_server() -> TestResult {
    let (client, _changes, _pid) = stdio_client(&["--tools", "echo,add", "--name", "renamed"]).await?;
    let info = client.peer_info().ok_or("no server info")?;
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("renamed"));
    assert_eq!(tool_names(&client).await?, ["add", "echo"]);
    let hidden = timeout(WAIT, client.call_tool(request("pid", json!({})))).await?;
    assert!(matches!(&hidden, Err(ServiceError::McpError(e)) if e.code == ErrorCode::INVALID_PARAMS), "{hidden:?}");
    client.cancel().await?;

    let typo = server_command(&["stdio", "--tools", "echo,ech"]).stdin(Stdio::null()).output().await?;
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("\"ech\""));
    Ok(())
}

#[tokio::test]
async fn a_crash_mid_call_fails_the_pending_call_instead_of_hanging() -> TestResult {
    let (client, _changes, _pid) = stdio_client(&[]).await?;
    let crashed = timeout(WAIT, client.call_tool(request("crash", json!({})))).await?;
    assert!(matches!(crashed, Err(ServiceError::TransportClosed)), "{crashed:?}");
    let after = timeout(WAIT, client.call_tool(request("echo", json!({"text": "x"})))).await?;
    assert!(after.is_err(), "{after:?}");
    Ok(())
}

/// (parent pid, process group) of a live process, read from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn parent_and_group(pid: u32) -> Result<(u32, u32), Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name in parentheses may hold spaces; after it come state, ppid, pgrp.
    let fields: Vec<&str> = stat.rsplit_once(')').ok_or("no command name in stat")?.1.split_whitespace().collect();
    match fields[..] {
        [_state, ppid, pgrp, ..] => Ok((ppid.parse()?, pgrp.parse()?)),
        _ => Err(format!("short stat: {stat}").into()),
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn spawn_child_starts_a_grandchild_in_the_server_process_group() -> TestResult {
    let (client, _changes, server_pid) = stdio_client(&[]).await?;
    let grandchild: u32 = text(&client, "spawn_child", json!({})).await?.parse()?;
    let (parent, group) = parent_and_group(grandchild)?;
    // SAFETY: kill(2) on a pid we started; it touches no memory.
    let _ = unsafe { libc::kill(grandchild as libc::pid_t, libc::SIGKILL) };
    assert_eq!(parent, server_pid);
    assert_eq!(group, parent_and_group(server_pid)?.1);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn streamable_http_serves_every_tool_and_announces_list_changes() -> TestResult {
    let server = start_listening("http", &[]).await?;
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let (watcher, mut changes) = watcher();
    let client = timeout(WAIT, watcher.serve(StreamableHttpClientTransport::from_uri(url))).await??;
    exercise_tools(&client, &mut changes).await?;
    client.cancel().await?;

    let elsewhere = reqwest::get(format!("http://127.0.0.1:{}/other", server.port)).await?;
    assert_eq!(elsewhere.status(), reqwest::StatusCode::NOT_FOUND);
    Ok(())
}

/// Reads a `text/event-stream` body one event at a time.
struct SseReader {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl SseReader {
    /// The next event with data, as (event name, data); comment-only blocks are skipped.
    async fn next(&mut self) -> Result<(String, String), Error> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = ("message".to_owned(), None::<String>);
                for line in std::str::from_utf8(&block)?.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.get_or_insert_with(String::new).push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                match data {
                    Some(data) => return Ok((event, data)),
                    None => continue,
                }
            }
            let chunk = timeout(WAIT, self.body.next()).await?.ok_or("the SSE stream ended")??;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    async fn next_message(&mut self) -> Result<Value, Error> {
        let (event, data) = self.next().await?;
        assert_eq!(event, "message", "{data}");
        Ok(serde_json::from_str(&data)?)
    }
}

#[tokio::test]
async fn legacy_sse_announces_an_endpoint_and_answers_posts_on_the_stream() -> TestResult {
    let server = start_listening("sse", &["--name", "legacy"]).await?;
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    let stream = http.get(format!("{base}/sse")).send().await?.error_for_status()?;
    assert_eq!(stream.headers().get("content-type").map(|v| v.as_bytes()), Some(&b"text/event-stream"[..]));
    let mut events = SseReader { body: Box::pin(stream.bytes_stream()), buffer: Vec::new() };

    let (event, endpoint) = events.next().await?;
    assert!(event == "endpoint" && endpoint.starts_with("/messages?sessionId="), "{event}: {endpoint}");
    let post = |message: Value| http.post(format!("{base}{endpoint}")).json(&message).send();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    assert_eq!(post(init).await?.status(), reqwest::StatusCode::ACCEPTED);
    let reply = events.next_message().await?;
    assert_eq!(reply["id"], 1, "{reply}");
    assert_eq!(reply["result"]["protocolVersion"], "2024-11-05", "{reply}");
    assert_eq!(reply["result"]["serverInfo"]["name"], "legacy", "{reply}");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(initialized).await?.status(), reqwest::StatusCode::ACCEPTED);

    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "over sse"}}});
    assert_eq!(post(echo).await?.status(), reqwest::StatusCode::ACCEPTED);
    let reply = events.next_message().await?;
    assert_eq!((&reply["id"], &reply["result"]["content"][0]["text"]), (&json!(2), &json!("over sse")), "{reply}");

    // The notification and the reply both come on the stream, in either order.
    let toggle = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "toggle_extra"}});
    assert_eq!(post(toggle).await?.status(), reqwest::StatusCode::ACCEPTED);
    let mut two = [events.next_message().await?, events.next_message().await?];
    two.sort_by_key(|message| message.get("id").is_some());
    assert_eq!(two[0]["method"], "notifications/tools/list_changed", "{two:?}");
    assert_eq!((&two[1]["id"], &two[1]["result"]["content"][0]["text"]), (&json!(3), &json!("extra on")), "{two:?}");

    let stranger = http.post(format!("{base}/messages?sessionId=no-such-session")).json(&json!({})).send().await?;
    assert_eq!(stranger.status(), reqwest::StatusCode::NOT_FOUND);
    Ok(())
}
