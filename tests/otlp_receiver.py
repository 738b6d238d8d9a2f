"""A local OTLP/HTTP trace receiver for tests: it takes what an exporter POSTs to
``/v1/traces`` and parses it with ``opentelemetry-proto``'s messages."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class OtlpReceiver:
    """Listens on 127.0.0.1:``port`` (0: any free port) until :meth:`stop`."""

    def __init__(self, port: int = 0) -> None:
        bodies: list[bytes] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                bodies.append(self.rfile.read(n))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self._server = HTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/v1/traces"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def spans(self) -> list[tuple[dict[str, str], Any]]:
        """Every span received so far, with its resource's attributes."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out = []
        for body in list(self.bodies):
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                out += [(resource, s) for ss in rs.scope_spans for s in ss.spans]
        return out

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
