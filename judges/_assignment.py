"""Labelling assignment: a queue split among named labellers, ``per_item`` people on
each item (as Langfuse's annotation queues and Opik's ``annotators_per_item`` do).

Which labellers get an item is decided by rendezvous hashing of (item, labeller): every
process and every rerun agrees without a table of assignments, each labeller gets about
``per_item / len(labellers)`` of the queue, and adding or removing one labeller moves
only the items that labeller gains or loses. Pure functions; the labelling app filters
its queues with :func:`assigned`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import Field, model_validator

from judges._labels import Label
from serving import GavelModel

LabellerName = Annotated[str, Field(min_length=1, max_length=128)]


class LabellingConfig(GavelModel):
    """``labelling:`` in the judging config: who labels what."""

    labellers: Annotated[list[LabellerName], Field(min_length=1)]
    """The labellers, by their keys' names (``gavel keys create NAME --scopes label``)."""
    per_item: Annotated[int, Field(ge=1)] = 1
    """How many of them label each item (for their agreement, ``per_item`` >= 2)."""

    @model_validator(mode="after")
    def _enough(self) -> LabellingConfig:
        if len(set(self.labellers)) != len(self.labellers):
            raise ValueError("labellers: a name is given twice")
        if self.per_item > len(self.labellers):
            raise ValueError(
                f"per_item ({self.per_item}) is more than the labellers named "
                f"({len(self.labellers)})"
            )
        return self


def _weight(item_id: str, labeller: str) -> bytes:
    return hashlib.sha256(f"{item_id}\0{labeller}".encode()).digest()


def assigned(item_id: str, labelling: LabellingConfig) -> list[str]:
    """The ``per_item`` labellers of an item (pure, stable across processes)."""
    ranked = sorted(labelling.labellers, key=lambda name: _weight(item_id, name))
    return ranked[: labelling.per_item]


def is_assigned(item_id: str, labeller: str, labelling: LabellingConfig | None) -> bool:
    """Whether ``labeller`` labels this item (everyone does without an assignment)."""
    return labelling is None or labeller in assigned(item_id, labelling)


class LabellerProgress(GavelModel):
    """One labeller's share of a queue, and how much of it is labelled."""

    labeller: str
    assigned: int
    labelled: int


def labelling_progress(
    labelling: LabellingConfig, item_ids: Iterable[str], labels: Sequence[Label]
) -> list[LabellerProgress]:
    """Each named labeller's assigned items and how many they labelled (pure)."""
    done = {(lab.item_id, lab.labeller) for lab in labels}
    counts = {name: [0, 0] for name in labelling.labellers}
    for item_id in set(item_ids):
        for name in assigned(item_id, labelling):
            counts[name][0] += 1
            counts[name][1] += (item_id, name) in done
    return [LabellerProgress(labeller=n, assigned=a, labelled=d) for n, (a, d) in counts.items()]
