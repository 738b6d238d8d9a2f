"""Labelling assignment: a queue split among named labellers, ``per_item`` on each item;
stable, balanced, and moving little when a labeller joins; the labelling app's queues
hold each labeller's share only."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from judges import Label, LabellingConfig, assigned, labelling_progress

TEAM = LabellingConfig(labellers=["alice", "bob", "carol", "dan"], per_item=2)


def test_each_item_gets_per_item_distinct_labellers_stably_and_evenly() -> None:
    items = [f"r{i}" for i in range(4000)]
    shares = Counter(name for i in items for name in assigned(i, TEAM))
    assert all(len(set(assigned(i, TEAM))) == 2 for i in items[:50])
    assert [assigned(i, TEAM) for i in items[:50]] == [assigned(i, TEAM) for i in items[:50]]
    assert set(shares) == set(TEAM.labellers)
    assert all(abs(n / len(items) - 0.5) < 0.03 for n in shares.values()), shares


def test_a_new_labeller_takes_a_share_and_moves_nothing_else() -> None:
    items = [f"r{i}" for i in range(2000)]
    bigger = LabellingConfig(labellers=[*TEAM.labellers, "erin"], per_item=2)
    for i in items:
        before, after = set(assigned(i, TEAM)), set(assigned(i, bigger))
        assert after - {"erin"} <= before  # only erin's arrival changes who has an item
    assert sum("erin" in assigned(i, bigger) for i in items) == pytest.approx(800, abs=80)


def test_progress_counts_each_labellers_share() -> None:
    items = [f"r{i}" for i in range(40)]
    now = datetime.now(UTC)
    done = [Label(item_id=i, criterion="c", criterion_version="1", label="pass",
                  labeller=assigned(i, TEAM)[0], labelled_at=now) for i in items[:10]]  # fmt: skip
    rows = {p.labeller: p for p in labelling_progress(TEAM, items, done)}
    assert sum(p.assigned for p in rows.values()) == 80
    assert sum(p.labelled for p in rows.values()) == 10


def test_the_config_refuses_more_per_item_than_labellers_and_repeats() -> None:
    with pytest.raises(ValidationError, match="per_item"):
        LabellingConfig(labellers=["alice"], per_item=2)
    with pytest.raises(ValidationError, match="twice"):
        LabellingConfig(labellers=["alice", "alice"], per_item=1)


def test_the_label_app_queues_hold_each_labellers_share(seeded) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from judges import build_label_app
    from tests.judges.conftest import seed_pairs

    pairs = seed_pairs(seeded)
    names, secrets = [], {}
    for _ in range(3):
        name, plain = seeded.key(["label"])
        names.append(name)
        secrets[name] = plain
    team = LabellingConfig(labellers=names, per_item=2)
    app = build_label_app(seeded.store, seeded.criteria, labelling=team)
    seen: Counter[str] = Counter()
    for name in names:
        client = TestClient(app)
        auth = {"Authorization": f"Bearer {secrets[name]}"}
        queue = [e["item_id"] for e in client.get("/api/queue", headers=auth).json()]
        assert queue and all(name in assigned(i, team) for i in queue)
        seen.update(queue)
        assert len(client.get("/api/pairs", headers=auth).json()) == sum(
            name in assigned(i, team) for i in pairs.item_ids
        )
    ours = {i: n for i, n in seen.items() if i in seeded.items}  # PostgreSQL: a shared store
    assert set(ours.values()) == {2} and set(ours) == set(seeded.items)  # 2 people each
    _, boss = seeded.key(["admin"])
    everything = TestClient(app).get("/api/queue", headers={"Authorization": f"Bearer {boss}"})
    assert set(seeded.items) <= {e["item_id"] for e in everything.json()}
    _, stranger = seeded.key(["label"])  # not named: nothing to label
    assert (
        TestClient(app).get("/api/queue", headers={"Authorization": f"Bearer {stranger}"}).json()
        == []
    )


def test_labels_and_pairs_of_others_are_refused_but_an_admin_sees_every_pair(seeded) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from judges import build_label_app
    from tests.judges.conftest import seed_pairs

    seed_pairs(seeded)
    _, boss = seeded.key(["admin"])
    for _ in range(50):  # labellers with random names: until each holds a record and a pair
        (alice, a_key), (bob, b_key) = seeded.key(["label"]), seeded.key(["label"])
        team = LabellingConfig(labellers=[alice, bob], per_item=1)
        app = build_label_app(seeded.store, seeded.criteria, labelling=team)
        bobs = [i for i in seeded.items if assigned(i, team) == [bob]]
        as_alice = TestClient(app, headers={"Authorization": f"Bearer {a_key}"})
        as_boss = TestClient(app, headers={"Authorization": f"Bearer {boss}"})
        mine = {e["pair_id"] for e in as_alice.get("/api/pairs").json()}
        every = {e["pair_id"] for e in as_boss.get("/api/pairs").json()}
        if bobs and mine < every:
            break
    item = bobs[0]
    crits = as_alice.get(f"/api/records/{item}").json()["criteria"]
    body = {"labels": [{"criterion": c["name"], "label": "pass"} for c in crits]}
    refused = as_alice.put(f"/api/labels/{item}", json=body)
    assert refused.status_code == 403 and "assigned" in refused.json()["error"]["message"]
    as_bob = TestClient(app, headers={"Authorization": f"Bearer {b_key}"})
    assert as_bob.put(f"/api/labels/{item}", json=body).status_code == 200
    assert mine < every
    other = next(iter(every - mine))
    pair = as_alice.put(f"/api/pairs/{other}", json={"label": "left"})
    assert pair.status_code == 403
