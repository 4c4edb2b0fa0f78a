"""Instructions per proxied request from bench/run's callgrind runs.

A target served N1 and then (in a fresh process) N2 requests under
callgrind; start-up and shutdown cost the same in both runs, so
(total(N2) - total(N1)) / (N2 - N1) is the cost of one request. The same
difference per function, from callgrind_annotate, shows where it goes.
"""

import glob
import os
import re

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    return None


def runs(raw, target):
    """{requests: callgrind output path} for one target."""
    found = {}
    for path in glob.glob(os.path.join(raw, "callgrind", f"{target}-*.out")):
        m = re.search(r"-(\d+)\.out$", path)
        if m:
            found[int(m.group(1))] = path
    return found


def function_name(location):
    """`file:function'2 [object]` -> `function`: Rust paths keep their `::`;
    the recursion depth mark is dropped, so one function is one row."""
    location = re.sub(r"\s+\[[^\]]*\]$", "", location)
    m = re.search(r"(?<!:):(?!:)", location)
    name = location[m.end():] if m else location
    return re.sub(r"'\d+$", "", name)


def functions(path, combine=lambda a, b: a + b):
    """{function: instructions} from a callgrind_annotate listing. A function
    inlined from several source files has one row per file: their self costs
    add up; inclusive rows overlap, so the caller passes `max` for those."""
    costs = {}
    if not os.path.exists(path):
        return costs
    with open(path) as f:
        for line in f:
            if line.startswith("-- Auto-annotated source"):
                break  # source listings follow: their call lines are not functions
            m = LINE.match(line)
            if m and "PROGRAM TOTALS" not in m.group(2):
                name = function_name(m.group(2))
                cost = int(m.group(1).replace(",", ""))
                costs[name] = combine(costs[name], cost) if name in costs else cost
    return costs


def per_request(raw, target):
    found = runs(raw, target)
    if len(found) < 2:
        return None
    lo, hi = min(found), max(found)
    t_lo, t_hi = total(found[lo]), total(found[hi])
    if t_lo is None or t_hi is None:
        return None
    return {"n_lo": lo, "n_hi": hi, "total_lo": t_lo, "total_hi": t_hi, "per_request": (t_hi - t_lo) / (hi - lo)}


def function_costs(raw, target, kind):
    """{function: instructions per request} (kind: "self" or "incl")."""
    found = runs(raw, target)
    if len(found) < 2:
        return {}
    lo, hi = min(found), max(found)
    combine = max if kind == "incl" else (lambda x, y: x + y)
    a = functions(os.path.join(raw, "callgrind", f"{target}-{lo}.{kind}.txt"), combine)
    b = functions(os.path.join(raw, "callgrind", f"{target}-{hi}.{kind}.txt"), combine)
    return {k: (b.get(k, 0) - a.get(k, 0)) / (hi - lo) for k in set(a) | set(b)}


def summary(raw):
    out = {x: per_request(raw, x) for x in ["proxy", "bare", "nginx"]}
    proxy_self, bare_self = function_costs(raw, "proxy", "self"), function_costs(raw, "bare", "self")
    diff = {k: proxy_self.get(k, 0) - bare_self.get(k, 0) for k in set(proxy_self) | set(bare_self)}
    out["extra_self"] = sorted(diff.items(), key=lambda kv: -kv[1])[:12]
    incl = function_costs(raw, "proxy", "incl")
    ours = {k: v for k, v in incl.items() if "mcp_chat_proxy" in k}
    out["ours_inclusive"] = sorted(ours.items(), key=lambda kv: -kv[1])[:12]
    # One MCP round, on chat completions and on the Responses API (cg_loop).
    out["loop"] = {api: per_request(raw, f"loop_{api}") for api in ["chat", "responses"]}
    return out
