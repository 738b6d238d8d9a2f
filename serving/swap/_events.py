"""A model swap's state in the store: every change (``gavel swap set|promote|rollback``)
with who made it and when. The gateway replicas read the latest one for their swap, so a
change reaches every replica without redeploying anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from serving._base import GavelModel
from serving.store._schema import swap_events, swap_reports
from serving.store._store import Store

SwapAction = Literal["set", "promote", "rollback"]


class SwapEvent(GavelModel):
    """One change of a swap's state."""

    id: int | None = None
    production: str
    candidate: str
    action: SwapAction
    shadow_rate: float
    canary_weight: float
    promoted: bool
    by: str
    at: datetime


def record_swap(
    store: Store,
    production: str,
    candidate: str,
    action: SwapAction,
    *,
    shadow_rate: float,
    canary_weight: float,
    promoted: bool,
    by: str,
) -> SwapEvent:
    """Record a change of the swap's state; returns it with its id."""
    event = SwapEvent(
        production=production, candidate=candidate, action=action, shadow_rate=shadow_rate,
        canary_weight=canary_weight, promoted=promoted, by=by, at=datetime.now(UTC),
    )  # fmt: skip
    with store.transaction() as conn:
        result = conn.execute(swap_events.insert().values(**event.model_dump(exclude={"id"})))
        key = result.inserted_primary_key
    return event.model_copy(update={"id": int(key[0]) if key else None})


def swap_history(store: Store, production: str, candidate: str) -> list[SwapEvent]:
    """Every change of this swap's state, oldest first."""
    rows = store.fetch(
        select(swap_events)
        .where(swap_events.c.production == production, swap_events.c.candidate == candidate)
        .order_by(swap_events.c.id)
    )
    return [SwapEvent.model_validate(r) for r in rows]


def latest_swap(store: Store, production: str, candidate: str) -> SwapEvent | None:
    """The swap's current state, if it was ever changed (else the config's holds)."""
    rows = store.fetch(
        select(swap_events)
        .where(swap_events.c.production == production, swap_events.c.candidate == candidate)
        .order_by(swap_events.c.id.desc())
        .limit(1)
    )
    return SwapEvent.model_validate(rows[0]) if rows else None


def record_swap_report(
    store: Store, production: str, candidate: str, *, last_day: str, decision: str, report: str
) -> None:
    """Keep a swap report's JSON document (``gavel swap report``), for the console."""
    with store.transaction() as conn:
        conn.execute(
            swap_reports.insert().values(
                production=production, candidate=candidate, last_day=last_day,
                decision=decision, report_json=report, created_at=datetime.now(UTC),
            )
        )  # fmt: skip


def latest_swap_report(store: Store, production: str, candidate: str) -> str | None:
    """The JSON document of this swap's last report, if one was made."""
    rows = store.fetch(
        select(swap_reports.c.report_json)
        .where(swap_reports.c.production == production, swap_reports.c.candidate == candidate)
        .order_by(swap_reports.c.id.desc())
        .limit(1)
    )
    return str(rows[0]["report_json"]) if rows else None
