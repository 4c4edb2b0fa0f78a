#!/usr/bin/env python3
"""Writes the hand-made seed inputs into corpus/<target>/: real-shaped samples
of what each parser meets (OpenAI-style streams, model replies, chat requests,
servers_config.json files). Run once; the fuzzer grows the corpus from them."""
import json, os, struct, hashlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")

def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def chunk(delta, finish=None, index=0, **extra):
    c = {"id": "chatcmpl-9xQ2", "object": "chat.completion.chunk", "created": 1718000000,
         "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_2f406b9113",
         "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    c.update(extra)
    return c

def sse(items, nl="\n"):
    out = ""
    for it in items:
        if isinstance(it, str):
            out += it
        else:
            out += "data: " + json.dumps(it, separators=(",", ":")) + nl + nl
    return out + "data: [DONE]" + nl + nl

def tc(index, id=None, name=None, args=None):
    d = {"index": index}
    if id:
        d["id"] = id
        d["type"] = "function"
    f = {}
    if name is not None: f["name"] = name
    if args is not None: f["arguments"] = args
    d["function"] = f
    return d

# --- streams -----------------------------------------------------------------
weather_args = ['{"', 'location', '":"', 'Paris', ', France', '","unit":"', 'celsius', '"}']
streams = {
    "openai-one-call": sse([chunk({"role": "assistant", "content": None, "tool_calls": [tc(0, "call_Vx7", "get_weather", "")]})]
        + [chunk({"tool_calls": [tc(0, args=a)]}) for a in weather_args]
        + [chunk({}, "tool_calls")]),
    "openai-parallel": sse([chunk({"role": "assistant", "tool_calls": [tc(0, "call_a", "echo", "")]}),
        chunk({"tool_calls": [tc(0, args='{"text":')]}),
        chunk({"tool_calls": [tc(1, "call_b", "add", '{"a":')]}),
        chunk({"tool_calls": [tc(1, args='1,"b":2}')]}),
        chunk({"tool_calls": [tc(0, args='"hi"}')]}),
        chunk({}, "tool_calls")]),
    "openai-text-usage": sse([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}),
        chunk({"content": " there \u00e9\U0001F389"}), chunk({}, "stop"),
        {"id": "chatcmpl-9xQ2", "object": "chat.completion.chunk", "created": 1718000000, "model": "gpt-4o",
         "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}]),
    "vllm-name-repeated": sse([chunk({"tool_calls": [tc(0, "chatcmpl-tool-1", "search", '{"q"')]}),
        chunk({"tool_calls": [tc(0, None, "search", ': "rust"}')]}), chunk({}, "tool_calls")]),
    "ollama-whole-call": sse([chunk({"role": "assistant", "content": "",
        "tool_calls": [{"id": "call_x1", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]}),
        chunk({}, "tool_calls")]),
    "name-in-parts": sse([chunk({"tool_calls": [tc(0, "c1", "get_", "")]}), chunk({"tool_calls": [tc(0, None, "weather", "{}")]})]),
    "openrouter-comments-crlf": ": OPENROUTER PROCESSING\r\n\r\n" + sse([chunk({"content": "ok"}), chunk({}, "stop")], "\r\n"),
    "error-event": sse([chunk({"content": "par"}), {"error": {"message": "upstream overloaded", "type": "server_error", "code": 529}}]),
    "events-and-ids": "event: endpoint\r\ndata: /messages?sessionId=1\r\n\r\n: keep-alive\n\ndata: {\"a\":1}\ndata: {\"b\":2}\n\nid: 7\rdata:x\r\r",
    "cut-mid-event": "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\"",
    "huge-index": sse([chunk({"tool_calls": [tc(4294967295, "c", "echo", "{}")]}), chunk({"tool_calls": [tc(7, None, None, "x")]})]),
}
for name, text in streams.items():
    put("tool_call_stream", name, text)
    data = text.encode()
    n = len(data)
    cuts = [n // 3, (2 * n) // 3]
    put("sse_decoder", name, bytes([255, 2]) + b"".join(struct.pack("<H", c % 65536) for c in cuts) + data)
put("sse_decoder", "small-cap", bytes([0, 1, 5, 0]) + b"data: 0123\n\ndata: 0123456789abcdef\n\n")
put("sse_decoder", "cr-at-cut", bytes([1, 1, 10, 0]) + b"data: abc\n\r\ndata: d\n\n")

# --- model replies in prompt mode --------------------------------------------
replies = {
    "bare": '{"tool": "echo", "arguments": {"text": "hi"}}',
    "fenced": 'I will look that up.\n```json\n{"tool": "search", "arguments": {"query": "rust sse", "limit": 5}}\n```',
    "name-alias": '{"name": "get_weather", "arguments": {"location": "Paris"}}',
    "arguments-string": '{"tool":"add","arguments":"{\\"a\\": 1, \\"b\\": 2}"}',
    "llama-parameters": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}',
    "hermes-tags": '<tool_call>\n{"name": "search", "arguments": {"q": "weather"}}\n</tool_call>',
    "prose": "The capital of France is Paris. Sets look like {a, b}; code: fn f() { g() }",
    "data-not-call": 'Here is the JSON you asked for: {"name": "Alice", "age": 30, "tags": ["x"]}',
    "truncated": '{"tool": "echo", "arguments": {"text": "h',
    "unknown-tool": '```\n{"tool": "rm_rf", "arguments": {"path": "/"}}\n```',
    "unicode": "Voil\u00e0 \u2014 \u00e7a marche \U0001F389 {\"tool\":\"echo\",\"arguments\":{\"text\":\"\u00e9\"}} \u2713",
    "leading-blank": "\n\n  {\"tool\": \"search\"}",
    "fence-start": "``",
    "two-calls": '{"tool":"echo","arguments":{"text":"a"}} {"tool":"add","arguments":{"a":1,"b":2}}',
    "escapes": '{"tool":"echo","arguments":{"text":"a } b \\" {\\\\"}}',
}
for name, text in replies.items():
    put("prompt_detector", name, text)

# --- chat requests -----------------------------------------------------------
weather_tool = {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
echo_tool = {"type": "function", "function": {"name": "echo", "description": "client echo", "parameters": {}}}
requests = {
    "simple": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
    "stream-usage": {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "temperature": 0.2},
    "client-tools": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [weather_tool, echo_tool], "tool_choice": "auto", "parallel_tool_calls": False},
    "tool-turns": {"model": "gpt-4o", "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "You are terse."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is 1+2?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1,\"b\":2}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"}], "tools": [echo_tool]},
    "tool-choice-none": {"model": "m", "messages": [{"role": "user", "content": "x", "name": "bob"}], "tool_choice": "none", "tools": None},
    "vendor-fields": {"model": "llama3", "messages": [], "response_format": {"type": "json_object"}, "seed": 7,
        "extra_body": {"top_k": 40}, "stream": False},
}
for name, body in requests.items():
    put("chat_request", name, json.dumps(body))
put("chat_request", "bad-messages", '{"model": "m", "messages": "hi"}')
put("chat_request", "not-json", '{"model": "m", "messages": [')

# --- servers_config.json -----------------------------------------------------
with open(os.path.join(HERE, "..", "..", "servers_config.json")) as f:
    put("servers_config", "repo-default", f.read())
configs = {
    "three-transports": {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "${HOME}/data"], "env": {"TOKEN": "${TOKEN}"}, "cwd": "/tmp"},
        "search": {"type": "sse", "url": "https://mcp.example/sse", "headers": {"Cookie": "c=${TOKEN}"}},
        "db": {"type": "streamable-http", "url": "http://127.0.0.1:${PORT}/mcp", "timeout_seconds": 30, "retries": 2, "max_result_bytes": 65536},
        "off": {"command": "x", "disabled": True}}},
    "http-aliases": {"mcpServers": {"a": {"type": "http", "url": "${URL}"}, "b": {"type": "streamableHttp", "url": "https://x.test/mcp"}}},
    "errors": {"mcpServers": {"s": {"comand": "x"}}},
    "bad-url": {"mcpServers": {"s": {"type": "sse", "url": "ftp://x"}}},
    "undefined-var": {"mcpServers": {"s": {"command": "x", "env": {"A": "${NOPE}"}}}},
    "empty": {},
}
for name, body in configs.items():
    put("servers_config", name, json.dumps(body, indent=2))
