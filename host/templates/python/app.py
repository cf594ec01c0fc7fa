"""A percore handler in Python: a standard wasi:http/proxy component, built
with componentize-py by build.sh. percore calls `handle` once per request
routed to it.

`respond` is percore's (`percore:http-wiki/respond`): a whole response in
one call. A body streamed as it is made takes wasi:http's own resources
instead: `OutgoingResponse(Fields.from_list(...))`, its `body()`, the
body's `write()` stream, `ResponseOutparam.set` and `OutgoingBody.finish`
(from `wit_world.imports.types`)."""

from wit_world import exports
from wit_world.imports.respond import respond


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        body = f"Hello from Python! You asked for {request.path_with_query()}\n".encode()
        respond(response_out, 200, [("content-type", b"text/plain; charset=utf-8")], body)
