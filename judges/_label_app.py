"""The labelling page (``gavel label``): people read sampled records and label them.

A small FastAPI app over the same store as the gateway. Sign-in is with a gateway key
that has the ``label`` (or ``admin``) scope; the key's name is the labeller. The judge's
verdicts of a record are sent only once every applicable criterion of that record has a
label, so the page cannot show them earlier.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, Response
from pydantic import Field
from starlette.exceptions import HTTPException

from judges._assignment import LabellingConfig, is_assigned
from judges._calibration import LabellerAgreement, labeller_agreement
from judges._criteria import Criterion
from judges._label_access import Sessions, Who, _labeller, add_guards, add_session_routes
from judges._labels import Label, LabelStore, Note
from judges._pair_app import PairLabels, add_pair_routes
from judges._registry import KindRegistry
from judges._store import VerdictStore
from judges._wire import Verdict
from judges.kinds import default_kinds
from serving import GavelModel
from serving.store import Store


class LabelInput(GavelModel):
    """One criterion's label as the page sends it."""

    criterion: Annotated[str, Field(min_length=1, max_length=128)]
    label: Literal["pass", "fail"]
    note: Note | None = None
    criterion_note: Note | None = None


class LabelSubmit(GavelModel):
    """The labels of one record."""

    labels: Annotated[list[LabelInput], Field(min_length=1)]


class CriterionView(GavelModel):
    """One applicable criterion of a record; the judge's side only once revealed."""

    name: str
    kind: str
    description: str
    rubric: str
    human: Label | None = None
    judge_verdict: str | None = None
    judge_reasoning: str | None = None
    judge: str | None = None
    """Judge name and version, e.g. ``binary@1``."""


class RecordView(GavelModel):
    """A sampled record as the page shows it."""

    item_id: str
    day: str
    model: str
    key_name: str | None
    endpoint: str
    request: dict[str, Any]
    response_text: str | None
    metadata: dict[str, str]
    criteria: list[CriterionView]
    revealed: bool
    """True once every criterion has a label: the judge's verdicts are then included."""


class QueueEntry(GavelModel):
    """One record in the labelling queue (no judge verdicts here)."""

    item_id: str
    day: str
    model: str
    labelled: bool
    disagreement: bool
    """Some labelled criterion where the judge said otherwise (only known once labelled)."""


class Filters(GavelModel):
    """Queue filters; all optional."""

    day: str | None = None
    model: str | None = None
    criterion: str | None = None
    verdict: Literal["pass", "fail", "error"] | None = None
    """The judge's verdict (on ``criterion`` if given, else on any criterion). Applies to
    records the labeller has labelled only: it never tells which unlabelled records the
    judge failed."""
    disagreement: bool = False


def build_queue(
    verdicts: Sequence[Verdict], labels: Sequence[Label], filters: Filters
) -> list[QueueEntry]:
    """The records to label, in (day, item) order, after the filters. Pure.

    ``verdicts`` are those of the pass/fail criteria on the page; ``labels`` are the
    labeller's own, at the criteria's current label versions. Filtering by the judge's
    verdict keeps labelled records only, so the queue never reveals a verdict before the
    labeller has labelled the record.
    """
    by_item: dict[str, dict[str, Verdict]] = defaultdict(dict)
    for v in verdicts:
        by_item[v.item_id][v.criterion] = v
    human = {(lab.item_id, lab.criterion): lab for lab in labels}
    out: list[QueueEntry] = []
    for item_id, crits in by_item.items():
        if filters.criterion is not None and filters.criterion not in crits:
            continue
        mine = {c: human.get((item_id, c)) for c in crits}
        labelled = all(lab is not None for lab in mine.values())
        if filters.verdict is not None:
            looked = [crits[filters.criterion]] if filters.criterion else list(crits.values())
            if not labelled or not any(v.verdict == filters.verdict for v in looked):
                continue
        disagree = any(
            lab is not None
            and crits[c].verdict in ("pass", "fail")
            and lab.label != crits[c].verdict
            for c, lab in mine.items()
        )
        if filters.disagreement and not disagree:
            continue
        first = next(iter(crits.values()))
        out.append(
            QueueEntry(
                item_id=item_id,
                day=first.day or first.run_id,
                model=first.model,
                labelled=labelled,
                disagreement=disagree,
            )
        )
    out.sort(key=lambda e: (e.day, e.item_id))
    return out


