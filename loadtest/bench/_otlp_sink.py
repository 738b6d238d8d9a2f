"""A collector stand-in for the tracing benchmarks: it accepts OTLP/HTTP exports on
``/v1/traces`` (200, empty response), counts them, and keeps nothing.

``python -m loadtest.bench._otlp_sink --port 4318 --counts FILE``: on SIGTERM it writes
``{"exports": N, "bytes": B}`` to ``FILE`` (the proof that the traced apps exported).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main() -> None:
    """Serve until SIGTERM, then write the counts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--counts", type=Path, required=True)
    args = parser.parse_args()
    counts = {"exports": 0, "bytes": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            counts["exports"] += 1
            counts["bytes"] += n
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(*_: Any) -> None:
        args.counts.write_text(json.dumps(counts))
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
