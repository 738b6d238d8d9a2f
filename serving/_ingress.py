"""Gavel's extension of ``ray.serve.llm``'s OpenAI ingress.

The OpenAI protocol stays Ray Serve LLM's; this subclass only fixes what Gavel
promises on top of it (every error in OpenAI's JSON shape) and is the place the
gateway hooks into.
"""

from __future__ import annotations

from fastapi import HTTPException
from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException
from ray.serve.llm.ingress import OpenAiIngress

_ERROR_TYPES = {400: "invalid_request_error", 404: "model_not_found"}


class GavelIngress(OpenAiIngress):
    """OpenAI ingress whose model look-up errors use OpenAI's error format (not ``detail``)."""

    async def _get_model_id(self, model: str | None) -> str:
        try:
            return await super()._get_model_id(model)
        except HTTPException as exc:
            raise OpenAIHTTPException(
                status_code=exc.status_code,
                message=str(exc.detail),
                type=_ERROR_TYPES.get(exc.status_code, "invalid_request_error"),
            ) from None
