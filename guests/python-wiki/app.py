"""A standard wasi:http/proxy handler in Python (componentize-py) that reads
percore's shared Wikipedia index through `percore:host/wiki` and answers as
the Rust wiki guest (`guests/wiki`) does, byte for byte (status,
content-type, body):

- `GET .../offsets/<prefix>?limit=&after=&ci=1`: `[[title, first, last], ...]`
  (`limit` 1 to 10000, default 100; `after` pages on; `ci` ignores case);
- `GET .../wiki/<title>`: the page's `<page>` element, read from the dump
  through the wiki interface's `read` in 64 KiB pieces and streamed out as
  it is read (never held whole), with `x-page-id` (and `x-redirect-target`
  for a redirect); or 404 with suggestions;
- `.../json`: the TechEmpower JSON message, as the demo's `/json`.

It can be mounted under any route prefix: the path is read from its first
`offsets`, `wiki` or `json` segment on (so the prefix must not hold such a
segment). The search page and `/xml` stay the Rust guest's.

A response held whole goes out in one call of percore's
`percore:http-wiki/respond`; a page is streamed with `wasi:http/types`.
"""

import re

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import wiki
from wit_world.imports.percore_host_types import DumpRange
from wit_world.imports.respond import respond as send
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Head,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# Default and largest number of titles `/offsets` returns.
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# Suggestions in a `/wiki/` 404.
SUGGESTIONS = 10
# Bytes of the dump one `wiki.read` fetches (the interface allows 1 MiB),
# and bytes one `blocking-write-and-flush` may take (wasi:io: 4096).
READ_CHUNK = 64 << 10
WRITE_CHUNK = 4096
# The segments this handler serves from; what precedes the first is the
# route's prefix.
ROUTES = ("offsets", "wiki", "json")
# Rust's `char::is_whitespace` (Unicode White_Space), what `str::trim`
# strips; Python's own `str.strip()` also strips U+001C..U+001F.
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + (
    "\u2028\u2029\u202f\u205f\u3000"
)
# JSON string escapes as percore-httpkit's `json_string` writes them.
JSON_ESCAPES = {c: "\\u%04x" % c for c in range(0x20)}
JSON_ESCAPES.update(
    {
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord("\t"): "\\t",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
    }
)
# `/json`'s answer (the host adds its `content-length`).
HELLO = b'{"message":"Hello, World!"}'
HELLO_FIELDS = [("content-type", b"application/json")]
ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
ESCAPE_OR_PLUS = re.compile(rb"%([0-9A-Fa-f]{2})|\+")
NUMBER = re.compile(r"\+?[0-9]+")


def json_string(s: str) -> str:
    return '"' + s.translate(JSON_ESCAPES) + '"'


def percent_decode(s: str, plus_is_space: bool) -> str:
    """`%XX` escapes (and `+` as a space when `plus_is_space`) decoded;
    invalid escapes kept; the bytes read as UTF-8 with U+FFFD for invalid
    sequences (as percore-httpkit's `percent_decode`)."""
    pattern = ESCAPE_OR_PLUS if plus_is_space else ESCAPE
    decoded = pattern.sub(
        lambda m: bytes([int(m.group(1), 16)]) if m.group(1) else b" ", s.encode()
    )
    return decoded.decode("utf-8", "replace")


def query_param(query: str, name: str):
    """The raw value of the first parameter `name`, or None."""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None


def start(out: ResponseOutparam, status: int, headers: list, length: int):
    """Sends the head of a response whose body is streamed (`length`
    bytes); returns the body and its output stream."""
    fields = [(name, value.encode()) for name, value in headers]
    fields.append(("content-length", str(length).encode()))
    response = OutgoingResponse(Fields.from_list(fields))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    return body, body.write()


def write(stream, data: bytes) -> None:
    if len(data) <= WRITE_CHUNK:
        return stream.blocking_write_and_flush(data)
    view = memoryview(data)
    for at in range(0, len(view), WRITE_CHUNK):
        stream.blocking_write_and_flush(bytes(view[at : at + WRITE_CHUNK]))


