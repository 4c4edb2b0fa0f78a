// The console: polls /ui/status for the servers and the upstream, and runs a
// chat over /v1/chat/completions with the progress channel on, showing each
// MCP tool call as it happens. The client key, when the proxy needs one, is
// kept in this page's memory only and sent as the bearer.
"use strict";

const POLL_MS = 1500;
const state = {
  key: null,
  status: null,
  statusText: "",
  // Tools the user turned off in the playground, by "server__original".
  off: new Set(),
  // Tool <details> the user opened in the status view, kept across refreshes.
  open: new Set(),
  messages: [],
  abort: null,
  modelsLoaded: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function headers(extra) {
  const h = Object.assign({}, extra);
  if (state.key) h.authorization = "Bearer " + state.key;
  return h;
}

// ---- status ---------------------------------------------------------------

async function poll() {
  try {
    const r = await fetch("/ui/status", { headers: headers(), cache: "no-store" });
    if (r.status === 401) {
      askForKey(state.key ? "That key was refused." : "");
      return;
    }
    const text = await r.text();
    if (!r.ok) throw new Error("status " + r.status);
    showConsole();
    if (text !== state.statusText) {
      state.statusText = text;
      state.status = JSON.parse(text);
      keepingFocus(() => {
        renderStatus(state.status);
        renderToolChoices(state.status);
      });
    }
    if (!state.modelsLoaded) loadModels();
  } catch (e) {
    setText($("summary"), "The proxy does not answer (" + e.message + "); retrying…");
    $("summary").dataset.reachable = "no";
  }
  setTimeout(poll, POLL_MS);
}

// Re-rendering replaces the nodes: give the focus back to the one that
// replaced the focused node (same id), so a keyboard user is not thrown out.
function keepingFocus(render) {
  const id = document.activeElement && document.activeElement.id;
  render();
  const again = id && document.getElementById(id);
  if (again && again !== document.activeElement) again.focus();
}

function setText(node, text) {
  // An unchanged live region is not written again, so it is not read out again.
  if (node.textContent !== text) node.textContent = text;
}

function askForKey(why) {
  $("console").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = why;
  $("summary").textContent = "A client key is needed.";
  $("key").focus();
}

function showConsole() {
  $("key-form").hidden = true;
  $("console").hidden = false;
}

const STATE_WORDS = {
  connected: "connected",
  starting: "starting",
  reconnecting: "down, reconnecting",
  failed: "failed",
};

function renderStatus(s) {
  const down = s.servers.filter((x) => x.state !== "connected");
  const tools = s.servers.reduce((n, x) => n + x.tools.length, 0);
  const summary = $("summary");
  summary.dataset.reachable = "yes";
  setText(summary,
    s.servers.length + " MCP server" + (s.servers.length === 1 ? "" : "s") + ", " +
    tools + " tool" + (tools === 1 ? "" : "s") +
    (down.length ? "; down: " + down.map((x) => x.name).join(", ") : "; all connected") +
    ". Upstream " + (s.upstream.reachable ? "answers." : "does not answer."));

  $("upstream").replaceChildren(
    el("h3", { text: "Upstream" }),
    el("p", {},
      el("code", { text: s.upstream.address }), s.upstream.tls ? " (TLS) " : " ",
      el("span", {
        class: "badge " + (s.upstream.reachable ? "ok" : "bad"),
        "data-upstream": s.upstream.reachable ? "up" : "down",
        text: s.upstream.reachable ? "answers" : "does not answer",
      })),
  );

  const list = $("servers");
  if (!s.servers.length) {
    list.replaceChildren(el("li", { class: "empty", text: "No MCP servers are configured." }));
    return;
  }
  list.replaceChildren(...s.servers.map(serverCard));
}

function serverCard(srv) {
  const ok = srv.state === "connected";
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Transport" }), el("dd", { text: srv.transport }),
    el("dt", { text: "Restarts" }), el("dd", { class: "restarts", text: String(srv.restarts) }),
    el("dt", { text: "Running" }), el("dd", { text: srv.running + " of " + srv.max_concurrent_calls }),
    el("dt", { text: "Queued" }), el("dd", { text: String(srv.queued) }),
  );
  const tools = srv.tools.length
    ? el("ul", { class: "tools" }, ...srv.tools.map((t) => toolItem(srv.name, t)))
    : el("p", { class: "muted", text: ok ? "No tools (for this key)." : "No tools while it is down." });
  return el("li", { class: "server", "data-server": srv.name, "data-state": srv.state },
    el("div", { class: "server-head" },
      el("h3", { text: srv.name }),
      el("span", { class: "badge " + (ok ? "ok" : srv.state === "starting" ? "warn" : "bad"), text: STATE_WORDS[srv.state] || srv.state })),
    srv.error && !ok ? el("p", { class: "error reason", text: srv.error }) : null,
    facts,
    tools);
}

