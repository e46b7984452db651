"""schemathesis hooks for fuzz-api.sh.

A client sends a fresh `Idempotency-Key` for each new request; the API answers 422 when a key comes
back with another body within 24 h, as documented. Generated keys are short and repeat across
requests, so valid requests would be refused for a history the generator does not model: a valid
(positive) key is replaced by a fresh UUID before the call. Invalid (negative) keys are sent as
generated, so the API's validation of the header stays fuzzed.

Connections can only be made against a provider that answers, and connect pages only opened with a
link's token: fuzz-api.sh seeds an integration of a local Stripe, connections, connect links, a
synced connection's records, action runs, webhook endpoints (a local receiver's URL) and delivered
messages (`FUZZ_SEEDS`), and a valid case gets those ids, that key, that return URL, Stripe's
`create_customer` input and a proxied path under Stripe's base where the generator could only have
guessed them. Invalid cases are sent as generated.
"""

import datetime
import html
import json
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import schemathesis
from schemathesis.core.parameters import ParameterLocation

HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers or HEADER not in headers:
        return
    meta = case.meta
    component = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
    if component is not None and component.mode.is_negative:
        return
    headers[HEADER] = str(uuid.uuid4())


SEEDS = json.load(open(os.environ["FUZZ_SEEDS"], encoding="utf-8")) if os.environ.get("FUZZ_SEEDS") else None


def positive(case, location):
    meta = case.meta
    component = meta.components.get(location) if meta is not None else None
    return component is None or not component.mode.is_negative


def api(method, path, body=None):
    req = urllib.request.Request(
        SEEDS["api"] + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {SEEDS['key']}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def fresh_connection():
    return api("POST", "/v1/connections", {"integration_id": SEEDS["integration_id"], "end_user_id": "fuzz",
                                           "credentials": {"api_key": SEEDS["stripe_key"]}})["id"]


def fresh_run():
    """A sync of a connection of its own, and a run of it just queued: (sync id, run id)."""
    sync = api("POST", "/v1/syncs", {"connection_id": fresh_connection(), "stream": "customers", "model": "customers",
                                     "frequency": {"every_seconds": 86400}})["id"]
    return sync, api("POST", f"/v1/syncs/{sync}/runs", {})["id"]


def make_room():
    """Deletes endpoints the fuzzing made until a creation fits under the tenant's 20 (the seeded ones
    stay)."""
    listed = api("GET", "/v1/webhook-endpoints?limit=100")["data"]
    made = [e["id"] for e in listed if e["id"] not in SEEDS["endpoint_ids"]]
    while len(listed) >= 18 and made:
        api("DELETE", f"/v1/webhook-endpoints/{made.pop(0)}")
        listed.pop()


def fresh_endpoint():
    make_room()
    return api("POST", "/v1/webhook-endpoints", {"url": SEEDS["hooks_url"], "enabled": False})["id"]


def fresh_integration():
    return api("POST", "/v1/integrations", {"provider": "stripe", "return_urls": [SEEDS["return_url"]]})["id"]


def fresh_token():
    return api("POST", "/v1/connect/sessions", {"end_user_id": "fuzz", "return_url": SEEDS["return_url"],
                                                "integration_ids": [SEEDS["integration_id"], SEEDS["oauth_integration_id"]]})["token"]


def replayable_message():
    """A seeded message that is not waiting for a delivery. Replaying a pending message is a 409, as
    documented, and replays of the few seeded messages come faster than the local stack delivers
    them: each replay waits (up to 5 s) for a message that is not pending. Any state but pending may
    be replayed, so the case stays a valid request."""
    deadline = time.monotonic() + 5
    while True:
        ids = random.sample(SEEDS["message_ids"], len(SEEDS["message_ids"]))
        for message_id in ids:
            if api("GET", f"/v1/webhook-messages/{message_id}")["state"] != "pending":
                return message_id
        if time.monotonic() > deadline:
            return ids[0]
        time.sleep(0.2)


def fresh_dashboard_link():
    """A dashboard link's token (`dsl_…`): each opens once."""
    return api("POST", "/v1/dashboard/sessions", {})["url"].rsplit("/", 1)[1]


def dashboard_cookie():
    """A dashboard session cookie (`name=value`), from a link opened without following its redirect."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{SEEDS['api']}/dashboard/{fresh_dashboard_link()}", timeout=30)
    except urllib.error.HTTPError as answer:
        if answer.code == 303:
            return answer.headers["set-cookie"].split(";", 1)[0]
        raise
    raise RuntimeError("a dashboard link did not redirect")


def recent_days():
    """The last seven UTC days, as `from` and `to`."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return {"from": str(today - datetime.timedelta(days=6)), "to": str(today)}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def provider_return():
    """What the local provider sends the browser back with after an Allow: a code and a state."""
    start = f"{SEEDS['api']}/connect/{fresh_token()}/{SEEDS['oauth_integration_id']}/oauth?" + urllib.parse.urlencode(
        {"config.base_id": "appFUZZFUZZFUZZ01", "config.table": "t"})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(start, timeout=30)
        raise RuntimeError("the OAuth start did not redirect")
    except urllib.error.HTTPError as e:
        authorize = e.headers["location"]
    page = urllib.request.urlopen(authorize, timeout=30).read().decode()
    allow = html.unescape(re.search(r'id=allow href="([^"]+)"', page).group(1))
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(allow).query))


