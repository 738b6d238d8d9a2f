"""The swap's live state on one ingress replica: the latest ``gavel swap set|promote|
rollback`` recorded in the store, read every :data:`POLL_S` and applied in place. No
redeploy, so no request is dropped; every replica converges within one poll."""

from __future__ import annotations

import asyncio
import logging

from serving.gateway._metrics import GatewayMetrics
from serving.store import Store
from serving.swap._events import latest_swap
from serving.swap._router import SwapRouter

log = logging.getLogger("gavel.gateway")

POLL_S = 1.0


class SwapStateWatcher:
    """Applies the swap's recorded state changes to this replica's :class:`SwapRouter`."""

    def __init__(self, router: SwapRouter, store: Store, metrics: GatewayMetrics) -> None:
        self._router = router
        self._store = store
        self._metrics = metrics
        self._applied = 0
        self._task: asyncio.Task[None] | None = None
        self.show()

    def show(self) -> None:
        """Publish the swap's shares and the change applied."""
        s = self._router.swap
        if s is None:
            return
        canary = 1.0 if s.promoted else s.canary_weight
        shadow = 0.0 if s.promoted else s.shadow_rate
        for kind, share in (("shadow", shadow), ("canary", canary)):
            self._metrics.swap_share.labels(s.production, s.candidate, kind).set(share)
        self._metrics.swap_state.set(self._applied)

    def start(self) -> None:
        """Start polling (idempotent; a replica with no swap does nothing). Until the
        first read succeeds, the router holds production alone (:meth:`SwapRouter.hold`)."""
        if self._router.swap is not None and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def refresh(self) -> None:
        """Apply the latest recorded change, if it is new."""
        s = self._router.swap
        if s is None:
            return
        event = await asyncio.to_thread(latest_swap, self._store, s.production, s.candidate)
        if event is None or event.id is None or event.id == self._applied:
            self._router.release()  # nothing newer recorded: the state held is current
            return
        self._router.apply(shadow_rate=event.shadow_rate, canary_weight=event.canary_weight,
                           promoted=event.promoted)  # fmt: skip
        self._applied = event.id
        log.info("swap %s -> %s: applied change %d (%s by %s)", s.production, s.candidate,
                 event.id, event.action, event.by)  # fmt: skip
        self.show()

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the store away: keep the state held, try again
                log.warning("swap state unavailable", exc_info=True)
            await asyncio.sleep(POLL_S)
