"""Reads a /metrics scrape with the Prometheus project's own Python parser
(prometheus_client.parser) and prints every sample as JSON:
{"samples": [{"name": ..., "labels": {...}, "value": ...}], "types": {family: type}}.

Usage: parse_metrics.py FILE
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    samples, types = [], {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples.append({"name": s.name, "labels": s.labels, "value": s.value})
    print(json.dumps({"samples": samples, "types": types}))


if __name__ == "__main__":
    main()
