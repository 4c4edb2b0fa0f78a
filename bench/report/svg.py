"""The latency picture: a percentile plot (HdrHistogram style) of the
scenario-1 latencies of every target, both axes logarithmic, so a target's
median, tail and outliers can all be seen at once, LiteLLM's milliseconds
beside the Rust proxies' microseconds."""

import math

from data import percentile

COLORS = {"direct": "#555555", "proxy": "#d62728", "bare": "#1f77b4", "nginx": "#2ca02c", "litellm": "#9467bd"}
W, H = 900, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 250, 50, 60


def nines(p):
    """Percentile -> x position in "nines": p50 -> 0.3, p90 -> 1, p99 -> 2."""
    return -math.log10(1 - p / 100.0)


def curve(samples, max_x):
    points = []
    steps = 120
    for i in range(steps + 1):
        x = max_x * i / steps
        p = 100.0 * (1 - 10 ** -x)
        points.append((x, percentile(samples, p)))
    return points


def render(series, labels, title, subtitle, legend_title=""):
    """series: {target: sorted latencies in ms}; labels: {target: legend text}."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">no data</text></svg>'
    max_x = min(3.0, max(math.log10(len(v)) for v in series.values()))
    lo = min(min(v) for v in series.values())
    hi = max(max(v) for v in series.values())
    y_lo, y_hi = 10 ** math.floor(math.log10(max(lo, 1e-3))), 10 ** math.ceil(math.log10(max(hi, 1e-3)))
    if y_hi <= y_lo:
        y_hi = y_lo * 10
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x):
        return LEFT + pw * x / max_x

    def sy(ms):
        v = min(max(ms, y_lo), y_hi)
        return TOP + ph * (1 - (math.log10(v) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>',
           f'<text x="{LEFT}" y="40" fill="#444">{esc(subtitle)}</text>']
    out += grid(sx, sy, max_x, y_lo, y_hi, pw, ph)
    out.append(f'<text x="{W - RIGHT + 12}" y="{TOP + 2}" fill="#444">{esc(legend_title)}</text>')
    for i, (name, samples) in enumerate(series.items()):
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve(samples, max_x))
        color = COLORS.get(name, "#000")
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        ly = TOP + 22 + 20 * i
        out.append(f'<line x1="{W - RIGHT + 12}" y1="{ly}" x2="{W - RIGHT + 36}" y2="{ly}" stroke="{color}" stroke-width="3"/>')
        out.append(f'<text x="{W - RIGHT + 42}" y="{ly + 4}">{esc(labels.get(name, name))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def grid(sx, sy, max_x, y_lo, y_hi, pw, ph):
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for p, label in [(0, "p0"), (50, "p50"), (90, "p90"), (99, "p99"), (99.9, "p99.9")]:
        x = nines(p)
        if x > max_x + 1e-9:
            continue
        out.append(f'<line x1="{sx(x):.1f}" y1="{TOP}" x2="{sx(x):.1f}" y2="{TOP + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{TOP + ph + 40}" text-anchor="middle">percentile of requests</text>')
    decade = y_lo
    while decade <= y_hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if v > y_hi * 1.0001:
                break
            y = sy(v)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="{"#ccc" if m == 1 else "#eee"}"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        decade *= 10
    out.append(f'<text x="18" y="{TOP + ph / 2}" transform="rotate(-90 18 {TOP + ph / 2})" '
               'text-anchor="middle">latency, ms (log)</text>')
    return out


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
