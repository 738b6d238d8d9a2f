"""The gateway inside the Serve app: auth, limits, Gavel's headers, the SSE tap, cost,
metrics, redaction and durable capture, each in a module of its own.

Public surface: the ingress class the builder binds, its resolved settings, and the
parts that are useful (and tested) alone.
"""

from serving.gateway._auth import KeyCache
from serving.gateway._capture import CaptureWriter
from serving.gateway._limits import SlidingWindows
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._record import GatewaySettings
from serving.gateway._redact import redact, redact_obj
from serving.gateway._spool import Spool

__all__ = [
    "CaptureWriter",
    "GatewayMetrics",
    "GatewaySettings",
    "KeyCache",
    "SlidingWindows",
    "Spool",
    "redact",
    "redact_obj",
]
