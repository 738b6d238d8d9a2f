"""Labelled production records become a golden dataset; judge misses are tagged."""

from __future__ import annotations

from datetime import UTC, datetime

from evals._promote import promote
from evals._suite import load_dataset
from judges import JudgingConfig, Label, LabelStore
from tests.judges.conftest import Seeded, seeded  # noqa: F401  (the fixture)


def test_promote_writes_labelled_records_and_tags_judge_misses(seeded: Seeded, tmp_path) -> None:  # noqa: F811
    by = {c.name: c for c in seeded.criteria}
    a, b = seeded.items[:2]
    now = datetime.now(UTC)
    flipped = "fail" if seeded.judge[(a, "concise")] == "pass" else "pass"
    LabelStore(seeded.store).upsert(
        [
            Label(
                item_id=a,
                criterion="concise",
                criterion_version=by["concise"].label_version,
                label=flipped,
                labeller="alice",
                labelled_at=now,
            ),
            Label(
                item_id=b,
                criterion="concise",
                criterion_version=by["concise"].label_version,
                label=seeded.judge[(b, "concise")],
                labeller="alice",
                labelled_at=now,
            ),
        ]
    )
    judging = JudgingConfig(criteria_dir=str(seeded.tmp / "criteria"))
    lines, misses = promote(seeded.store, judging, first=seeded.day, last=seeded.day)
    assert [line["id"] for line in lines] == sorted([a, b]) and misses == 1
    miss = next(line for line in lines if line["id"] == a)
    assert miss["tags"] == ["judge_miss"] and miss["labels"] == {"concise": flipped}
    path = tmp_path / "golden.jsonl"
    import json

    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    items = load_dataset(path)  # a valid dataset for `gavel eval judge`
    assert items[0].response and items[0].messages
