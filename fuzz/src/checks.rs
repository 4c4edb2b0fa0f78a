//! What must hold for any input, one function per fuzz target. Each returns
//! `Err` naming the broken property; a panic inside the proxy is a finding
//! too. `tests/fuzz_corpus.rs` includes this file by path and replays the
//! corpus through the same functions, so a regression shows in `cargo test`
//! without a fuzzer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use mcp_chat_proxy::mcp::catalog::ServerTool;
use mcp_chat_proxy::mcp::Catalog;
use mcp_chat_proxy::openai::chat::{parse_request, ChatRequest, Chunk, ToolCall};
use mcp_chat_proxy::openai::stream::ToolCallAccumulator;
use mcp_chat_proxy::settings::servers as config;
use mcp_chat_proxy::sse::{SseDecoder, SseError, SseEvent};
use mcp_chat_proxy::tool_loop::native::{round_body, Offer};
use mcp_chat_proxy::tool_loop::prompt::locate_tool_call;
use mcp_chat_proxy::tool_loop::scan::CallScanner;
use mcp_chat_proxy::tool_loop::ToolMode;
use serde_json::Value;

/// What a decoder made of a whole stream: the events until the first error.
#[derive(Debug, PartialEq)]
struct Decoded {
    events: Vec<SseEvent>,
    error: Option<SseError>,
}

fn decode(max: usize, stream: &[u8], cuts: &[usize]) -> Decoded {
    let mut decoder = SseDecoder::new(max);
    let mut events = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&stream.len()]) {
        match decoder.feed(&stream[from..to]) {
            Ok(more) => events.extend(more),
            Err(e) => return Decoded { events, error: Some(e) },
        }
        from = to;
    }
    match decoder.finish() {
        Ok(more) => events.extend(more),
        Err(e) => return Decoded { events, error: Some(e) },
    }
    Decoded { events, error: None }
}

