"""schemathesis hooks of scripts/api-check.

NDJSON bodies are sent as the text the document says they are (a string). The built-in check
that a schema-valid request is accepted counts every 422 as a finding, but the daemon refuses
well-formed requests for rules of the store and the clock (an unknown biller, an unbalanced
adjustment, a time in the past): those answers name a code of their own. This check fails
where the document and the daemon disagree on the form of a request: a request valid by the
document refused as malformed (400), or with a field `required`, `invalid` or `unknown_field`.
"""
import schemathesis

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
