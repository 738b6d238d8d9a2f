"""Pairwise items of the labelling page (``/pairs``): two answers to one request, and a
person says which is better, or a tie.

The pairs are those a pairwise judge has decided on captured traffic (a production
answer and its shadow on the candidate, judged by ``gavel swap report``). The page is
blind to the arms: each labeller sees the two answers on sides drawn at random (fixed
per labeller and pair, from a secret of this process), under an opaque pair id, with no
model, key or request id. The label is stored by response (``A``: the pair's first,
production; ``B``: the candidate), so sides never reach the calibration. The judge's
verdict is sent only once the pair is labelled.
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from judges._assignment import LabellingConfig, is_assigned
from judges._criteria import Criterion
from judges._labels import Label, LabelStore, Note
from judges._store import VerdictStore
from judges._wire import Verdict
from serving import ApiKey, GavelModel
from serving.store import Store

Side = Literal["left", "right", "tie"]
Response = Literal["A", "B", "tie"]


class PairSubmit(GavelModel):
    """A person's label of one pair, by the side it was shown on."""

    label: Side
    note: Note | None = None


class PairEntry(GavelModel):
    """One pair in the queue (no judge verdict here)."""

    pair_id: str
    criterion: str
    labelled: bool


class PairLabelView(GavelModel):
    """One label of the pair, by screen side."""

    label: Side
    note: str | None
    labelled_at: datetime


class PairView(GavelModel):
    """A pair as the page shows it: the request, the two answers, the person's label and
    history; the judge's verdict only once labelled."""

    pair_id: str
    criterion: str
    description: str
    rubric: str
    request: dict[str, Any]
    left: str
    right: str
    human: PairLabelView | None
    history: list[PairLabelView]
    """This labeller's labels of the pair, oldest first (changes included)."""
    revealed: bool
    judge_verdict: Side | None = None
    judge_orders: list[Side] | None = None
    """The judge's winner with the answers in each of its two orders, by screen side."""


