"""Local providers for the connect check (infra/local/connect-check.sh), on one loopback port.

- Airtable, as its OAuth documentation describes it (https://airtable.com/developers/web/api/oauth-reference,
  checked 2026-12-01): `GET /oauth2/v1/authorize` shows a consent page whose Allow button returns to the
  `redirect_uri` with a `code` and the `state`; `POST /oauth2/v1/token` takes the code once, with HTTP
  Basic client authentication and the PKCE `code_verifier` of the S256 challenge, and answers
  `access_token`, `refresh_token`, `expires_in`; `GET /v0/meta/whoami` accepts the access token.
- Stripe: `GET /v1/balance` accepts the one secret key the check uses and answers 401 otherwise;
  `GET /v1/customers` lists three customers as Stripe's list endpoints do
  (https://docs.stripe.com/api/pagination: `limit`, `starting_after`, `{"object": "list", "data",
  "has_more", "url"}`), for the syncs fuzz-api.sh seeds; `POST /v1/customers` creates one from a form
  body and answers the same customer again for a repeated `Idempotency-Key`
  (https://docs.stripe.com/api/idempotent_requests), and `DELETE /v1/customers/{id}` answers
  `{"id", "object": "customer", "deleted": true}` (https://docs.stripe.com/api/customers/delete), for
  actions and the proxy.
- A tenant's webhook receiver: `POST /app/hooks` answers 204 (fuzz-api.sh's endpoint).
- The tenant's app: `GET /app/done` shows the outcome the connect page sent the end user back with.

Every secret it hands out or accepts is appended to the file named by the second argument, for the
check's scan of the functions' logs.

Usage: providers.py PORT_FILE SECRETS_FILE CLIENT_ID CLIENT_SECRET STRIPE_KEY
"""

import base64
import hashlib
import html
import json
import os
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

PORT_FILE, SECRETS_FILE, CLIENT_ID, CLIENT_SECRET, STRIPE_KEY = sys.argv[1:6]
lock = threading.Lock()
issued = {}  # code -> challenge
tokens = set()
created = {}  # Idempotency-Key -> the customer created with it


def remember(value):
    with lock, open(SECRETS_FILE, "a", encoding="utf-8") as f:
        f.write(value + "\n")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def page(self, title, body):
        self.send(
            200,
            f"<!doctype html><html lang=en><head><meta charset=utf-8><link rel=icon href='data:,'><title>{html.escape(title)}</title></head>"
            f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>",
            "text/html; charset=utf-8",
        )

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/oauth2/v1/authorize":
            if q.get("client_id") != CLIENT_ID or q.get("code_challenge_method") != "S256":
                return self.send(400, json.dumps({"error": "invalid_request"}))
            code = "code-" + secrets.token_urlsafe(16)
            issued[code] = q["code_challenge"]
            allow = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
            deny = q["redirect_uri"] + "?" + urlencode({"error": "access_denied", "state": q["state"]})
            return self.page(
                "Local Airtable: authorize access",
                f"<p>Tributary demo asks for {html.escape(q.get('scope', ''))}.</p>"
                f"<a id=allow href=\"{html.escape(allow)}\">Allow</a> <a id=deny href=\"{html.escape(deny)}\">Deny</a>",
            )
        if url.path == "/v0/meta/whoami":
            bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
            if bearer in tokens:
                return self.send(200, json.dumps({"id": "usrLocal"}))
            return self.send(401, json.dumps({"error": {"type": "AUTHENTICATION_REQUIRED"}}))
        if url.path == "/v1/balance":
            if self.headers.get("authorization") == f"Bearer {STRIPE_KEY}":
                return self.send(200, json.dumps({"object": "balance", "available": [], "livemode": False}))
            return self.send(401, json.dumps({"error": {"message": "Invalid API Key provided", "type": "invalid_request_error"}}))
        if url.path == "/v1/customers":
            if self.headers.get("authorization") != f"Bearer {STRIPE_KEY}":
                return self.send(401, json.dumps({"error": {"message": "Invalid API Key provided", "type": "invalid_request_error"}}))
            customers = [{"id": f"cus_local{n}", "object": "customer", "email": f"local{n}@example.com"} for n in range(3)]
            after = q.get("starting_after")
            rest = [c for c in customers if after is None or c["id"] > after]
            limit = int(q.get("limit", "10"))
            page = {"object": "list", "data": rest[:limit], "has_more": len(rest) > limit, "url": "/v1/customers"}
            return self.send(200, json.dumps(page))
        if url.path == "/app/done":
            return self.page(
                "Back in the app",
                f"<p id=status>{html.escape(q.get('status', ''))}</p><p id=connection>{html.escape(q.get('connection_id', ''))}</p>",
            )
        self.send(404, json.dumps({"error": "not_found"}))

    def stripe_authorized(self):
        if self.headers.get("authorization") == f"Bearer {STRIPE_KEY}":
            return True
        self.send(401, json.dumps({"error": {"message": "Invalid API Key provided", "type": "invalid_request_error"}}))
        return False

    def unrecognized(self):
        # Stripe's API has no PUT or PATCH: a method the resource does not allow.
        self.send_response(405)
        body = json.dumps({"error": {"type": "invalid_request_error",
                                     "message": f"{self.command} is not allowed on {urlsplit(self.path).path}."}}).encode()
        self.send_header("content-type", "application/json")
        self.send_header("allow", "GET, POST, DELETE")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = unrecognized
    do_PATCH = unrecognized

    def do_DELETE(self):
        url = urlsplit(self.path)
        if url.path.startswith("/v1/customers/") and url.path.count("/") == 3:
            if not self.stripe_authorized():
                return None
            return self.send(200, json.dumps({"id": url.path.rsplit("/", 1)[1], "object": "customer", "deleted": True}))
        self.send(404, json.dumps({"error": "not_found"}))

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length).decode(errors="replace")
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        if url.path == "/app/hooks":
            self.send_response(204)
            self.end_headers()
            return None
        if url.path == "/v1/customers":
            if not self.stripe_authorized():
                return None
            key = self.headers.get("idempotency-key")
            with lock:
                if key and key in created:
                    return self.send(200, created[key])
                customer = json.dumps({"id": "cus_" + secrets.token_hex(7), "object": "customer",
                                       "email": form.get("email"), "name": form.get("name")})
                if key:
                    created[key] = customer
            return self.send(200, customer)
        if url.path != "/oauth2/v1/token":
            return self.send(404, json.dumps({"error": "not_found"}))
        basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.headers.get("authorization") != basic:
            return self.send(401, json.dumps({"error": "invalid_client"}))
        if form.get("grant_type") == "authorization_code":
            with lock:
                challenge = issued.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None or expected != challenge:
                return self.send(400, json.dumps({"error": "invalid_grant"}))
        else:
            return self.send(400, json.dumps({"error": "unsupported_grant_type"}))
        access, refresh = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
        tokens.add(access)
        remember(access)
        remember(refresh)
        self.send(200, json.dumps({"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": 3600}))


# PROVIDERS_PORT picks the port (the README's walkthrough); by default any free one.
server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PROVIDERS_PORT", "0"))), Handler)
with open(PORT_FILE, "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
