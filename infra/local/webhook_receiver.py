#!/usr/bin/env python3
"""A tenant's webhook receiver for the README's walkthrough: verifies every delivery with the
Standard Webhooks reference library and prints what it got.

Usage: .tributary/tools/standardwebhooks/bin/python infra/local/webhook_receiver.py PORT SECRET

Answers 204 to a delivery that verifies (printing its id, type and data) and 401 to one that does
not (printing why), so Tributary's attempts show both outcomes.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, SECRET = int(sys.argv[1]), sys.argv[2]
HOOK = Webhook(SECRET)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = HOOK.verify(body, headers)
        except WebhookVerificationError as e:
            print(f"REFUSED {headers.get('webhook-id')}: {e}", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        print(f"verified {headers['webhook-id']} {payload['type']} {json.dumps(payload['data'])}", flush=True)
        self.send_response(204)
        self.end_headers()


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