/// The SSE decoder gives the same events, and fails the same way, however the
/// stream is cut into chunks; no delivered event is over the size cap.
///
/// Input: one byte choosing the cap (8 to 1028 bytes, small so the cap is
/// reached), one byte with the number of cuts (0 to 7), two bytes per cut
/// (its position), then the stream.
pub fn sse_decoder(data: &[u8]) -> Result<(), String> {
    let [cap, cut_count, rest @ ..] = data else { return Ok(()) };
    let max = 8 + usize::from(*cap) * 4;
    let cut_bytes = usize::from(cut_count % 8) * 2;
    if rest.len() < cut_bytes {
        return Ok(());
    }
    let (cut_bytes, stream) = rest.split_at(cut_bytes);
    let mut cuts: Vec<usize> =
        cut_bytes.chunks_exact(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let whole = decode(max, stream, &[]);
    for ev in &whole.events {
        if ev.data.len() > max {
            return Err(format!("an event of {} bytes passed the cap of {max}", ev.data.len()));
        }
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    for (how, cuts) in [("at the cuts", &cuts), ("byte by byte", &every_byte)] {
        let split = decode(max, stream, cuts);
        // Events a chunk completed before the failing one have already gone
        // out; only the outcome and, on success, the events must agree.
        let same = match (&whole.error, &split.error) {
            (None, None) => whole.events == split.events,
            (a, b) => a == b,
        };
        if !same {
            return Err(format!("cap {max}, fed whole: {whole:?}; fed {how} {cuts:?}: {split:?}"));
        }
    }
    Ok(())
}

/// The prompt-mode detector: a call it finds is a JSON object at the span it
/// gives, naming a known tool (or opening the reply with a `"tool"` key); and
/// fed as a stream, character by character, it shows the client exactly the
/// text and finds exactly the call that it does fed the whole reply, so a
/// streamed and a non-streamed reply agree.
pub fn prompt_detector(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let known = |name: &str| matches!(name, "echo" | "add" | "search" | "get_weather");
    let any = |_: &str| true;
    for is_known in [&known as &(dyn Fn(&str) -> bool + Sync), &any] {
        let Some((span, call)) = locate_tool_call(&text, is_known) else { continue };
        let object = text.get(span.clone()).ok_or_else(|| format!("span {span:?} is not on char boundaries"))?;
        let value: Value = serde_json::from_str(object).map_err(|e| format!("span {span:?} is not JSON ({e})"))?;
        let named = value.get("tool").or_else(|| value.get("name")).and_then(Value::as_str);
        let opening = value.get("tool").is_some() && opens_the_reply(&text[..span.start]);
        if named != Some(call.name.as_str()) || !(is_known(&call.name) || opening) {
            return Err(format!("call {call:?} from {object}"));
        }
    }
    let (visible, found) = CallScanner::scan_whole(&text, &known);
    if !text.starts_with(&visible) {
        return Err(format!("visible text {visible:?} is not a prefix of the reply"));
    }
    let mut scanner = CallScanner::new(&known);
    let mut streamed = String::new();
    let mut piece = [0u8; 4];
    for c in text.chars() {
        streamed.push_str(&scanner.push(c.encode_utf8(&mut piece)));
    }
    let (rest, streamed_found) = scanner.finish();
    streamed.push_str(&rest);
    if streamed != visible || streamed_found != found {
        return Err(format!("whole: {visible:?} {found:?}; streamed: {streamed:?} {streamed_found:?}"));
    }
    Ok(())
}

/// Whether only blanks, or blanks and a fence opener, come before a call.
fn opens_the_reply(before: &str) -> bool {
    let before = before.trim_end();
    let without_tag = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || "_+.-".contains(c));
    before.trim().is_empty() || without_tag.strip_suffix("```").is_some_and(|rest| rest.trim().is_empty())
}

/// Streamed tool calls, from the upstream's SSE bytes as the tool loop reads
/// them: each call's arguments are exactly its pieces in order, one call per
/// index, each with an id, and the calls survive a JSON round trip (they are
/// sent back upstream in the next round).
pub fn tool_call_stream(data: &[u8]) -> Result<(), String> {
    let mut decoder = SseDecoder::new(1 << 20);
    let Ok(mut events) = decoder.feed(data) else { return Ok(()) };
    events.extend(decoder.finish().unwrap_or_default());
    let mut accumulator = ToolCallAccumulator::default();
    let mut expected: BTreeMap<u32, String> = BTreeMap::new();
    for event in events {
        let data = event.data.trim();
        if data == "[DONE]" {
            break;
        }
        let Ok(chunk) = serde_json::from_str::<Chunk>(data) else { continue };
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let Some(deltas) = &choice.delta.tool_calls else { continue };
            accumulator.push(deltas);
            for d in deltas {
                let arguments = expected.entry(d.index).or_default();
                arguments.push_str(d.function.as_ref().and_then(|f| f.arguments.as_deref()).unwrap_or(""));
            }
        }
    }
    let calls = accumulator.finish();
    let got: Vec<&str> = calls.iter().map(|c| c.function.arguments.as_str()).collect();
    let want: Vec<&str> = expected.values().map(String::as_str).collect();
    if got != want {
        return Err(format!("arguments {got:?}, pieces {want:?}"));
    }
    if let Some(call) = calls.iter().find(|c| c.id.is_empty() || c.kind != "function") {
        return Err(format!("call without an id or type: {call:?}"));
    }
    let text = serde_json::to_string(&calls).map_err(|e| e.to_string())?;
    let back: Vec<ToolCall> = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if back != calls {
        return Err(format!("round trip changed the calls: {text}"));
    }
    Ok(())
}

/// The MCP side of the merge: fixed tools plus the client's own names (so the
/// client's definition must win), on two servers that share `echo`.
fn catalog_for(client_names: &HashSet<String>) -> std::sync::Arc<Catalog> {
    let tool = |name: &str| ServerTool {
        name: name.to_string(),
        description: format!("The {name} tool."),
        input_schema: serde_json::json!({"type": "object", "properties": {"text": {"type": "string"}}}),
    };
    let mut mine: BTreeSet<&str> = ["echo", "add", "search"].into_iter().collect();
    mine.extend(client_names.iter().take(8).map(String::as_str));
    let known: BTreeMap<String, Vec<ServerTool>> = [
        ("mcp".to_string(), mine.into_iter().map(tool).collect()),
        ("other".to_string(), vec![tool("echo"), tool("fetch")]),
    ]
    .into_iter()
    .collect();
    Catalog::build(&known, &["mcp", "other"])
}

