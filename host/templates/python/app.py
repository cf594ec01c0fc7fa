"""A percore handler in Python: a standard wasi:http/proxy component, built
with componentize-py by build.sh. percore calls `handle` once per request
routed to it."""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import Fields, OutgoingBody, OutgoingResponse, ResponseOutparam


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out):
        body = f"Hello from Python! You asked for {request.path_with_query()}\n".encode()
        headers = [("content-type", b"text/plain; charset=utf-8")]
        response = OutgoingResponse(Fields.from_list(headers))
        response_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with response_body.write() as stream:
            stream.blocking_write_and_flush(body)
        OutgoingBody.finish(response_body, None)
