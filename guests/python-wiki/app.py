"""A standard wasi:http/proxy handler in Python (componentize-py) that reads
percore's shared Wikipedia index through `percore:host/wiki`:

- `.../json`: the TechEmpower JSON message;
- `.../lookup/<title>`: the page with that title, normalised, as JSON
  (`{"title", "first", "last", "id"}`), or 404;
- `.../prefix/<prefix>`: up to 10 titles that start with it, as JSON.
"""

import json
from urllib.parse import unquote

from wit_world import exports
from wit_world.imports import wiki
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


def respond(out: ResponseOutparam, status: int, content_type: str, body: bytes) -> None:
    response = OutgoingResponse(
        Fields.from_list(
            [
                ("content-type", content_type.encode()),
                ("content-length", str(len(body)).encode()),
            ]
        )
    )
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    stream = outgoing.write()
    for at in range(0, len(body), 4096):
        stream.blocking_write_and_flush(body[at : at + 4096])
    stream.__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        target = request.path_with_query() or "/"
        path = target.split("?", 1)[0]
        if path.endswith("/json"):
            body = json.dumps({"message": "Hello, World!"}).encode()
            return respond(response_out, 200, "application/json", body)
        if "/lookup/" in path:
            title = unquote(path.split("/lookup/", 1)[1])
            page = wiki.lookup_normalized(title)
            if page is None:
                return respond(response_out, 404, "application/json", b'{"error":"no such page"}')
            body = json.dumps(
                {"title": page.title, "first": page.first, "last": page.last, "id": page.id}
            ).encode()
            return respond(response_out, 200, "application/json", body)
        if "/prefix/" in path:
            prefix = unquote(path.split("/prefix/", 1)[1])
            titles = [page.title for page in wiki.prefix(prefix, None, 10, False)]
            return respond(response_out, 200, "application/json", json.dumps(titles).encode())
        respond(response_out, 404, "text/plain", b"not found\n")