def _record_schema():
    """The document's `RecordOut`, with its references resolvable, to check each NDJSON line."""
    doc = json.load(open(os.path.join(os.path.dirname(__file__), "../../functions/api/openapi.json"), encoding="utf-8"))
    return {**doc["components"]["schemas"]["RecordOut"], "components": doc["components"]}


RECORD_SCHEMA = None


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx, response):
    """The feed's NDJSON export: the document can only call it a string, so every line is checked
    here against `RecordOut` (a line that is not one fails the case), and the text is returned."""
    import jsonschema

    global RECORD_SCHEMA
    if RECORD_SCHEMA is None:
        RECORD_SCHEMA = _record_schema()
    text = response.content.decode("utf-8")
    for line in text.splitlines():
        jsonschema.validate(json.loads(line), RECORD_SCHEMA)
    return text


@schemathesis.hook("before_call")
def use_seeds(context, case, kwargs):
    if SEEDS is None:
        return
    path = case.operation.path
    method = case.method.upper()
    params = case.path_parameters
    if params and positive(case, ParameterLocation.PATH):
        if "connection_id" in params:
            # Changes and deletions get a connection of their own: a seeded one a generated PATCH
            # disabled would answer every later proxy call and action with a 409.
            mine = method in ("DELETE", "PATCH")
            params["connection_id"] = fresh_connection() if mine else random.choice(SEEDS["connection_ids"])
        if "token" in params:
            params["token"] = fresh_token() if method == "POST" or path.endswith("/oauth") else random.choice(SEEDS["tokens"])
        if path == "/v1/integrations/{integration_id}/webhook-verification-token":
            params["integration_id"] = SEEDS["notion_integration_id"]
        elif "integration_id" in params and path.startswith("/v1/integrations/"):
            # Changes and deletions get an integration of their own: the seeded one must stay usable.
            params["integration_id"] = SEEDS["integration_id"] if method == "GET" else fresh_integration()
        if path == "/v1/records/{model}/{record_id}" and method == "GET":
            params["model"] = "customers"
            params["record_id"] = random.choice(SEEDS["record_ids"])
        if path == "/v1/syncs/{sync_id}/runs/{run_id}/cancel":
            # A run of its own, cancelled while the connector has not finished it.
            params["sync_id"], params["run_id"] = fresh_run()
        if "action_run_id" in params:
            params["action_run_id"] = random.choice(SEEDS["action_run_ids"])
        if "action" in params:
            params["action"] = "create_customer"
        if "endpoint_id" in params:
            # Deletions get an endpoint of their own; changes and rotations a seeded one whose
            # messages are not replayed (the first's must stay enabled for replays).
            if method == "DELETE":
                params["endpoint_id"] = fresh_endpoint()
            elif method == "GET":
                params["endpoint_id"] = random.choice(SEEDS["endpoint_ids"])
            else:
                params["endpoint_id"] = random.choice(SEEDS["endpoint_ids"][1:])
        if "message_id" in params:
            replay = method == "POST" and path.endswith("/replay")
            params["message_id"] = replayable_message() if replay else random.choice(SEEDS["message_ids"])
        if "operation_id" in params:
            params["operation_id"] = random.choice(SEEDS["operation_ids"])
        if path == "/dashboard/{token}":
            params["token"] = fresh_dashboard_link()
        if "proxy_path" in params:
            # Under Stripe's base URL (`/v1`): its customers, and one of them to delete.
            params["proxy_path"] = "customers/cus_local0" if method == "DELETE" else "customers"
        if "integration_id" in params and path.startswith("/connect/"):
            oauth = path.endswith("/oauth")
            params["integration_id"] = SEEDS["oauth_integration_id"] if oauth else SEEDS["integration_id"]
    if path == "/v1/webhooks/{integration_id}" and method == "POST":
        # The generator cannot sign as a provider: a valid case is a subscription's verification
        # request, which Notion sends unsigned (and which verifies nothing until the tenant
        # confirms its token).
        if params and positive(case, ParameterLocation.PATH):
            params["integration_id"] = SEEDS["notion_integration_id"]
        case.body = {"verification_token": "secret_fuzz" + uuid.uuid4().hex}
        case.media_type = "application/json"
    if positive(case, ParameterLocation.QUERY) and isinstance(case.query, dict) and "cursor" in case.query:
        # A cursor is only ever one the API issued (`next_cursor`): a generated one is refused by
        # design, so a valid case has none.
        del case.query["cursor"]
    if path == "/dashboard" and positive(case, ParameterLocation.HEADER):
        # The page answers its session cookie (a link opened once), whatever else is sent.
        case.headers = {**(case.headers or {}), "Cookie": dashboard_cookie()}
        if positive(case, ParameterLocation.QUERY):
            # A view, or an operation of the log: the only values the page knows.
            case.query = random.choice([{"view": v} for v in ("overview", "runs", "failures", "usage", "insights")]
                                       + [{"operation": random.choice(SEEDS["operation_ids"])}])
    if path in ("/v1/usage", "/v1/insights") and positive(case, ParameterLocation.QUERY) and isinstance(case.query, dict):
        # Generated days are rarely within 92 days of each other: a valid range is a recent week.
        if "from" in case.query or "to" in case.query:
            case.query.update(recent_days())
    if path.startswith("/v1/proxy/") and positive(case, ParameterLocation.HEADER):
        case.headers = {**(case.headers or {}), "Connection-Id": random.choice(SEEDS["connection_ids"])}
    if path == "/v1/webhook-messages" and positive(case, ParameterLocation.QUERY) and isinstance(case.query, dict):
        if "endpoint_id" in case.query:
            case.query["endpoint_id"] = SEEDS["endpoint_ids"][0]
    if path == "/v1/records/{model}/{record_id}" and positive(case, ParameterLocation.QUERY):
        case.query = {"connection_id": SEEDS["synced_connection_id"]}
    if path.endswith("/oauth") and positive(case, ParameterLocation.QUERY):
        case.query = {"config.base_id": "appFUZZFUZZFUZZ01", "config.table": "t"}
    if path == "/connect/callback" and positive(case, ParameterLocation.QUERY):
        case.query = provider_return()
    if path == "/connect/{token}/{integration_id}" and method == "POST" and positive(case, ParameterLocation.BODY):
        case.body = {"credentials.api_key": SEEDS["stripe_key"]}
        return
    if path == "/v1/connections/{connection_id}/actions/{action}" and positive(case, ParameterLocation.BODY):
        # Stripe's `create_customer` input, as its schema in the catalog describes it (the document
        # can only say "an object": each action has its own schema).
        generated = case.body if isinstance(case.body, dict) else {}
        body = {"email": "fuzz@example.com"}
        if isinstance(generated.get("name"), str):
            body["name"] = generated["name"]
        metadata = generated.get("metadata")
        if isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()):
            body["metadata"] = metadata
        case.body = body
        return
    body = case.body
    if not isinstance(body, dict) or not positive(case, ParameterLocation.BODY):
        return
    if path == "/v1/integrations" and method == "POST":
        # A provider of the catalog, with what its auth mode takes (Stripe: an API key, no client).
        for field in ("oauth_client_id", "oauth_client_secret", "scopes", "auth_mode"):
            body.pop(field, None)
        body["provider"] = "stripe"
        body["return_urls"] = [SEEDS["return_url"]]
    if path == "/v1/integrations/{integration_id}" and method == "PATCH":
        for field in ("oauth_client_id", "oauth_client_secret", "scopes"):
            body.pop(field, None)
        if "return_urls" in body:
            body["return_urls"] = [SEEDS["return_url"]]
    if path == "/v1/syncs" and method == "POST":
        # A connection of its own (a model is unique per connection), a stream of Stripe's, the
        # stream's own mode, and no mapping (a generated one rarely holds together).
        body["connection_id"] = fresh_connection()
        body["stream"] = "customers"
        body.pop("mode", None)
        body.pop("mapping", None)
        # Exactly one of `every_seconds` and `cron`, as the description says (the schema's
        # object cannot say "exactly one"), and a cron expression that parses.
        frequency = body.get("frequency") if isinstance(body.get("frequency"), dict) else {}
        if frequency.get("every_seconds") is not None:
            body["frequency"] = {"every_seconds": frequency["every_seconds"]}
        elif frequency.get("cron") is not None:
            body["frequency"] = {"cron": "0 */6 * * *"}
        else:
            body["frequency"] = {"every_seconds": 3600}
    if path == "/v1/webhook-endpoints" and method == "POST":
        make_room()
    if path in ("/v1/webhook-endpoints", "/v1/webhook-endpoints/{endpoint_id}") and method in ("POST", "PATCH"):
        if method == "POST" or "url" in body:
            body["url"] = SEEDS["hooks_url"]
        # Messages go to the seeded endpoint alone (each delivery is a transaction moto copies the
        # table for).
        body["enabled"] = False
    if path == "/v1/connections" and method == "POST":
        body["integration_id"] = SEEDS["integration_id"]
        body["credentials"] = {"api_key": SEEDS["stripe_key"]}
        body.pop("config", None)
    if path == "/v1/connect/sessions":
        body["integration_ids"] = [SEEDS["integration_id"]]
        body["return_url"] = SEEDS["return_url"]
        body.pop("connection_id", None)
