"""Parses a Prometheus text exposition from stdin with prometheus_client's own parser
(tests/it/contract.rs). Any line it cannot read makes it exit non-zero. Prints one line
per metric family: NAME TYPE SAMPLES."""

import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError and others for what it cannot read
    print(f"parse error: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
if not families:
    print("no metric families", file=sys.stderr)
    sys.exit(1)
for family in families:
    print(family.name, family.type, len(family.samples))