fn exposable(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A chat request as the gate parses it, then the body of every kind of round
/// built from it: that body is itself a valid request, streams as asked, and
/// in native mode carries the client's tools and the MCP tools whose names the
/// client does not use, each name once.
pub fn chat_request(data: &[u8]) -> Result<(), String> {
    let Ok(request) = parse_request(data) else { return Ok(()) };
    let client_names: HashSet<String> = request.client_tool_names().into_iter().collect();
    let catalog = catalog_for(&client_names);
    if let Some(bad) = catalog.tools().iter().find(|t| !exposable(&t.name)) {
        return Err(format!("MCP tool exposed as {:?}", bad.name));
    }
    let names: HashSet<&str> = catalog.tools().iter().map(|t| t.name.as_str()).collect();
    if names.len() != catalog.len() {
        return Err(format!("two MCP tools share a name: {:?}", catalog.tools()));
    }
    for mode in [ToolMode::Native, ToolMode::Prompt] {
        for (catalog_offered, last) in [(Some(&*catalog), false), (Some(&*catalog), true), (None, false)] {
            for stream in [false, true] {
                let offer = Offer { catalog: catalog_offered, client_names: &client_names, last, after_tools: !last };
                let body = round_body(&request, &request.messages, mode, offer, stream);
                let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
                let sent = parse_request(&bytes).map_err(|e| format!("round body refused ({e:?}): {body}"))?;
                if sent.is_stream() != stream {
                    return Err(format!("asked stream={stream}, body {body}"));
                }
                if last && sent.tools.is_some() && sent.tool_choice != Some(Value::String("none".into())) {
                    return Err(format!("the answer after a limit may still call tools: {body}"));
                }
                if mode == ToolMode::Native && catalog_offered.is_some() {
                    check_merged_tools(&request, &sent, &catalog, &client_names)?;
                }
            }
        }
    }
    Ok(())
}

fn check_merged_tools(
    request: &ChatRequest,
    sent: &ChatRequest,
    catalog: &Catalog,
    client_names: &HashSet<String>,
) -> Result<(), String> {
    // Through the same write and read as `sent`: serde_json's float parsing
    // (without its `float_roundtrip` feature) may move a float by one ulp.
    let client_tools = reread(request.tools.clone().unwrap_or_default())?;
    let sent_tools = sent.tools.clone().unwrap_or_default();
    let ours: Vec<&str> =
        catalog.tools().iter().map(|t| t.name.as_str()).filter(|n| !client_names.contains(*n)).collect();
    if sent_tools.len() != client_tools.len() + ours.len() || sent_tools[..client_tools.len()] != client_tools[..] {
        return Err(format!("client tools {client_tools:?} and ours {ours:?} became {sent_tools:?}"));
    }
    let added: Vec<&str> = sent_tools[client_tools.len()..]
        .iter()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect();
    if added != ours {
        return Err(format!("MCP tools sent as {added:?}, expected {ours:?}"));
    }
    Ok(())
}

fn reread(values: Vec<Value>) -> Result<Vec<Value>, String> {
    let bytes = serde_json::to_vec(&values).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// `servers_config.json`: a file that parses gives servers in name order,
/// each name once and not blank, with every `${VAR}` expanded.
pub fn servers_config(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else { return Ok(()) };
    let env: HashMap<String, String> =
        [("TOKEN", "t0k"), ("HOME", "/home/u"), ("EMPTY", ""), ("PORT", "9000"), ("URL", "http://127.0.0.1:1/mcp")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    if let Ok(expanded) = config::expand(text, &env) {
        if expanded.contains("${") {
            return Err(format!("unexpanded variable in {expanded:?}"));
        }
    }
    let Ok(servers) = config::parse(text, &env) else { return Ok(()) };
    for pair in servers.windows(2) {
        if pair[0].name >= pair[1].name {
            return Err(format!("servers out of order: {:?} then {:?}", pair[0].name, pair[1].name));
        }
    }
    for server in &servers {
        let transport = format!("{:?}", server.transport);
        if server.name.trim().is_empty() || transport.contains("${") {
            return Err(format!("server {:?}: {transport}", server.name));
        }
    }
    Ok(())
}
