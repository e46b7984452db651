#!/usr/bin/env python3
"""Verifies recorded webhook deliveries with the Standard Webhooks reference library.

Usage: verify_webhooks.py SECRET [SECRET...] < deliveries.jsonl

Each input line is one delivery as a receiver got it: {"headers": {name: value}, "body": "..."}.
A delivery verifies when the library accepts it under one of the secrets (an endpoint's secret and,
during a rotation's overlap, the previous one). Prints one line per delivery and exits 1 when any
fails, so that the Rust end-to-end test holds Tributary's signatures to the specification's own
verifier rather than to code we wrote.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    secrets = sys.argv[1:]
    if not secrets:
        print("usage: verify_webhooks.py SECRET [SECRET...] < deliveries.jsonl", file=sys.stderr)
        return 2
    failed = 0
    count = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        count += 1
        delivery = json.loads(line)
        headers = {k.lower(): v for k, v in delivery["headers"].items()}
        body = delivery["body"]
        errors = []
        for secret in secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
                print(f"ok {headers.get('webhook-id')} {payload.get('type')}")
                break
            except WebhookVerificationError as e:
                errors.append(str(e))
        else:
            failed += 1
            print(f"FAIL {headers.get('webhook-id')}: {errors}")
    if count == 0:
        print("FAIL no deliveries to verify")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