class PairLabels:
    """The queue, views and labels of pairs, for a set of pairwise criteria."""

    def __init__(
        self, store: Store, criteria: Sequence[Criterion], labelling: LabellingConfig | None = None
    ) -> None:
        self.store, self.labelling = store, labelling
        self.crits = {c.name: c for c in criteria}
        self.vstore, self.lstore = VerdictStore(store), LabelStore(store)
        self._secret = secrets.token_bytes(32)

    def _pid(self, v: Verdict) -> str:
        msg = f"{v.criterion}\0{v.item_id}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:20]

    def swapped(self, labeller: str, v: Verdict) -> bool:
        """True if this labeller sees the pair's second answer on the left."""
        msg = f"side\0{labeller}\0{v.criterion}\0{v.item_id}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[0] & 1 == 1

    def pairs(self, day: str | None = None) -> list[Verdict]:
        """Judged pairs of captured traffic (current criterion versions; judged on ``day``
        if given), by pair id."""
        versions = {n: c.version for n, c in self.crits.items()}
        found = [v for v in self.vstore.current(versions, day=day)
                 if v.verdict in ("A", "B", "tie") and v.item_id.count("|") == 1]  # fmt: skip
        ids = {i for v in found for i in v.item_id.split("|")}
        known = {r.request_id for r in self.store.traffic_by_ids(sorted(ids))} if ids else set()
        kept = [v for v in found if all(i in known for i in v.item_id.split("|"))]
        return sorted(kept, key=self._pid)

    def _mine(self, labeller: str, item_ids: list[str]) -> dict[tuple[str, str], Label]:
        return {(lab.item_id, lab.criterion): lab
                for lab in self.lstore.for_items(item_ids, labeller=labeller)
                if lab.criterion in self.crits
                and lab.criterion_version == self.crits[lab.criterion].label_version}  # fmt: skip

    def queue(
        self, labeller: str, day: str | None = None, *, everything: bool = False
    ) -> list[PairEntry]:
        """Every pair assigned to this labeller (every pair with ``everything``: an admin;
        judged on ``day`` if given), with whether they labelled it."""
        found = [v for v in self.pairs(day)
                 if everything or is_assigned(v.item_id, labeller, self.labelling)]  # fmt: skip
        mine = self._mine(labeller, [v.item_id for v in found])
        return [PairEntry(pair_id=self._pid(v), criterion=v.criterion,
                          labelled=(v.item_id, v.criterion) in mine) for v in found]  # fmt: skip

    def find(self, pair_id: str) -> Verdict:
        """The pair's verdict, or 404."""
        for v in self.pairs():
            if hmac.compare_digest(self._pid(v), pair_id):
                return v
        raise HTTPException(404, f"no judged pair {pair_id!r} to label")

    def view(self, pair_id: str, labeller: str) -> PairView:
        """The pair for this labeller, on their sides."""
        return self._view(self.find(pair_id), pair_id, labeller)

    def _view(self, v: Verdict, pair_id: str, labeller: str) -> PairView:
        first, second = v.item_id.split("|")
        recs = {r.request_id: r for r in self.store.traffic_by_ids([first, second])}
        swapped = self.swapped(labeller, v)
        a, b = recs[first].response_text or "", recs[second].response_text or ""
        crit = self.crits[v.criterion]
        to_side = _to_side(swapped)
        mine = self._mine(labeller, [v.item_id]).get((v.item_id, v.criterion))
        history = [
            PairLabelView(label=_side(to_side, h.label), note=h.note, labelled_at=h.labelled_at)
            for h in self.lstore.history(v.item_id)
            if h.labeller == labeller and h.criterion == v.criterion
            and h.criterion_version == crit.label_version and h.label in to_side
        ]  # fmt: skip
        human = (PairLabelView(label=_side(to_side, mine.label), note=mine.note,
                               labelled_at=mine.labelled_at) if mine else None)  # fmt: skip
        revealed = human is not None
        return PairView(
            pair_id=pair_id, criterion=crit.name, description=crit.description,
            rubric=crit.rubric, request=_request_only(recs[first].request),
            left=b if swapped else a, right=a if swapped else b, human=human, history=history,
            revealed=revealed,
            judge_verdict=_side(to_side, v.verdict) if revealed else None,
            judge_orders=[_side(to_side, w) for w in v.order_winners or []] if revealed else None,
        )  # fmt: skip

    def put(
        self, pair_id: str, body: PairSubmit, labeller: str, *, everything: bool = False
    ) -> PairView:
        """Store the label by response and return the pair, now revealed (403 for a pair
        assigned to others, unless ``everything``: an admin)."""
        v = self.find(pair_id)
        if not everything and not is_assigned(v.item_id, labeller, self.labelling):
            raise HTTPException(403, f"This pair is assigned to other labellers than {labeller!r}.")
        by_side = {side: resp for resp, side in _to_side(self.swapped(labeller, v)).items()}
        crit = self.crits[v.criterion]
        self.lstore.upsert([Label(
            item_id=v.item_id, criterion=crit.name, criterion_version=crit.label_version,
            label=by_side[body.label], note=body.note or None, labeller=labeller,
            labelled_at=datetime.now(UTC),
        )])  # fmt: skip
        return self._view(v, pair_id, labeller)


def _to_side(swapped: bool) -> dict[Response, Side]:
    """Response (A/B/tie) -> the side this labeller sees it on."""
    return {"A": "right" if swapped else "left", "B": "left" if swapped else "right", "tie": "tie"}


def _side(to_side: dict[Response, Side], winner: str) -> Side:
    """The side of a response named A, B or tie."""
    return to_side.get(winner, "tie")  # type: ignore[call-overload]


_REQUEST_FIELDS = ("messages", "prompt")


def _request_only(body: dict[str, Any]) -> dict[str, Any]:
    """What was asked, without the model id or any setting that could tell the arm."""
    return {k: body[k] for k in _REQUEST_FIELDS if k in body}


def add_pair_routes(app: FastAPI, labels: PairLabels, who: Any, html: str) -> None:
    """The page at ``/pairs`` and its API under ``/api/pairs``; ``who`` is the sign-in
    dependency of the labelling app."""

    @app.get("/pairs", response_class=HTMLResponse)
    def pair_page() -> str:
        return html

    @app.get("/api/pairs")
    def pair_queue(me: Annotated[ApiKey, who], day: date | None = None) -> list[PairEntry]:
        return labels.queue(me.name, day.isoformat() if day else None,
                            everything=me.allows("admin"))  # fmt: skip

    @app.get("/api/pairs/{pair_id}")
    def pair(pair_id: str, me: Annotated[ApiKey, who]) -> PairView:
        return labels.view(pair_id, me.name)

    @app.put("/api/pairs/{pair_id}")
    def put_pair(pair_id: str, body: PairSubmit, me: Annotated[ApiKey, who]) -> PairView:
        return labels.put(pair_id, body, me.name, everything=me.allows("admin"))