function toolItem(server, t) {
  const id = server + "/" + t.name;
  const details = el("details", { class: "tool", "data-tool": t.name, open: state.open.has(id) },
    el("summary", { id: "tool-summary-" + id }, el("code", { text: t.name }),
      t.original !== t.name ? el("span", { class: "muted", text: " (" + t.original + " on the server)" }) : null),
    el("p", { class: "description", text: t.description || "(no description)" }),
    el("pre", { class: "schema", tabindex: "0", "aria-label": "Input schema of " + t.name, text: JSON.stringify(t.input_schema, null, 2) }));
  details.addEventListener("toggle", () => {
    if (details.open) state.open.add(id);
    else state.open.delete(id);
  });
  return details;
}

// ---- playground -----------------------------------------------------------

function toolKey(server, t) {
  return server + "__" + t.original;
}

function renderToolChoices(s) {
  const box = $("tool-choices");
  const groups = s.servers.filter((srv) => srv.tools.length).map((srv) => {
    const boxes = srv.tools.map((t) => {
      const key = toolKey(srv.name, t);
      const input = el("input", { type: "checkbox", id: "tool-" + key, checked: !state.off.has(key), "data-key": key });
      input.addEventListener("change", () => {
        if (input.checked) state.off.delete(key);
        else state.off.add(key);
        serverBox.checked = srv.tools.every((x) => !state.off.has(toolKey(srv.name, x)));
      });
      return el("span", { class: "choice" }, input, el("label", { for: "tool-" + key, text: t.name }));
    });
    const serverBox = el("input", {
      type: "checkbox", id: "server-" + srv.name,
      checked: srv.tools.every((t) => !state.off.has(toolKey(srv.name, t))),
    });
    serverBox.addEventListener("change", () => {
      for (const t of srv.tools) {
        const key = toolKey(srv.name, t);
        if (serverBox.checked) state.off.delete(key);
        else state.off.add(key);
      }
      renderToolChoices(state.status);
    });
    return el("div", { class: "choice-group" },
      el("span", { class: "choice server-choice" }, serverBox, el("label", { for: "server-" + srv.name, text: srv.name + " (all)" })),
      ...boxes);
  });
  box.replaceChildren(...(groups.length ? groups : [el("p", { class: "muted", text: "No MCP tools available." })]));
}

async function loadModels() {
  state.modelsLoaded = true;
  const select = $("model");
  let ids = [];
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    if (r.ok) ids = ((await r.json()).data || []).map((m) => m.id);
  } catch (e) {
    // The default model below still lets the playground work.
  }
  // The proxy's default model when the upstream lists none; chosen first when it lists it.
  const preferred = state.status && state.status.default_model;
  if (!ids.length && preferred) ids.push(preferred);
  select.replaceChildren(...ids.map((id) => el("option", { value: id, text: id, selected: id === preferred })));
}

// The x-mcp-* headers for the tools the user left on.
function toolHeaders() {
  const h = { "x-mcp-progress": "on", "x-mcp-tool-mode": $("mode").value };
  const all = [];
  for (const srv of (state.status ? state.status.servers : [])) {
    for (const t of srv.tools) all.push(toolKey(srv.name, t));
  }
  const on = all.filter((k) => !state.off.has(k));
  if (all.length && !on.length) h["x-mcp-tools"] = "off";
  else if (on.length < all.length) h["x-mcp-allow"] = on.join(",");
  return h;
}

