"""Helpers of fuzz-api.sh (Python 3 standard library only).

  fuzz_api.py operations IN --not-held-by SCOPE,SCOPE…
      Prints `METHOD /path` of every operation a credential holding those scopes cannot succeed on
      (its security requires a scope the credential lacks), one a line.

  fuzz_api.py check NDJSON --min-share SHARE [--exclude 'METHOD /path']...
      Reads schemathesis' NDJSON events and fails when an operation's share of 2xx answers to the
      positive (valid by the document) cases it was sent is below SHARE, or when it was sent none.
      Each operation's line also gives its slowest answer to any case (the local stack's moto reads
      the whole table per Query: a slow operation shows here before it reaches the timeout).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

METHODS = ("get", "put", "post", "delete", "patch")

def operations(doc):
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def check(path, min_share, excluded):
    """Per operation: positive cases sent, and how many were answered 2xx."""
    sent = defaultdict(int)
    ok = defaultdict(int)
    statuses = defaultdict(lambda: defaultdict(int))
    slowest = defaultdict(float)
    with open(path, encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder", {})
            cases = recorder.get("cases", {})
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = cases.get(case_id, {}).get("value", {})
                mode = case.get("meta", {}).get("generation", {}).get("mode")
                response = interaction.get("response")
                if not response:
                    continue
                label = f"{case.get('method', '').upper()} {case.get('path', '')}"
                slowest[label] = max(slowest[label], response.get("elapsed") or 0.0)
                if mode != "positive":
                    continue
                code = response.get("status_code", 0)
                sent[label] += 1
                statuses[label][code] += 1
                # Success: a 2xx, or the 303 of an operation that answers by redirecting (the
                # connect page's form sends the end user back to the tenant's app).
                if 200 <= code < 300 or code == 303:
                    ok[label] += 1
    return sent, ok, statuses, slowest


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("operations")
    p.add_argument("source")
    p.add_argument("--not-held-by", required=True)
    p = sub.add_parser("check")
    p.add_argument("ndjson")
    p.add_argument("--document", required=True)
    p.add_argument("--min-share", type=float, required=True)
    p.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args(argv)


    if args.command == "operations":
        with open(args.source, encoding="utf-8") as f:
            doc = json.load(f)
        held = set(args.not_held_by.split(","))
        for method, path, op in operations(doc):
            # Each security requirement is an alternative; one the credential meets is enough.
            requirements = op.get("security", doc.get("security", []))
            if requirements and not any(
                all(set(scopes) <= held for scopes in req.values()) for req in requirements
            ):
                print(f"{method.upper()} {path}")
        return 0

    with open(args.document, encoding="utf-8") as f:
        documented = {f"{m.upper()} {p}" for m, p, _ in operations(json.load(f))}
    sent, ok, statuses, slowest = check(args.ndjson, args.min_share, set(args.exclude))
    failed = []
    for label in sorted(documented - set(args.exclude)):
        n, good = sent.get(label, 0), ok.get(label, 0)
        share = good / n if n else 0.0
        codes = " ".join(f"{c}×{k}" for c, k in sorted(statuses[label].items()))
        verdict = "ok" if n and share >= args.min_share else "TOO LOW"
        print(f"  {label:<40} 2xx {good:>4}/{n:<4} {share:6.1%}  {verdict}  slowest {slowest[label]:5.2f} s  ({codes})")
        if verdict != "ok":
            failed.append(label)
    if failed:
        print(
            f"fuzz-api: {len(failed)} operations answered under {args.min_share:.0%} of their valid requests with 2xx: "
            + ", ".join(failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
