#!/usr/bin/env python3
"""Writes the soak section of BENCHMARKS.md from bench/soak's samples.

Usage: report/soak.py --jsonl bench/out/soak/soak.jsonl --report BENCHMARKS.md --rev REV
         --minutes N --workers N --nproc N
The section sits between two markers and replaces the previous one; the
rest of the file is left as it is. report.py keeps the section when it
rewrites the file (see keep_section). Standard library only.
"""

import argparse
import json
import os

BEGIN = "<!-- soak: written by bench/soak, kept by bench/run -->"
END = "<!-- /soak -->"


def extract(text):
    """The soak section of a report, markers included, or None."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start:end + len(END)]


def replace(text, section):
    old = extract(text)
    if old is not None:
        return text.replace(old, section)
    return text.rstrip("\n") + "\n\n" + section + "\n"


def keep_section(report_path, new_text):
    """new_text with the soak section of the file at report_path, if it has one."""
    try:
        with open(report_path) as f:
            section = extract(f.read())
    except OSError:
        section = None
    return new_text if section is None else replace(new_text, section)


def mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f}"


def num(v):
    return "–" if v is None else str(v)


def totals(requests):
    keys = ("ok", "unexpected", "stuck")
    return {k: sum(c.get(k, 0) for c in requests.values()) for k in keys}


def sample_table(samples):
    lines = [
        "| minute | proxy RSS MiB (anonymous) | fds | threads | tokio tasks (serving / hub) | MCP server RSS MiB / fds "
        "| exchanges in the minute | not as expected | load avg |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    previous = {"ok": 0, "unexpected": 0, "stuck": 0}
    for s in samples:
        p, rt = s["proxy"], s["runtime"]
        mcp = (s.get("mcp_servers") or [{}])[0]
        t = totals(s["requests"])
        done = sum(t.values()) - sum(previous.values())
        bad = t["unexpected"] + t["stuck"] - previous["unexpected"] - previous["stuck"]
        previous = t
        lines.append(f"| {s['minute']} | {mib(p['rss_kib'])} ({mib(p.get('rss_anon_kib'))}) | {p['fds']} | {p['threads']} | "
                     f"{num(rt.get('tasks'))} / {num(rt.get('hub_tasks'))} | "
                     f"{mib(mcp.get('rss_kib'))} / {num(mcp.get('fds'))} | {done} | {bad} | {s['loadavg']:.2f} |")
    return lines


def check_table(checks):
    lines = ["| series | from minute | baseline | last | slope per minute | allowed | flat |",
             "| --- | ---: | ---: | ---: | ---: | ---: | :---: |"]
    for c in checks:
        if c["what"].startswith("exchanges"):
            continue
        f = lambda v: "–" if v is None else f"{v:.0f}"
        slope = c["slope_per_sample"]
        lines.append(f"| {c['what']} | {c['baseline_sample']} | {f(c['baseline'])} | {f(c['last'])} | "
                     f"{'–' if slope is None else f'{slope:+.1f}'} | {c['allowed']} | "
                     f"{'yes' if c['ok'] else '**no**'} |")
    return lines


def mix_table(requests):
    lines = ["| kind | behaved | not as expected | stuck |", "| --- | ---: | ---: | ---: |"]
    for name, c in requests.items():
        lines.append(f"| `{name}` | {c['ok']} | {c['unexpected']} | {c['stuck']} |")
    return lines


def section(samples, summary, args):
    t = totals(samples[-1]["requests"]) if samples else {"ok": 0, "unexpected": 0, "stuck": 0}
    verdict = "**flat**: every check below passed" if summary.get("ok") else "**not flat**: see the checks below"
    loads = [s["loadavg"] for s in samples]
    lines = [
        BEGIN,
        "## Soak",
        "",
        f"`bench/soak {args.minutes}` at {args.rev}: {args.minutes} minutes of mixed traffic from "
        f"{args.workers} concurrent clients (closed loop, `bench/src/bin/soak.rs`) through the release proxy "
        "(2 worker threads, the repository's `conf/`) with the test MCP server over stdio (`echo`) and the fast "
        "mock as upstream (32-chunk streams, 5 ms apart). The mix (`bench/src/soak/traffic.rs`): plain and "
        "streamed completions, passthrough (`x-mcp-tools: off`) and through the tool loop; one-round tool "
        "calls, streamed and not; clients hanging up after the first chunk; the upstream answering 500 and "
        "503, closing the connection without answering, and cutting a "
        "stream midway; `/chat` sessions (a turn, a streamed turn, the history, `DELETE`).",
        "",
        "Once after 20 s of warm-up (minute 0) and after every minute, the clients pause (each finishes its "
        "exchange), 2 s pass, and the proxy is read: RSS, open descriptors and threads from `/proc`, live "
        "tokio tasks from `/healthz` (`runtime.tasks` on the serving runtime, `runtime.hub_tasks` on the MCP "
        "hub's). With nothing in flight, what is alive is idle state (pools, keep-alive connections) or a leak.",
        "",
        f"Verdict: {verdict}. {sum(t.values())} exchanges, {t['unexpected']} not as expected, {t['stuck']} stuck "
        f"(a `/chat` session counts as one). Machine: {args.nproc} cores shared with other builds (load average "
        f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} at the samples): throughput here is noise, "
        "the shapes of the series are the result.",
        "",
    ]
    if args.kinds:
        lines += [f"**Only these kinds of the mix**: `{args.kinds}` (`--kinds`).", ""]
    lines += sample_table(samples) + [""]
    checks = summary.get("checks", [])
    start = checks[0]["baseline_sample"] if checks else 2
    lines += [f"Growth is judged from minute {start} (`--baseline-minute`) to the last sample; the slope is "
              "least squares over the same samples. Why not from minute 0: pingora guards upstream reads with "
              "its fast timers, one per 10 ms of deadline per thread, kept in a map until the deadline passes "
              "even when the request is long done; with the 300 s first-byte timeout the map fills for 5 "
              "minutes and then holds level (bounded by the timeout, not by the traffic). With every timeout "
              "at 5 s the same soak stays flat from the start; tokio timers instead would free them early but "
              "cost about 3k more instructions per request.", ""]
    lines += check_table(summary.get("checks", [])) + [""]
    lines += ["Outcomes by kind over the whole soak:", ""] + mix_table(samples[-1]["requests"] if samples else {})
    examples = summary.get("unexpected_examples") or []
    if examples:
        lines += ["", "First exchanges not as expected:", ""] + [f"- `{e[:300]}`" for e in examples[:10]]
    return "\n".join(lines + ["", END])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    for flag in ("--jsonl", "--report", "--rev", "--minutes", "--workers", "--nproc"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--kinds", default="")
    args = ap.parse_args()
    samples, summary = [], {}
    with open(args.jsonl) as f:
        for line in f:
            if line.strip():
                v = json.loads(line)
                if "summary" in v:
                    summary = v["summary"]
                else:
                    samples.append(v)
    text = ""
    if os.path.exists(args.report):
        with open(args.report) as f:
            text = f.read()
    with open(args.report, "w") as f:
        f.write(replace(text, section(samples, summary, args)))


if __name__ == "__main__":
    main()