function bubble(role) {
  const node = el("div", { class: "msg " + role },
    el("div", { class: "who", text: role === "user" ? "You" : "Assistant" }));
  $("transcript").append(node);
  return node;
}

async function send(ev) {
  ev.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.abort) return;
  $("message").value = "";
  state.messages.push({ role: "user", content: text });
  bubble("user").append(el("p", { class: "text", text }));
  const reply = bubble("assistant");
  const rounds = el("div", { class: "rounds" });
  const answer = el("p", { class: "text answer" });
  reply.append(rounds, answer);

  state.abort = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  const body = { model: $("model").value, stream: true, messages: state.messages };
  let content = "";
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(Object.assign({ "content-type": "application/json" }, toolHeaders())),
      body: JSON.stringify(body),
      signal: state.abort.signal,
    });
    if (!r.ok) {
      const err = await r.json().catch(() => ({}));
      throw new Error((err.error && err.error.message) || "status " + r.status);
    }
    const calls = new Map();
    for await (const [name, data] of sseEvents(r.body)) {
      if (data === "[DONE]") break;
      const obj = JSON.parse(data);
      if (name === "mcp.tool_call.started") {
        const call = toolCall(obj);
        calls.set(obj.id, call);
        rounds.append(call.node);
      } else if (name === "mcp.tool_call.done") {
        const call = calls.get(obj.id) || toolCall(obj);
        if (!calls.has(obj.id)) rounds.append(call.node);
        call.finish(obj);
      } else if (obj.error) {
        throw new Error(obj.error.message || "the answer failed");
      } else {
        const delta = obj.choices && obj.choices[0] && obj.choices[0].delta;
        if (delta && delta.content) {
          content += delta.content;
          answer.textContent = content;
        }
      }
    }
    reply.dataset.done = "yes";
    state.messages.push({ role: "assistant", content });
  } catch (e) {
    if (e.name !== "AbortError") {
      reply.append(el("p", { class: "error", role: "alert", text: "Error: " + e.message }));
    }
    state.messages.pop();
  } finally {
    state.abort = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

// One tool call of a round: collapsed, its summary line filled in when it finishes.
function toolCall(obj) {
  const status = el("span", { class: "badge warn", text: "running" });
  const timing = el("span", { class: "muted" });
  const result = el("pre", { class: "result", text: "…" });
  const node = el("details", { class: "call", "data-tool": obj.tool },
    el("summary", {}, "Tool ", el("code", { text: obj.tool }),
      obj.server ? el("span", { class: "muted", text: " on " + obj.server }) : null, " ", status, " ", timing),
    el("div", { class: "label", text: "Arguments" }),
    el("pre", { class: "arguments", text: pretty(obj.arguments) }),
    el("div", { class: "label", text: "Result" }),
    result);
  return {
    node,
    finish(done) {
      status.className = "badge " + (done.is_error ? "bad" : "ok");
      status.textContent = done.is_error ? "error" : "done";
      timing.textContent = done.duration_ms + " ms";
      result.textContent = done.output + (done.truncated ? "\n… (" + done.length + " bytes in all)" : "");
      node.dataset.state = done.is_error ? "error" : "done";
    },
  };
}

function pretty(args) {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch (e) {
    return String(args === undefined ? "" : args);
  }
}

// The events of an SSE body as [name, data] pairs ("" for unnamed events).
async function* sseEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const raw = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "";
      const data = [];
      for (const line of raw.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield [name, data.join("\n")];
    }
  }
}

function init() {
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.key = $("key").value.trim();
    $("key").value = "";
    state.statusText = "";
    $("key-error").textContent = "";
    poll();
  });
  $("chat-form").addEventListener("submit", send);
  $("message").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("chat-form").requestSubmit();
  });
  $("stop").addEventListener("click", () => state.abort && state.abort.abort());
  $("clear").addEventListener("click", () => {
    state.messages = [];
    $("transcript").replaceChildren();
  });
  poll();
}

document.addEventListener("DOMContentLoaded", init);
