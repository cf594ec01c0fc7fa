"""The Python handler's `/json` served natively by granian: the baseline
that the load harness (`benches/load --python`, server `granian`) puts
beside the same handler compiled to a component
(`guests/python-wiki/app.py`) on percore.

An RSGI app (granian's own interface, its fastest) doing what app.py's
`/json` does per request: the same bytes, made once, with the same status
and content type. Every other path is a 404, as in app.py. The
harness checks at start that both answer `/json` with the same bytes.

    python3 -m granian --interface rsgi --workers 2 benches/granian_json.py:app
"""

# app.py's `/json` answer (its `hello`).
JSON_MESSAGE = b'{"message":"Hello, World!"}'
JSON_HEADERS = [("content-type", "application/json")]
NOT_FOUND = b'{"error":"not found: try /json"}'


async def app(scope, proto):
    """RSGI entry point: `/json` (any method, as app.py), else 404."""
    if scope.proto != "http":
        return
    if scope.path.endswith("/json"):
        proto.response_bytes(200, JSON_HEADERS, JSON_MESSAGE)
    else:
        proto.response_bytes(404, JSON_HEADERS, NOT_FOUND)
