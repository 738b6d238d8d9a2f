"""A store seeded with sampled, judged records, for the labelling and calibration tests.

The records and verdicts are written straight into a real store (SQLite or PostgreSQL):
these tests are about people's labels, not about the judge model, which the daily-job
tests exercise against the real stack.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from judges._catalog import load_criteria
from judges._criteria import Criterion
from judges._store import VerdictStore
from judges._wire import Verdict
from serving import new_key
from serving._wire import Scope, TrafficRecord
from serving.store import Store
from tests.conftest import CONFIG, ROOT

LABELLED_CRITERIA = ("answers_question", "concise")


@dataclass
class Seeded:
    """What the seeded store holds and how to reach it."""

    store: Store
    day: date
    items: list[str]
    """Request ids, in queue order."""
    judge: dict[tuple[str, str], str]
    """(item, criterion) -> the judge's verdict."""
    criteria: list[Criterion]
    stack_config: Path
    judging_config: Path
    tmp: Path

    def key(self, scopes: list[Scope]) -> tuple[str, str]:
        """A new key with these scopes: (name, plaintext)."""
        name = f"labeller-{uuid.uuid4().hex[:8]}"
        plain, rec = new_key(name, scopes)
        self.store.add_key(rec)
        return name, plain


def secret(item_id: str, criterion: str) -> str:
    """The judge's reasoning text of a seeded verdict (must not leak before labelling)."""
    return f"JUDGE-REASONING-{criterion}-{item_id}"


def write_configs(tmp: Path, store_url: str, *, rubric_suffix: str = "") -> tuple[Path, Path]:
    """A stack config on ``store_url`` and a judging config on the shipped criteria."""
    stack = yaml.safe_load((ROOT / CONFIG).read_text())
    stack.setdefault("gateway", {})["store"] = {"url": store_url}
    crit_dir = tmp / "criteria"
    crit_dir.mkdir(exist_ok=True)
    shipped = yaml.safe_load((ROOT / "judges/criteria/general.yaml").read_text())
    if rubric_suffix:
        for c in shipped["criteria"]:
            if c["name"] == "answers_question":
                c["rubric"] += rubric_suffix
    (crit_dir / "general.yaml").write_text(yaml.safe_dump(shipped))
    judging = {"criteria_dir": str(crit_dir), "calibration": {"min_kappa": 0.6, "min_labels": 2}}
    s, j = tmp / "stack.yaml", tmp / "judging.yaml"
    s.write_text(yaml.safe_dump(stack))
    j.write_text(yaml.safe_dump(judging))
    return s, j


@pytest.fixture
def seeded(store_url: str, tmp_path: Path) -> Seeded:
    """Five judged records on a day of their own (so PostgreSQL runs do not mix)."""
    store = Store(store_url)
    store.ensure_schema()
    stack_cfg, judging_cfg = write_configs(tmp_path, store_url)
    criteria = load_criteria(tmp_path / "criteria")
    by_name = {c.name: c for c in criteria}
    day = date(1000, 1, 1) + timedelta(days=random.randrange(350_000))
    while store.traffic_for_day(day):  # the PostgreSQL test database outlives sessions
        day = date(1000, 1, 1) + timedelta(days=random.randrange(350_000))
    tag = uuid.uuid4().hex[:8]
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    records = [
        TrafficRecord(
            request_id=f"chatcmpl-{tag}-{i}",
            ts=ts + timedelta(minutes=i),
            key_name="app-team",
            model="app-model",
            role="app",
            endpoint="chat",
            stream=False,
            request={"messages": [{"role": "user", "content": f"Question {i}: what is {i}+{i}?"}]},
            response_text=f"The answer is {2 * i}.",
            status=200,
            metadata={"topic": "arithmetic"},
        )
        for i in range(5)
    ]
    store.insert_traffic(records)
    judge: dict[tuple[str, str], str] = {}
    verdicts = []
    for i, rec in enumerate(records):
        for j, name in enumerate(LABELLED_CRITERIA):
            value = "pass" if (i + j) % 2 == 0 else "fail"
            judge[(rec.request_id, name)] = value
            verdicts.append(
                Verdict(
                    item_id=rec.request_id,
                    criterion=name,
                    criterion_version=by_name[name].version,
                    kind="binary",
                    judge="binary",
                    judge_version="1",
                    judge_model="judge-model",
                    judge_args={"temperature": 0.0},
                    model="app-model",
                    day=day.isoformat(),
                    verdict=value,  # type: ignore[arg-type]
                    reasoning=secret(rec.request_id, name),
                    created_at=ts,
                )
            )
    VerdictStore(store).insert(verdicts)
    return Seeded(
        store=store,
        day=day,
        items=[r.request_id for r in records],
        judge=judge,
        criteria=criteria,
        stack_config=stack_cfg,
        judging_config=judging_cfg,
        tmp=tmp_path,
    )


@dataclass
class SeededPairs:
    """Judged shadow pairs on the seeded day: production answer ``PROD-i``, the
    candidate's ``CAND-i``."""

    item_ids: list[str]
    """``twin|shadow`` per pair, in index order."""
    judge: list[str]
    """The judge's winner per pair (by response: A production, B candidate)."""


def seed_pairs(seeded: Seeded, n: int = 8) -> SeededPairs:
    """``n`` production requests with their shadows, judged pairwise (both orders)."""
    crit = next(c for c in seeded.criteria if c.name == "preferred_response")
    tag = uuid.uuid4().hex[:8]
    ts = datetime(seeded.day.year, seeded.day.month, seeded.day.day, 13, tzinfo=UTC)
    records, verdicts, items, winners = [], [], [], []
    for i in range(n):
        body = {"model": "app-model", "messages": [{"role": "user", "content": f"Pair {i}?"}]}
        twin = TrafficRecord(
            request_id=f"chatcmpl-{tag}-p{i}", ts=ts + timedelta(minutes=i), key_name="app-team",
            model="app-model", role="app", endpoint="chat", stream=False, request=body,
            response_text=f"PROD-{i} answer", status=200, arm="production",
        )  # fmt: skip
        shadow = twin.model_copy(update={
            "request_id": uuid.uuid4().hex, "model": "app-terse", "source": "shadow",
            "arm": "candidate", "twin_id": twin.request_id, "response_text": f"CAND-{i}",
            "request": {**body, "model": "app-terse"},
        })  # fmt: skip
        records += [twin, shadow]
        winner = ("A", "B", "tie")[i % 3]
        item_id = f"{twin.request_id}|{shadow.request_id}"
        items.append(item_id)
        winners.append(winner)
        verdicts.append(Verdict(
            item_id=item_id, criterion=crit.name, criterion_version=crit.version,
            kind="pairwise", judge="pairwise", judge_version="1", judge_model="judge-model",
            judge_args={"temperature": 0.0}, model="app-model|app-terse",
            run_id=f"swap-app-terse-{seeded.day.isoformat()}", day=seeded.day.isoformat(),
            verdict=winner, order_winners=[winner, winner],
            reasoning=f"JUDGE-PAIR-{i}", created_at=ts,
        ))  # fmt: skip
    seeded.store.insert_traffic(records)
    VerdictStore(seeded.store).insert(verdicts)
    return SeededPairs(item_ids=items, judge=winners)
