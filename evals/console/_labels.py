"""The console's labelling view: the queues' assignment (who labels what, ``per_item``
people on each item) with each labeller's progress, and the agreement between labellers
per criterion (the ceiling for a judge's kappa). The queues themselves are the labelling
pages, mounted at ``/label/`` and ``/label/pairs``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from evals.console._access import require
from evals.console._pages import Pages
from judges import (
    JudgingConfig,
    LabelStore,
    VerdictStore,
    default_kinds,
    labeller_agreement,
    labelling_progress,
)
from serving.store import Store


def add_routes(app: FastAPI, page: Pages, judging: JudgingConfig, criteria: list[Any]) -> None:
    """``/labels``."""
    store: Store = app.state.store
    kinds = default_kinds()
    crits = {c.name: c for c in kinds.pass_fail(criteria)}
    paired = {c.name: c for c in kinds.pairwise(criteria)}

    @app.get("/labels", response_class=HTMLResponse)
    def labels(request: Request) -> HTMLResponse:
        require(request, "view")
        lstore = LabelStore(store)
        every = lstore.query()
        progress = None
        if judging.labelling is not None:
            versions = {n: c.version for n, c in {**crits, **paired}.items()}
            items = {v.item_id for v in VerdictStore(store).current(versions)}
            progress = labelling_progress(judging.labelling, items, every)
        agreement = labeller_agreement(list(crits.values()), every)
        return page(request, "labels.html", labelling=judging.labelling, progress=progress,
                    agreement=agreement)  # fmt: skip