def finish(body, stream) -> None:
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)


def respond(out: ResponseOutparam, status: int, content_type: str, body: bytes) -> None:
    """A whole response in one host call (`percore:http-wiki/respond`):
    none of the four resources and dozen calls that `wasi:http/types`
    takes to send a body, each resource a Python object with a finalizer
    in componentize-py."""
    send(out, status, [("content-type", content_type.encode())], body)


def hello(out: ResponseOutparam) -> None:
    """`/json`: the TechEmpower message, its head and body made once (when
    componentize-py runs the module at build time), sent in one call."""
    send(out, 200, HELLO_FIELDS, HELLO)


def json(out: ResponseOutparam, status: int, body: str) -> None:
    respond(out, status, "application/json", body.encode())


def json_error(out: ResponseOutparam, status: int, message: str) -> None:
    json(out, status, '{"error":' + json_string(message) + "}")


def offsets(out: ResponseOutparam, prefix: str, query: str) -> None:
    """`GET /offsets/<prefix>`."""
    prefix = percent_decode(prefix, False)
    raw = query_param(query, "limit")
    if raw is None:
        limit = DEFAULT_LIMIT
    elif NUMBER.fullmatch(raw) and 1 <= int(raw) <= MAX_LIMIT:
        limit = int(raw)
    else:
        return json_error(out, 400, "limit must be a number from 1 to 10000")
    after = query_param(query, "after")
    if after is not None:
        after = percent_decode(after, True)
    ci = query_param(query, "ci") in ("1", "true", "yes")
    try:
        pages = wiki.prefix(prefix, after, limit, ci)
    except Err as e:
        return json_error(out, 400, e.value.value)
    rows = ",".join(
        "[%s,%d,%d]" % (json_string(page.title), page.first, page.last) for page in pages
    )
    json(out, 200, "[" + rows + "]")


def page(out: ResponseOutparam, title: str) -> None:
    """`GET /wiki/<title>`."""
    title = percent_decode(title, False)
    found = wiki.lookup_normalized(title)
    if found is not None:
        headers = [
            ("content-type", "application/xml; charset=utf-8"),
            ("x-page-id", str(found.id)),
        ]
        if found.redirect is not None:
            headers.append(("x-redirect-target", found.redirect))
        body, stream = start(out, 200, headers, found.last - found.first + 1)
        at = found.first
        while at <= found.last:
            last = min(found.last, at + READ_CHUNK - 1)
            write(stream, wiki.read(DumpRange(first=at, last=last)))
            at = last + 1
        return finish(body, stream)
    spaced = title.replace("_", " ").strip(WHITESPACE)
    try:
        suggestions = wiki.prefix(spaced, None, SUGGESTIONS, True)
    except Err:
        suggestions = []
    json(
        out,
        404,
        '{"error":"no page with that title","title":'
        + json_string(title)
        + ',"suggestions":['
        + ",".join(json_string(s.title) for s in suggestions)
        + "]}",
    )


def route(path: str) -> str:
    """The path from its first segment this handler serves on: what the Rust
    guest, mounted at `/`, would see."""
    segments = path.split("/")
    for at in range(1, len(segments)):
        if segments[at] in ROUTES:
            return "/" + "/".join(segments[at:])
    return path


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        target = request.path_with_query() or "/"
        # As the demo's TechEmpower guest, whatever the method; mounted at
        # `/` (the common case) without splitting the path.
        if target == "/json":
            return hello(response_out)
        path, _, query = target.partition("?")
        path = route(path)
        if path == "/json":
            return hello(response_out)
        if not isinstance(request.method(), (Method_Get, Method_Head)):
            return json_error(response_out, 405, "method not allowed: use GET or HEAD")
        if path.startswith("/offsets/"):
            return offsets(response_out, path[len("/offsets/") :], query)
        if path == "/offsets":
            return offsets(response_out, "", query)
        if path.startswith("/wiki/"):
            return page(response_out, path[len("/wiki/") :])
        json_error(response_out, 404, "not found: try /offsets/<prefix>, /wiki/<title> or /json")
