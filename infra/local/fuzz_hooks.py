"""schemathesis hooks for fuzz-api.sh.

A client sends a fresh `Idempotency-Key` for each new request; the API answers 422 when a key comes
back with another body within 24 h, as documented. Generated keys are short and repeat across
requests, so valid requests would be refused for a history the generator does not model: a valid
(positive) key is replaced by a fresh UUID before the call. Invalid (negative) keys are sent as
generated, so the API's validation of the header stays fuzzed.
"""

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
