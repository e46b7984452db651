"""Helpers of fuzz-api.sh (Python 3 standard library only).

  fuzz_api.py overlay IN OUT
      Copies the OpenAPI document IN to OUT with the request constraints the API enforces but the
      document does not state yet (each is listed on stderr), so that schemathesis generates data
      the API can accept. Constraints already in IN are left alone; the overlay becomes a no-op once
      functions/api/openapi.json states them all.

  fuzz_api.py operations IN --not-held-by SCOPE,SCOPE…
      Prints `METHOD /path` of every operation a credential holding those scopes cannot succeed on
      (its security requires a scope the credential lacks), one a line.

  fuzz_api.py check NDJSON --min-share SHARE [--exclude 'METHOD /path']...
      Reads schemathesis' NDJSON events and fails when an operation's share of 2xx answers to the
      positive (valid by the document) cases it was sent is below SHARE, or when it was sent none.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import Counter, defaultdict

METHODS = ("get", "put", "post", "delete", "patch")

# `Idempotency-Key`: 1 to 255 visible ASCII characters (the API answers 400 otherwise).
IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
# An https URL with an ASCII host, optional port and path: what the API's URL parser accepts.
HTTPS_URL = "^https://[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[!-~]*)?$"
# `expires_at` must be in the future, which JSON Schema cannot say; examples must at least be.
FUTURE = "2099-12-31T00:00:00Z"


def operations(doc):
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def overlay(doc):
    """Returns (document with the missing constraints, descriptions of what was added)."""
    doc = copy.deepcopy(doc)
    added = []

    def tighten(where, schema, key, value):
        if schema.get(key) != value:
            schema[key] = value
            added.append(f"{where}: {key} = {json.dumps(value)}")

    # Links (declared or inferred from `Location`) name their target by operationId, which OpenAPI
    # requires to be unique: with duplicates, a link to `get` may land on another resource's `get`.
    counts = Counter(op.get("operationId") for _, _, op in operations(doc))
    for method, path, op in operations(doc):
        old = op.get("operationId")
        if old and counts[old] > 1:
            resource = "_".join(
                seg for seg in path.strip("/").split("/") if seg and not seg.startswith("{") and seg != "v1"
            )
            item = "_item" if path.endswith("}") else ""
            op["operationId"] = f"{old}_{resource}{item}".replace("-", "_").replace(".", "_")
            added.append(f"{method.upper()} {path}: operationId {old!r} (not unique) -> {op['operationId']!r}")

    for method, path, op in operations(doc):
        for param in op.get("parameters", []):
            if param.get("in") == "header" and param.get("name", "").lower() == "idempotency-key":
                if param.get("schema") != IDEMPOTENCY_KEY:
                    param["schema"] = dict(IDEMPOTENCY_KEY)
                    added.append(
                        f"{method.upper()} {path} header Idempotency-Key: schema = {json.dumps(IDEMPOTENCY_KEY)}"
                    )

    schemas = doc.get("components", {}).get("schemas", {})
    scope_names = schemas.get("ScopeName", {}).get("enum", [])
    grantable = [s for s in scope_names if s != "admin"]
    for name, field in (("ApiKeyIn", "scopes"), ("OidcIssuerIn", "allowed_scopes")):
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        where = f"components.schemas.{name}.properties.{field}"
        tighten(where, prop, "minItems", 1)
        # `admin` belongs to the deployment alone: never grantable (the API answers 400).
        if grantable and prop.get("items", {}).get("enum") != grantable:
            prop["items"] = {"type": "string", "enum": grantable}
            added.append(f"{where}.items: enum = ScopeName without admin")
    for name in ("ApiKeyIn", "OidcIssuerIn"):
        schema = schemas.get(name, {})
        prop = schema.get("properties", {}).get("expires_at")
        if prop is not None:
            tighten(f"components.schemas.{name}.properties.expires_at", prop, "example", FUTURE)
        example = schema.get("example")
        if isinstance(example, dict) and "expires_at" in example and example["expires_at"] < "2099":
            tighten(f"components.schemas.{name}.example", example, "expires_at", FUTURE)
    issuer = schemas.get("OidcIssuerIn", {}).get("properties", {})
    for field in ("issuer", "jwks_uri"):
        if field in issuer:
            tighten(f"components.schemas.OidcIssuerIn.properties.{field}", issuer[field], "pattern", HTTPS_URL)
    return doc, added


def check(path, min_share, excluded):
    """Per operation: positive cases sent, and how many were answered 2xx."""
    sent = defaultdict(int)
    ok = defaultdict(int)
    statuses = defaultdict(lambda: defaultdict(int))
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
                if mode != "positive" or not response:
                    continue
                label = f"{case.get('method', '').upper()} {case.get('path', '')}"
                code = response.get("status_code", 0)
                sent[label] += 1
                statuses[label][code] += 1
                if 200 <= code < 300:
                    ok[label] += 1
    return sent, ok, statuses


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("overlay")
    p.add_argument("source")
    p.add_argument("target")
    p = sub.add_parser("operations")
    p.add_argument("source")
    p.add_argument("--not-held-by", required=True)
    p = sub.add_parser("check")
    p.add_argument("ndjson")
    p.add_argument("--document", required=True)
    p.add_argument("--min-share", type=float, required=True)
    p.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args(argv)

    if args.command == "overlay":
        with open(args.source, encoding="utf-8") as f:
            doc, added = overlay(json.load(f))
        with open(args.target, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        if added:
            print(
                f"fuzz-api: {args.source} lacks {len(added)} things the API needs stated (unique operation ids, "
                "request constraints it enforces); fuzzing a copy with them added:",
                file=sys.stderr,
            )
            for line in added:
                print(f"  {line}", file=sys.stderr)
        return 0

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
    sent, ok, statuses = check(args.ndjson, args.min_share, set(args.exclude))
    failed = []
    for label in sorted(documented - set(args.exclude)):
        n, good = sent.get(label, 0), ok.get(label, 0)
        share = good / n if n else 0.0
        codes = " ".join(f"{c}×{k}" for c, k in sorted(statuses[label].items()))
        verdict = "ok" if n and share >= args.min_share else "TOO LOW"
        print(f"  {label:<40} 2xx {good:>4}/{n:<4} {share:6.1%}  {verdict}  ({codes})")
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
