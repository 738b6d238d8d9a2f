"""From looking at the data to a regression suite: labelled production records become a
golden dataset, and the records the judge got wrong are tagged ``judge_miss``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from judges import JudgingConfig, LabelStore, VerdictStore, consensus, default_kinds, load_criteria
from serving.store import Store


def promote(
    store: Store, judging: JudgingConfig, *, first: date, last: date | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Dataset lines (dicts) for every labelled record judged in ``first..last``, and how
    many are tagged ``judge_miss`` (some criterion's verdict differs from the label)."""
    kinds = default_kinds()
    criteria = kinds.pass_fail(load_criteria(Path(judging.criteria_dir), kinds))
    versions = {c.name: c.version for c in criteria}
    verdicts = [
        v
        for v in VerdictStore(store).current(versions)
        if v.day is not None and first.isoformat() <= v.day <= (last or date.max).isoformat()
    ]
    labels = LabelStore(store).for_items({v.item_id for v in verdicts})
    label_versions = {c.name: c.label_version for c in criteria}
    labels = [lab for lab in labels if label_versions.get(lab.criterion) == lab.criterion_version]
    agreed = {}
    for name in versions:
        mine, _ = consensus([lab for lab in labels if lab.criterion == name])
        agreed.update({(lab.item_id, name): lab.label for lab in mine})
    judged = {(v.item_id, v.criterion): v.verdict for v in verdicts}
    records = {r.request_id: r for r in store.traffic_by_ids({i for i, _ in agreed})}
    lines: list[dict[str, Any]] = []
    misses = 0
    for item_id in sorted({i for i, _ in agreed}):
        rec = records.get(item_id)
        if rec is None or rec.response_text is None:
            continue
        item_labels = {c: lab for (i, c), lab in agreed.items() if i == item_id}
        miss = any(judged.get((item_id, c)) not in (None, lab) for c, lab in item_labels.items())
        misses += miss
        line: dict[str, Any] = {
            "id": item_id,
            "response": rec.response_text,
            "labels": item_labels,
            "tags": ["judge_miss"] if miss else [],
            "metadata": {"model": rec.model, "day": rec.ts.date().isoformat()},
        }
        if isinstance(rec.request.get("messages"), list):
            line["messages"] = rec.request["messages"]
        else:
            line["prompt"] = str(rec.request.get("prompt", ""))
        if "expected" in rec.metadata:
            line["expected"] = rec.metadata["expected"]
        lines.append(line)
    return lines, misses