class _Records:
    """The records of the pass/fail queue: each as a labeller sees it, and their labels."""

    def __init__(self, store: Store, crits: dict[str, Criterion]) -> None:
        self.store, self.crits = store, crits
        self.versions = {name: c.version for name, c in crits.items()}
        self.label_versions = {name: c.label_version for name, c in crits.items()}
        self.vstore, self.lstore = VerdictStore(store), LabelStore(store)

    def mine(self, item_ids: set[str] | list[str], labeller: str) -> list[Label]:
        """The labeller's labels of these items, at the criteria's current label versions."""
        return [lab for lab in self.lstore.for_items(item_ids, labeller=labeller)
                if self.label_versions.get(lab.criterion) == lab.criterion_version]  # fmt: skip

    def view(self, item_id: str, labeller: str) -> RecordView:
        """The record with its criteria; the judge's side once every one is labelled."""
        found = self.vstore.current(self.versions, item_id=item_id)  # pass/fail criteria only
        recs = self.store.traffic_by_ids([item_id])
        if not found or not recs:
            raise HTTPException(404, f"no sampled record {item_id!r} to label")
        rec = recs[0]
        human = {lab.criterion: lab for lab in self.mine([item_id], labeller)}
        revealed = all(v.criterion in human for v in found)
        views = []
        for v in sorted(found, key=lambda v: v.criterion):
            c = self.crits[v.criterion]
            views.append(CriterionView(
                name=c.name, kind=c.kind, description=c.description, rubric=c.rubric,
                human=human.get(c.name),
                judge_verdict=v.verdict if revealed else None,
                judge_reasoning=(v.reasoning or v.error) if revealed else None,
                judge=f"{v.judge}@{v.judge_version} ({v.judge_model})" if revealed else None,
            ))  # fmt: skip
        return RecordView(
            item_id=item_id, day=found[0].day or found[0].run_id, model=rec.model,
            key_name=rec.key_name, endpoint=rec.endpoint, request=rec.request,
            response_text=rec.response_text, metadata=rec.metadata, criteria=views,
            revealed=revealed,
        )  # fmt: skip

    def put(self, item_id: str, body: LabelSubmit, labeller: str) -> RecordView:
        """Keep the labeller's labels of a record; returns the record as they now see it."""
        applicable = {c.name for c in self.view(item_id, labeller).criteria}
        names = [i.criterion for i in body.labels]
        for name in names:
            if name not in applicable:
                raise HTTPException(
                    400, f"criterion: {name!r} does not apply to this record ({item_id})"
                )
        if len(set(names)) != len(names):
            raise HTTPException(400, "labels: a criterion is given twice")
        now = datetime.now(UTC)
        self.lstore.upsert(
            Label(item_id=item_id, criterion=i.criterion,
                  criterion_version=self.label_versions[i.criterion], label=i.label,
                  note=i.note or None, criterion_note=i.criterion_note or None,
                  labeller=labeller, labelled_at=now)
            for i in body.labels
        )  # fmt: skip
        return self.view(item_id, labeller)


def build_label_app(
    store: Store,
    criteria: Sequence[Criterion],
    *,
    kinds: KindRegistry | None = None,
    labelling: LabellingConfig | None = None,
) -> FastAPI:
    """The labelling app over ``store``, for the pass/fail ``criteria`` (current versions);
    with ``labelling``, each labeller's queues hold only the items assigned to them."""
    registry = kinds or default_kinds()
    crits = {c.name: c for c in registry.pass_fail(criteria)}
    store.ensure_schema()
    records = _Records(store, crits)
    app = FastAPI(title="Gavel labelling", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.sessions = Sessions()
    add_guards(app)
    add_session_routes(app, store)
    files = resources.files("judges")
    html = files.joinpath("label_page.html").read_text(encoding="utf-8")
    pair_html = files.joinpath("pair_page.html").read_text(encoding="utf-8")
    common = files.joinpath("label_common.js").read_text(encoding="utf-8")
    paired = registry.pairwise(criteria)
    add_pair_routes(app, PairLabels(store, paired, labelling), Depends(_labeller), pair_html)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return html

    @app.get("/common.js")
    def common_js() -> Response:
        return Response(common, media_type="text/javascript")

    @app.get("/api/me")
    def me(who: Who) -> dict[str, Any]:
        return {"labeller": who.name, "criteria": sorted(crits)}

    @app.get("/api/queue")
    def queue(who: Who, filters: Annotated[Filters, Depends()]) -> list[QueueEntry]:
        if filters.criterion is not None and filters.criterion not in crits:
            raise HTTPException(400, f"criterion: no pass/fail criterion {filters.criterion!r}")
        current = records.vstore.current(records.versions, day=filters.day, model=filters.model)
        found = [v for v in current
                 if who.allows("admin") or is_assigned(v.item_id, who.name, labelling)]  # fmt: skip
        return build_queue(found, records.mine({v.item_id for v in found}, who.name), filters)

    @app.get("/api/agreement")
    def agreement(who: Who) -> list[LabellerAgreement]:
        """Agreement between labellers per criterion: the ceiling for the judge's kappa."""
        return labeller_agreement(list(crits.values()), records.lstore.query())

    @app.get("/api/records/{item_id:path}")
    def record(item_id: str, who: Who) -> RecordView:
        return records.view(item_id, who.name)

    @app.put("/api/labels/{item_id:path}")
    def put_labels(item_id: str, body: LabelSubmit, who: Who) -> RecordView:
        if not who.allows("admin") and not is_assigned(item_id, who.name, labelling):
            raise HTTPException(
                403, f"This record is assigned to other labellers than {who.name!r}."
            )
        return records.put(item_id, body, who.name)

    return app
