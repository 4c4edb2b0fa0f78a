"""Reads bench/run's raw results and turns them into figures.

Every figure is computed per repetition and then the median over the
repetitions is taken; an "added" figure is (through the target) minus
(direct to the mock) within the same repetition, so drifting machine noise
cancels as far as it can.
"""

import csv
import glob
import json
import math
import os
import re
import statistics

TARGETS = ["proxy", "bare", "nginx", "litellm"]
ALL = ["direct"] + TARGETS


def load_json(path):
    with open(path) as f:
        return json.load(f)


def reps_of(pattern):
    """{rep number: path} for files named ...rep<N>.<ext>."""
    found = {}
    for path in glob.glob(pattern):
        m = re.search(r"rep(\d+)\.\w+$", path)
        if m:
            found[int(m.group(1))] = path
    return found


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(p / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def added(per_rep_x, per_rep_direct):
    """Median over repetitions of (target - direct) in the same repetition."""
    return median([per_rep_x[r] - per_rep_direct[r] for r in per_rep_x if r in per_rep_direct])


def s1(raw):
    """Latency at one connection: per target p50/p99, added p50/p99, samples."""
    out = {}
    per_rep = {}
    for x in ALL:
        reps = reps_of(os.path.join(raw, "s1", x, "rep*.csv"))
        if not reps:
            continue
        p50, p99, samples, failed = {}, {}, [], 0
        for rep, path in reps.items():
            with open(path) as f:
                rows = list(csv.DictReader(f))
            ok = sorted(float(r["request-duration"]) * 1000 for r in rows if r.get("status") == "200")
            failed += len(rows) - len(ok)
            p50[rep], p99[rep] = percentile(ok, 50), percentile(ok, 99)
            samples.extend(ok)
        per_rep[x] = (p50, p99)
        out[x] = {"p50": median(p50.values()), "p99": median(p99.values()), "samples": sorted(samples),
                  "failed": failed, "reps": len(reps)}
    if "direct" in per_rep:
        for x in TARGETS:
            if x in per_rep:
                out[x]["added_p50"] = added(per_rep[x][0], per_rep["direct"][0])
                out[x]["added_p99"] = added(per_rep[x][1], per_rep["direct"][1])
    return out


def s2(raw):
    """Saturation: {size: {target: {rps, p99, errors, ratio, mem}}}."""
    out = {}
    for size in ["1k", "16k"]:
        table = {}
        rps_by_rep = {}
        for x in ALL:
            reps = reps_of(os.path.join(raw, "s2", f"{x}-{size}", "rep*.json"))
            if not reps:
                continue
            rps, p99, errors = {}, {}, 0
            for rep, path in reps.items():
                r = load_json(path)
                rps[rep] = r["requests"] / (r["duration_us"] / 1e6)
                p99[rep] = r["latency_us"]["p99"] / 1000.0
                errors += sum(r["errors"].values())
            mems = [load_json(p) for p in reps_of(os.path.join(raw, "s2", f"{x}-{size}", "mem-rep*.json")).values()]
            rps_by_rep[x] = rps
            table[x] = {"rps": median(rps.values()), "p99": median(p99.values()), "errors": errors,
                        "peak_rss_kib": max((m["rss_kib"] for m in mems), default=None),
                        "peak_pss_kib": max((m["pss_kib"] for m in mems), default=None)}
        if "direct" in rps_by_rep:
            for x in TARGETS:
                if x in rps_by_rep:
                    d = rps_by_rep["direct"]
                    table[x]["ratio"] = median([rps_by_rep[x][r] / d[r] for r in rps_by_rep[x] if r in d])
        out[size] = table
    return out


def s3_timing(raw):
    out = {}
    per_rep = {}
    for x in ALL:
        reps = reps_of(os.path.join(raw, "s3", "timing", x, "rep*.json"))
        if not reps:
            continue
        runs = {rep: load_json(p) for rep, p in reps.items()}
        fig = {}
        for key in ["ttfc_ms", "gap_ms"]:
            for p in ["p50", "p99"]:
                fig[f"{key}_{p}"] = {rep: r[key][p] for rep, r in runs.items()}
        per_rep[x] = fig
        out[x] = {k: median(v.values()) for k, v in fig.items()}
        out[x]["lost"] = sum(r["lost"] for r in runs.values())
        out[x]["stalled"] = sum(r["stalled"] for r in runs.values())
    if "direct" in per_rep:
        for x in TARGETS:
            if x in per_rep:
                for k in per_rep[x]:
                    out[x]["added_" + k] = added(per_rep[x][k], per_rep["direct"][k])
    return out


def clean(run):
    return run["lost"] == 0 and run["stalled"] == 0


def s3_hold(raw):
    """{target: {"levels": {level: summary}, "held": highest level held}}: a
    level is held when most of its repetitions lost no chunk and had no
    stall, and so was every level below it."""
    out = {}
    for x in ALL:
        files = glob.glob(os.path.join(raw, "s3", "hold", x, "*-rep*.json"))
        if not files:
            continue
        runs = {}
        for path in files:
            level = int(os.path.basename(path).split("-")[0])
            runs.setdefault(level, []).append(load_json(path))
        levels, held, unbroken = {}, None, True
        for level in sorted(runs):
            rs = runs[level]
            ok = sum(clean(r) for r in rs)
            levels[level] = {"reps": len(rs), "clean": ok, "lost": median(r["lost"] for r in rs),
                             "stalled": median(r["stalled"] for r in rs),
                             "gap_p99": median(r["gap_ms"]["p99"] for r in rs),
                             "ttfc_p99": median(r["ttfc_ms"]["p99"] for r in rs)}
            unbroken = unbroken and ok * 2 > len(rs)
            if unbroken:
                held = level
        out[x] = {"levels": levels, "held": held}
    return out


def s4(raw):
    out = {}
    for x in TARGETS:
        idle = [load_json(p) for p in reps_of(os.path.join(raw, "s4", x, "idle-rep*.json")).values()]
        if x == "litellm" and os.path.exists(os.path.join(raw, "s4", "litellm-idle.json")):
            idle = [load_json(os.path.join(raw, "s4", "litellm-idle.json"))]
        streams = [load_json(p) for p in reps_of(os.path.join(raw, "s4", x, "streams-rep*.json")).values()]
        if not idle and not streams:
            continue
        per_stream = [(s["rss_open_kib"] - s["rss_before_kib"]) / s["max_open"] for s in streams if s["max_open"]]
        per_stream_pss = [(s["pss_open_kib"] - s["pss_before_kib"]) / s["max_open"] for s in streams if s["max_open"]]
        out[x] = {"idle_rss_kib": median(m["rss_kib"] for m in idle),
                  "idle_pss_kib": median(m["pss_kib"] for m in idle),
                  "per_stream_kib": median(per_stream), "per_stream_pss_kib": median(per_stream_pss),
                  "open": median(s["max_open"] for s in streams),
                  "stream_lost": sum(s["lost"] + s["stalled"] for s in streams)}
    return out


S6_ROWS = [("stdio", "hub"), ("stdio", "direct"), ("http", "hub"), ("http", "direct")]


def s6(raw):
    """MCP calls: {(transport, path): {p50_ms, p99_ms, calls_per_s, errors, reps}}, and for the hub
    rows the median over repetitions of hub ÷ direct (same transport, same repetition)."""
    per_rep = {}
    for rep, path in reps_of(os.path.join(raw, "s6", "rep*.jsonl")).items():
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    per_rep.setdefault((r["transport"], r["path"]), {})[rep] = r
    out = {}
    for key, runs in per_rep.items():
        out[key] = {k: median(r[k] for r in runs.values()) for k in ["p50_ms", "p99_ms", "calls_per_s"]}
        out[key]["errors"] = sum(r["errors"] for r in runs.values())
        out[key]["reps"] = len(runs)
    for transport in {t for t, _ in per_rep}:
        hub, direct = per_rep.get((transport, "hub")), per_rep.get((transport, "direct"))
        if not hub or not direct:
            continue
        for k in ["p50_ms", "p99_ms", "calls_per_s"]:
            out[(transport, "hub")]["ratio_" + k] = median(
                [hub[r][k] / direct[r][k] for r in hub if r in direct and direct[r][k]])
    return out


S5_CASES = ["direct", "off", "native", "prompt", "round", "responses", "up1", "up2"]


def _oha_ms(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    ok = sorted(float(r["request-duration"]) * 1000 for r in rows if r.get("status") == "200")
    return ok, len(rows) - len(ok)


def _ratio(per_rep_x, per_rep_base):
    """Median over repetitions of target ÷ base in the same repetition."""
    return median([per_rep_x[r] / per_rep_base[r] for r in per_rep_x if per_rep_base.get(r)])


def s5(raw):
    """The tool loop: per case p50/p99 (medians over repetitions); "added" figures of the loop's modes
    over the same request with the loop off; and one tool round against the sum of its parts (its two
    upstream calls direct to the mock, plus scenario 6's direct stdio tool call p50 of the same repetition)."""
    per_rep, out = {}, {}
    for case in S5_CASES:
        reps = reps_of(os.path.join(raw, "s5", case, "rep*.csv"))
        if not reps:
            continue
        p50, p99, failed = {}, {}, 0
        for rep, path in reps.items():
            ok, bad = _oha_ms(path)
            failed += bad
            p50[rep], p99[rep] = percentile(ok, 50), percentile(ok, 99)
        per_rep[case] = (p50, p99)
        out[case] = {"p50": median(p50.values()), "p99": median(p99.values()), "failed": failed}
    if "off" in per_rep:
        for case in ["native", "prompt"]:
            if case in per_rep:
                out[case]["added_p50"] = added(per_rep[case][0], per_rep["off"][0])
                out[case]["added_p99"] = added(per_rep[case][1], per_rep["off"][1])
                out[case]["ratio_p50"] = _ratio(per_rep[case][0], per_rep["off"][0])
    if "responses" in per_rep and "round" in per_rep:
        # The Responses surface over the same one-round request on chat completions.
        out["responses"]["added_p50"] = added(per_rep["responses"][0], per_rep["round"][0])
        out["responses"]["added_p99"] = added(per_rep["responses"][1], per_rep["round"][1])
        out["responses"]["ratio_p50"] = _ratio(per_rep["responses"][0], per_rep["round"][0])
    if "off" in per_rep and "direct" in per_rep:
        out["off"]["added_p50"] = added(per_rep["off"][0], per_rep["direct"][0])
        out["off"]["added_p99"] = added(per_rep["off"][1], per_rep["direct"][1])
        out["off"]["ratio_p50"] = _ratio(per_rep["off"][0], per_rep["direct"][0])
    tool = {}
    for rep, path in reps_of(os.path.join(raw, "s6", "rep*.jsonl")).items():
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    if (r["transport"], r["path"]) == ("stdio", "direct"):
                        tool[rep] = r["p50_ms"]
    if all(c in per_rep for c in ["round", "up1", "up2"]):
        rnd, u1, u2 = per_rep["round"][0], per_rep["up1"][0], per_rep["up2"][0]
        parts = {r: u1[r] + u2[r] + tool.get(r, 0.0) for r in rnd if r in u1 and r in u2}
        out["round"]["parts_p50"] = median(parts.values())
        out["round"]["tool_p50"] = median(tool.values())
        out["round"]["added_p50"] = median([rnd[r] - parts[r] for r in parts])
        out["round"]["ratio_p50"] = _ratio({r: rnd[r] for r in parts}, parts)
    return out
