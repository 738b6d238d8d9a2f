"""A model swap at the gateway: which arm answers a request for the production id
(canary), whether the candidate also gets it in the background (shadow), and the body a
variant's engine is sent.

Shadow requests run beside production, in slots of their own per replica: when every
slot is taken the shadow is dropped and counted, never queued, so production latency
does not move. Pure decisions here; the ingress does the calls.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Literal

from serving._wire import ApiKey
from serving.gateway._context import RequestContext
from serving.swap._config import SwapConfig, VariantConfig

Arm = Literal["production", "candidate"]
ARM_HEADER = "X-Gavel-Arm"


class SwapRouter:
    """The swap of one ingress replica (``None`` config: no swap, nothing changes)."""

    def __init__(self, swap: SwapConfig | None, *, rng: random.Random | None = None) -> None:
        self.swap = swap
        self._rng = rng or random.Random()
        self._variants: dict[str, VariantConfig] = (
            {swap.variant.model_id: swap.variant} if swap and swap.variant else {}
        )
        self._shadows = 0
        self.held = False
        """While held, production answers alone (no canary, no shadow): a new replica
        holds until it has read the swap's recorded state (see :meth:`hold`)."""

    def hold(self) -> None:
        """Serve production alone until :meth:`apply` or :meth:`release` (a replica that
        starts, or restarts during a store outage, must not serve the config's shares
        after a ``gavel swap rollback``)."""
        self.held = self.swap is not None

    def release(self) -> None:
        """The recorded state is known (or there is none): serve the swap's shares."""
        self.held = False

    def variant_base(self, model: str) -> str | None:
        """The served model whose engine answers the variant ``model`` (else ``None``)."""
        v = self._variants.get(model)
        return v.base if v is not None else None

    def apply(self, *, shadow_rate: float, canary_weight: float, promoted: bool) -> None:
        """Take a new state of the swap (``gavel swap set|promote|rollback``)."""
        if self.swap is not None:
            self.swap = self.swap.model_copy(
                update={"shadow_rate": shadow_rate, "canary_weight": canary_weight,
                        "promoted": promoted}
            )  # fmt: skip
        self.held = False

    def arm(self, model: str, key: ApiKey | None) -> Arm | None:
        """The arm that answers a request for ``model``: ``None`` when no swap concerns it."""
        s = self.swap
        if s is None or model != s.production:
            return None
        if self.held:
            return "production"
        if s.promoted:
            return "candidate"
        if s.canary_weight <= 0:
            return "production"
        if s.sticky and key is not None:
            digest = hashlib.sha256(f"{s.candidate}:{key.name}".encode()).digest()
            draw = int.from_bytes(digest[:8], "big") / 2**64
        else:
            draw = self._rng.random()
        return "candidate" if draw < s.canary_weight else "production"

    def served(self, model: str, arm: Arm | None) -> str:
        """The model id that answers: the candidate's on its arm, else the one asked for."""
        return self.swap.candidate if arm == "candidate" and self.swap else model

    def wants_shadow(self, arm: Arm | None) -> bool:
        """Whether a request on production's arm is also sent to the candidate."""
        s = self.swap
        if s is None or arm != "production" or s.shadow_rate <= 0 or self.held:
            return False
        return self._rng.random() < s.shadow_rate

    def take_shadow_slot(self) -> bool:
        """A slot for one shadow request, or False (drop it) when all are taken."""
        if self.swap is None or self._shadows >= self.swap.shadow_max_in_flight:
            return False
        self._shadows += 1
        return True

    def give_shadow_slot(self) -> None:
        """Give back a slot of :meth:`take_shadow_slot`."""
        self._shadows = max(0, self._shadows - 1)

    def engine_body(self, data: dict[str, Any], served: str) -> dict[str, Any]:
        """The body sent to the engine that answers ``served``: a variant's goes to its
        base engine with the variant's system prompt and defaults."""
        v = self._variants.get(served)
        if v is None:
            return {**data, "model": served}
        out = {**data, "model": v.base}
        if v.system_prompt is not None and isinstance(out.get("messages"), list):
            out["messages"] = [{"role": "system", "content": v.system_prompt}, *out["messages"]]
        if v.max_tokens is not None:
            asked = out.get("max_tokens")
            cap = min(asked, v.max_tokens) if isinstance(asked, int) else v.max_tokens
            out["max_tokens"] = cap
            floor = out.get("min_tokens")
            if isinstance(floor, int) and floor > cap:  # the cap wins over a length floor
                out["min_tokens"] = cap
        if v.temperature is not None:
            out["temperature"] = v.temperature
        return out


class SwapHook:
    """Under a swap, the arm that answers and the model id it is served by."""

    name = "swap"

    def __init__(self, router: SwapRouter) -> None:
        self._router = router

    async def before(self, ctx: RequestContext) -> None:
        ctx.arm = self._router.arm(ctx.asked or ctx.model, ctx.key)
        ctx.model = self._router.served(ctx.asked or ctx.model, ctx.arm)

    def end(self, ctx: RequestContext) -> None:
        """Nothing is held."""
