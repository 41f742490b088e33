"""schemathesis hooks of scripts/api-check.

NDJSON bodies are sent as the text the document says they are (a string), and no body of an
NDJSON upload can break its `type: string`: the daemon reads any bytes as lines and lists a
line that is not a bill or a result in `rejected`, so the generator's "not a string" bodies
(`{}`, `439`) are text on the wire like any other. The built-in check that such requests are
refused is kept for every other operation.

The built-in check
that a schema-valid request is accepted counts every 422 as a finding, but the daemon refuses
well-formed requests for rules of the store and the clock (an unknown biller, an unbalanced
adjustment, a time in the past): those answers name a code of their own. This check fails
where the document and the daemon disagree on the form of a request: a request valid by the
document refused as malformed (400), or with a field `required`, `invalid` or `unknown_field`.
"""
import schemathesis
from schemathesis.specs.openapi.checks import negative_data_rejection

NDJSON_UPLOADS = {"/v1/bills/import", "/v1/writeoffs/results"}

schemathesis.serializer.alias("application/x-ndjson", "text/plain")

FORM_CODES = {"required", "invalid", "unknown_field"}


@schemathesis.check
def schema_valid_request_is_well_formed(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code == 400:
        raise AssertionError(f"a request valid by the document was refused as malformed: {response.text[:600]}")
    if response.status_code == 422:
        try:
            errors = response.json().get("errors", [])
        except ValueError:
            raise AssertionError(f"a 422 that is not a problem document: {response.text[:600]}")
        form = [entry for entry in errors if entry.get("code") in FORM_CODES]
        if form:
            raise AssertionError(f"a request valid by the document was refused for its form: {response.text[:600]}")
    return None


@schemathesis.check
def schema_violating_request_is_refused(ctx, response, case):
    if case.operation.path in NDJSON_UPLOADS:
        return None
    return negative_data_rejection(ctx, response, case)
