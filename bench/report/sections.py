"""The scenario sections of BENCHMARKS.md, one function each."""

from data import ALL, S6_ROWS, TARGETS

LABELS = {
    "direct": "direct (the floor)",
    "proxy": "**mcp-chat-proxy**",
    "bare": "bare pingora",
    "nginx": "nginx",
    "litellm": "LiteLLM",
}


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def s1_section(s1, params):
    lines = [
        "## Scenario 1: added latency at one connection",
        "",
        f"Non-streaming 1 KiB chat completions, one connection, open loop at a fixed rate with latency "
        f"correction (oha): {params['s1_requests']} requests at {params['s1_rate']}/s per repetition; LiteLLM "
        f"{params['s1_litellm_requests']} at {params['s1_litellm_rate']}/s, a quarter of what its latency allows, "
        "so its queue is not measured. *Added* = through the target minus direct.",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in ALL:
        if x in s1:
            r = s1[x]
            lines.append(f"| {LABELS[x]} | {fmt(r['p50'])} | {fmt(r['p99'])} | {fmt(r.get('added_p50'))} | "
                         f"{fmt(r.get('added_p99'))} | {r['failed']} |")
    return lines + [""]


def s2_section(s2, params):
    lines = [
        "## Scenario 2: saturation throughput at 32 connections",
        "",
        f"wrk, closed loop, 2 threads, 32 keep-alive connections, {params['s2_seconds']} s per run. "
        "The load generator, the mock and the target share the machine's cores, so these are ratios "
        "between targets on this box, not the capacity of a dedicated server.",
        "",
    ]
    for size, table in s2.items():
        lines += [f"### {size.upper()}iB responses", "",
                  "| target | req/s | p99 ms | ÷ direct | errors |", "| --- | ---: | ---: | ---: | ---: |"]
        for x in ALL:
            if x in table:
                r = table[x]
                lines.append(f"| {LABELS[x]} | {fmt(r['rps'], 0)} | {fmt(r['p99'], 2)} | {ratio(r.get('ratio'))} | "
                             f"{r['errors']} |")
        p, n, li = (table.get(k, {}).get("rps") for k in ("proxy", "nginx", "litellm"))
        if p and n and li:
            lines += ["", f"mcp-chat-proxy ÷ nginx: {ratio(p / n)}; ÷ bare pingora: "
                      f"{ratio(p / table['bare']['rps']) if table.get('bare', {}).get('rps') else '–'}; "
                      f"÷ LiteLLM: {ratio(p / li)}."]
        lines.append("")
    return lines


def s3_section(s3, params):
    t = s3["timing"]
    lines = [
        "## Scenario 3: streaming",
        "",
        f"Streams of {params['chunks']} chunks every {params['interval_ms']} ms (`bench/src/bin/stream_client.rs`, "
        "one connection per stream). Timing: "
        f"{params['s3_streams']} concurrent streams per repetition; time to first chunk (TTFC) from the "
        "request to the first content chunk; gaps between consecutive chunks as the client receives them.",
        "",
        "| target | TTFC p50 ms | TTFC p99 ms | added TTFC p50 | added TTFC p99 | gap p50 ms | gap p99 ms | "
        "added gap p50 | added gap p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in ALL:
        if x in t:
            r = t[x]
            lines.append(
                f"| {LABELS[x]} | {fmt(r['ttfc_ms_p50'])} | {fmt(r['ttfc_ms_p99'])} | {fmt(r.get('added_ttfc_ms_p50'))} "
                f"| {fmt(r.get('added_ttfc_ms_p99'))} | {fmt(r['gap_ms_p50'], 2)} | {fmt(r['gap_ms_p99'], 2)} | "
                f"{fmt(r.get('added_gap_ms_p50'))} | {fmt(r.get('added_gap_ms_p99'))} |")
    lines += [
        "",
        "### Concurrent streams held",
        "",
        f"All streams of a level start within one second and each lasts "
        f"{params['chunks'] * params['interval_ms'] / 1000:.2f} s, so at the peak all are open at once. A run is "
        f"clean when no stream lost a chunk (or `[DONE]`) and none stalled: no gap between chunks, and no time "
        f"to first chunk, over {params['stall_ms']} ms. A level is held when most of its repetitions are clean "
        f"(targets take turns within each repetition); a target stops at its first level not held. LiteLLM is "
        f"tried at {params['litellm_hold']} only, once. *direct* shows what the mock and the client hold on "
        "this machine.",
        "",
        "| target | held | per level: clean runs; streams lost / stalled; gap p99 ms; TTFC p99 ms (medians) |",
        "| --- | ---: | --- |",
    ]
    for x in ALL:
        h = s3["hold"].get(x)
        if not h:
            continue
        cells = [f"{level}: {v['clean']}/{v['reps']}; {v['lost']:g} / {v['stalled']:g}; {v['gap_p99']:.1f}; "
                 f"{v['ttfc_p99']:.1f}" for level, v in sorted(h["levels"].items())]
        held = h["held"] if h["held"] is not None else f"< {min(h['levels'])}"
        lines.append(f"| {LABELS[x]} | {held} | {' · '.join(cells)} |")
    return lines + [""]


def s4_section(s4, s2, params):
    lines = [
        "## Scenario 4: memory",
        "",
        "Idle: a fresh process after one request. During saturation: the peak over scenario 2's runs. Per "
        f"open stream: in a fresh process, (memory with {params['mem_streams']} streams open − memory before) ÷ "
        "streams open. RSS is summed over the server's processes (nginx's master and workers, LiteLLM's); PSS "
        "splits shared pages among the processes sharing them, so it does not count a library twice.",
        "",
        "| target | idle RSS MiB | idle PSS MiB | peak RSS in scenario 2, MiB | per open stream KiB (RSS) | (PSS) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in TARGETS:
        if x not in s4:
            continue
        r = s4[x]
        peaks = [s2[size][x]["peak_rss_kib"] for size in s2 if x in s2[size] and s2[size][x]["peak_rss_kib"]]
        mib = lambda k: None if k is None else k / 1024  # noqa: E731
        lines.append(f"| {LABELS[x]} | {fmt(mib(r['idle_rss_kib']), 1)} | {fmt(mib(r['idle_pss_kib']), 1)} | "
                     f"{fmt(mib(max(peaks)) if peaks else None, 1)} | {fmt(r['per_stream_kib'], 1)} | "
                     f"{fmt(r['per_stream_pss_kib'], 1)} |")
    return lines + [""]


def cg_section(cg, params):
    lines = ["## Instructions per proxied request (callgrind)", ""]
    if not params["callgrind"]:
        return lines + ["Not run (`--no-callgrind`).", ""]
    lo, hi = params["callgrind_requests"]
    lines += [
        f"Each target under `valgrind --tool=callgrind` ({params['callgrind_threads']} worker thread; nginx as "
        "one process, `master_process off`, for reference) serves "
        f"{lo} requests, then in a fresh process {hi}, one at a time (1 KiB, non-streaming); per request = "
        f"(total({hi}) − total({lo})) ÷ {hi - lo}, so start-up and shutdown cancel out.",
        "",
        f"| target | instructions, {lo} requests | instructions, {hi} requests | per request | ÷ bare pingora |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    bare = (cg.get("bare") or {}).get("per_request")
    for x in ["proxy", "bare", "nginx"]:
        r = cg.get(x)
        if r:
            lines.append(f"| {LABELS[x]} | {r['total_lo']:,} | {r['total_hi']:,} | {r['per_request']:,.0f} | "
                         f"{ratio(r['per_request'] / bare) if bare else '–'} |")
    if cg.get("extra_self"):
        lines += ["", "Where the difference goes: instructions per request spent in each function itself "
                  "(self cost), ours minus bare pingora's, largest first:", "",
                  "| function | extra instructions per request |", "| --- | ---: |"]
        lines += [f"| `{name[:110]}` | {cost:,.0f} |" for name, cost in cg["extra_self"] if cost > 0]
    if cg.get("ours_inclusive"):
        lines += ["", "Our own functions, inclusive of what they call, per request:", "",
                  "| function | instructions per request |", "| --- | ---: |"]
        lines += [f"| `{name[:110]}` | {cost:,.0f} |" for name, cost in cg["ours_inclusive"] if cost > 0]
    loop = cg.get("loop") or {}
    chat, resp = loop.get("chat"), loop.get("responses")
    if chat or resp:
        lines += ["", "One MCP round (scenario 5's request: two upstream calls and one `echo` call on the test MCP "
                  "server over stdio), on each API: the proxy process only (the MCP server is not traced); "
                  f"{(chat or resp)['n_lo']} and {(chat or resp)['n_hi']} requests. The Responses request also "
                  "stores the response (SQLite, `store: true` being the default).", "",
                  "| request | per request | ÷ chat completions |", "| --- | ---: | ---: |"]
        for label, r in [("`/v1/chat/completions`, one tool round", chat), ("`/v1/responses`, the same round", resp)]:
            if r:
                rel = ratio(r["per_request"] / chat["per_request"]) if chat else "–"
                lines.append(f"| {label} | {r['per_request']:,.0f} | {rel} |")
    return lines + [""]


def s6_section(s6, params):
    lines = [
        "## Scenario 6: MCP calls",
        "",
        "The cost of a tool call through the proxy's MCP hub (`mcp_chat_proxy::mcp::Hub::call`: catalog lookup, "
        "timeout, retry bookkeeping, result mapped to text) against the same call made with rmcp directly "
        "(`Peer::call_tool`), on the root crate's test MCP server (`mcp-test-server --tools echo`), over stdio "
        "(a child process) and streamable HTTP (one `mcp-test-server http` on loopback, a session per client). "
        f"`bench/src/bin/mcp_calls.rs`: {params.get('s6_calls', '–')} sequential `echo` calls for p50 and p99, then "
        f"{params.get('s6_concurrency', '–')} concurrent callers for {params.get('s6_seconds', '–')} s for calls "
        "per second; client and server share the machine's cores. *Hub ÷ direct* is p50 / p99 / calls per second "
        "through the hub divided by rmcp's, within the same repetition: above 1× for latency, below 1× for calls "
        "per second is what the hub costs.",
        "",
    ]
    if not s6:
        return lines + ["Not measured in this run.", ""]
    lines += ["| transport | path | p50 ms | p99 ms | calls/s | hub ÷ direct (p50 / p99 / calls/s) | errors |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for key in S6_ROWS:
        if key not in s6:
            continue
        r = s6[key]
        transport, path = key
        rel = "–"
        if path == "hub" and "ratio_p50_ms" in r:
            rel = f"{ratio(r['ratio_p50_ms'])} / {ratio(r['ratio_p99_ms'])} / {ratio(r['ratio_calls_per_s'])}"
        label = {"stdio": "stdio", "http": "streamable HTTP"}[transport]
        who = {"hub": "**hub**", "direct": "rmcp direct"}[path]
        lines.append(f"| {label} | {who} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['calls_per_s'], 0)} | "
                     f"{rel} | {r['errors']} |")
    return lines + [""]


def s5_section(s5, params):
    lines = [
        "## Scenario 5: tool loop",
        "",
        "A second instance of the proxy (same binary and `conf/`) with one MCP server, the test server over "
        "stdio exposing `echo`. The mock answers a model named `mock-tool` with a native `tool_calls` message "
        "calling `echo` with `{\"text\": \"x\"}`, and with its 1 KiB text once the conversation holds the tool's "
        f"result. oha, closed loop, one connection, {params.get('s5_requests', '–')} requests per case and repetition. "
        "*Added* for the loop's modes is over the same request with the loop off (`x-mcp-tools: off`, proxied "
        "as sent); for *loop off* it is over direct.",
        "",
    ]
    if not s5:
        return lines + ["Not measured in this run.", ""]
    labels = {
        "direct": "direct to the mock, no tool needed",
        "off": "proxy, `x-mcp-tools: off`",
        "native": "proxy, `x-mcp-tool-mode: native`, no tool needed",
        "prompt": "proxy, `x-mcp-tool-mode: prompt`, no tool needed",
        "round": "proxy, native, **one tool round**",
        "responses": "proxy, `/v1/responses`, **the same tool round** (added: over the round above)",
        "up1": "direct: the round's first upstream call",
        "up2": "direct: the round's second upstream call",
    }
    lines += ["| request | p50 ms | p99 ms | added p50 ms | added p99 ms | p50 ÷ its baseline | failed |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case, label in labels.items():
        if case in s5:
            r = s5[case]
            if case == "round":
                extra = "– | – | –"
            else:
                extra = f"{fmt(r.get('added_p50'))} | {fmt(r.get('added_p99'))} | {ratio(r.get('ratio_p50'))}"
            lines.append(f"| {label} | {fmt(r['p50'])} | {fmt(r['p99'])} | {extra} | {r['failed']} |")
    rnd = s5.get("round", {})
    if "parts_p50" in rnd:
        lines += ["", f"One tool round takes {fmt(rnd['p50'])} ms at p50 against {fmt(rnd['parts_p50'])} ms for its "
                  f"parts measured alone (the two upstream calls direct to the mock, plus {fmt(rnd['tool_p50'])} ms "
                  "for an `echo` call with rmcp directly over stdio from scenario 6): "
                  f"{ratio(rnd.get('ratio_p50'))}, {fmt(rnd.get('added_p50'))} ms added by the loop "
                  "(medians over repetitions of the per-repetition figures). Besides the loop's own work, the round "
                  "includes the client's hop to the proxy, which the parts measured alone do not."]
    return lines + [""]


