"""The floor of the capacity benchmark: the simulated engine behind a minimal
single-process OpenAI server (FastAPI, vLLM's protocol classes, one uvicorn worker).

``python -m loadtest.bench.sim_direct --port 8100 --profile llama-3.1-8b-h100``
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from fastapi import FastAPI

from serving.sim import PROFILES


def make_app(profile: str, *, model_id: str = "direct") -> FastAPI:
    """An OpenAI server over one :class:`~serving.sim.engine.SimEngine`."""
    from serving.sim._asgi import openai_app
    from serving.sim.engine import PROFILE_KEY, SimEngine

    config = SimpleNamespace(
        model_id=model_id, experimental_configs={PROFILE_KEY: PROFILES[profile].model_dump()}
    )
    return openai_app(SimEngine(config), model_id)


def main() -> None:
    """Serve until killed."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--profile", default="llama-3.1-8b-h100", choices=sorted(PROFILES))
    args = parser.parse_args()
    uvicorn.run(make_app(args.profile), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
