#!/usr/bin/env python3
"""Writes BENCHMARKS.md and the latency picture from bench/run's raw results.

Usage: report/report.py --raw bench/out/raw --report BENCHMARKS.md --svg bench/latency.svg --root .
Standard library only. Every figure is a median over repetitions (see report_data).
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess

import callgrind
import data
import soak
import svg
from sections import cg_section, fmt, ratio, s1_section, s2_section, s3_section, s4_section, s5_section, s6_section

def command(*argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine(root):
    cpu = "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    for line in lscpu.splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    with open(os.path.join(root, "Cargo.lock")) as f:
        m = re.search(r'name = "pingora"\nversion = "([^"]+)"', f.read())
    try:
        litellm = importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        litellm = "not installed"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem_gib, "kernel": platform.release(),
        "versions": {
            "pingora": m.group(1) if m else "unknown", "nginx": command("nginx", "-v").replace("nginx version: ", ""),
            "LiteLLM": litellm, "oha": command("oha", "--version"), "wrk": command("wrk", "-v").split(" [")[0],
            "rustc": command("rustc", "--version"), "valgrind": command("valgrind", "--version"),
        },
    }


def header(params, m, svg_rel):
    reps = params["reps"]
    quick = params["mode"] == "quick"
    lines = [
        "# Benchmarks",
        "",
        f"Written by `bench/run{' --quick' if quick else ''}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, measuring the proxy at commit "
        f"{params['proxy_rev']}; "
        "do not edit by hand. How the harness works: [bench/README.md](bench/README.md).",
        "",
    ]
    if quick:
        lines += ["> **Quick mode**: one repetition of short runs. It proves the harness works end to end; "
                  "its figures are not for comparison.", ""]
    v = m["versions"]
    lines += [
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['mem_gib']:.0f} GiB, Linux {m['kernel']}; "
        "shared with other work, so expect noise, above all in the p99 columns. One-minute load average "
        f"{params['loadavg']['start']} before the scenarios (an idle machine shows about 0) and "
        f"{params['loadavg']['end']} after them (the run's own load included).",
        f"- **Placement**: {params['placement']}. Every server under test runs {params['threads']} worker threads "
        f"(processes for nginx and LiteLLM); the mock runs {params['mock_threads']}.",
        f"- **Repetitions**: every figure is the median of {reps} repetition{'s' if reps > 1 else ''}"
        f"{' (quick mode)' if quick else ''}; an *added* figure is (through the target) minus (direct) "
        "within the same repetition, so it can come out slightly negative when a difference is below the noise.",
        f"- **Versions**: pingora {v['pingora']}, nginx {v['nginx']}, LiteLLM {v['LiteLLM']}, {v['oha']}, "
        f"{v['wrk']}, {v['rustc']}, {v['valgrind']}.",
        "- **Mock upstream** (`bench/src/bin/fast_mock.rs`, hyper, TCP_NODELAY): canned chat completions of "
        f"1 KiB and 16 KiB; streams of {params['chunks']} chunks every {params['interval_ms']} ms, first "
        f"token after {params['first_token_ms']} ms.",
        "- **Targets**: our proxy (release build, `RUST_LOG=warn`, the repository's `conf/`, no MCP servers, so "
        "chat requests take the transparent path); a bare pingora "
        "`ProxyHttp` of the same pingora version and features (`bench/src/bin/bare_pingora.rs`), which "
        "tells pingora's cost from ours; Debian's nginx as a plain `proxy_pass` with upstream keep-alive and "
        "`proxy_buffering off` (`bench/conf/nginx.conf.in`); LiteLLM's proxy from PyPI with the mock as an "
        "OpenAI-compatible model (`bench/conf/litellm.yaml.in`).",
        "",
        f"![Latency percentiles at one connection]({svg_rel})",
        "",
    ]
    return lines


def goals(r):
    s1, s2, s3, s4, cg = r["s1"], r["s2"], r["s3"], r["s4"], r["cg"]
    g = lambda d, *keys: _dig(d, *keys)  # noqa: E731
    rows = []

    def row(goal, measured, ok):
        rows.append(f"| {goal} | {measured} | {'–' if ok is None else ('met' if ok else '**not met**')} |")

    a, n = g(s1, "proxy", "added_p99"), g(s1, "nginx", "added_p99")
    row("added p99 at one connection ≤ nginx's", f"{fmt(a)} ms vs nginx {fmt(n)} ms", None if None in (a, n) else a <= n)
    row("added p99 at one connection < 1 ms (more means a bug; 40 ms means Nagle)", f"{fmt(a)} ms",
        None if a is None else a < 1.0)
    for size in ["1k", "16k"]:
        p, n, l = g(s2, size, "proxy", "rps"), g(s2, size, "nginx", "rps"), g(s2, size, "litellm", "rps")
        row(f"saturation ({size.upper()}iB) ≥ nginx's", f"{fmt(p, 0)} vs {fmt(n, 0)} req/s",
            None if None in (p, n) else p >= n)
        row(f"saturation ({size.upper()}iB) ≥ 20× LiteLLM's", f"{ratio(p / l) if p and l else '–'}",
            None if not (p and l) else p >= 20 * l)
    t = g(s3, "timing", "proxy", "added_ttfc_ms_p99")
    row("added time to first chunk < 0.3 ms p99", f"{fmt(t)} ms", None if t is None else t < 0.3)
    idle = g(s4, "proxy", "idle_rss_kib")
    row("idle RSS < 20 MiB", f"{fmt(idle / 1024 if idle else None, 1)} MiB", None if idle is None else idle < 20 * 1024)
    per = g(s4, "proxy", "per_stream_kib")
    row("< 64 KiB per open stream", f"{fmt(per, 1)} KiB", None if per is None else per < 64)
    pr, br = g(cg, "proxy", "per_request"), g(cg, "bare", "per_request")
    row("instructions per request within 15% of bare pingora",
        f"{fmt(pr, 0)} vs {fmt(br, 0)} ({ratio(pr / br) if pr and br else '–'})",
        None if not (pr and br) else pr <= 1.15 * br)
    return ["## Goals", "", "Reported against, not asserted.", "", "| goal | measured | |", "| --- | --- | --- |"] + rows + [""]


def _dig(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    with open(os.path.join(args.raw, "params.json")) as f:
        params = json.load(f)
    results = {
        "s1": data.s1(args.raw),
        "s2": data.s2(args.raw),
        "s3": {"timing": data.s3_timing(args.raw), "hold": data.s3_hold(args.raw)},
        "s4": data.s4(args.raw),
        "s5": data.s5(args.raw),
        "s6": data.s6(args.raw),
        "cg": callgrind.summary(args.raw) if params["callgrind"] else {},
    }
    svg_rel = os.path.relpath(args.svg, os.path.dirname(os.path.abspath(args.report)))
    m = machine(args.root)
    lines = header(params, m, svg_rel) + goals(results)
    lines += s1_section(results["s1"], params) + s2_section(results["s2"], params)
    lines += s3_section(results["s3"], params) + s4_section(results["s4"], results["s2"], params)
    lines += cg_section(results["cg"], params) + s5_section(results["s5"], params)
    lines += s6_section(results["s6"], params)
    t = params["seconds"]
    lines += ["## This run", "",
              f"{t['total']} s in all: {t['setup']} s installing and building, {t['scenarios']} s of scenarios, "
              f"the rest under callgrind. Raw results: `bench/out/raw/` (not committed).", ""]
    # The soak section comes from bench/soak, not from this run: keep it.
    text = soak.keep_section(args.report, "\n".join(lines))
    with open(args.report, "w") as f:
        f.write(text)
    series = {x: results["s1"][x]["samples"] for x in data.ALL if x in results["s1"]}
    # The legend gives the pooled samples' own percentiles, which is what the
    # curves show (the tables give medians over repetitions).
    labels = {x: f"{SHORT[x]}  {data.percentile(v, 50):.2f} / {data.percentile(v, 99):.2f}"
              for x, v in series.items()}
    reps = params["reps"]
    subtitle = (f"Non-streaming 1 KiB chat completions, open loop at a fixed rate; the {reps} repetition"
                f"{'s' if reps > 1 else ''} pooled. Lower is better; the right end is the tail.")
    with open(args.svg, "w") as f:
        f.write(svg.render(series, labels, "Latency at one connection, by percentile", subtitle,
                           "p50 / p99 ms, pooled"))


SHORT = {"direct": "direct", "proxy": "mcp-chat-proxy", "bare": "bare pingora", "nginx": "nginx", "litellm": "LiteLLM"}

if __name__ == "__main__":
    main()
