"""Labels on real stores (SQLite and PostgreSQL): upserts, JSONL import/export, the
labelling API's errors and reveal rule, ``gavel judge calibrate`` and the daily report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from evals._trust import pairwise_trust
from judges._calibration import CalibrationConfig, calibrate
from judges._config import load_judging
from judges._label_app import Filters, build_label_app, build_queue
from judges._labels import Label, LabelStore
from judges._report import write_reports
from judges._result import DailyResult
from judges._rows import RateRow
from judges._store import VerdictStore
from tests.conftest import gavel_main, run_gavel
from tests.judges.conftest import LABELLED_CRITERIA, Seeded, secret, seed_pairs, write_configs


def _label(s: Seeded, item: str, crit: str, value: str, who: str = "alice") -> Label:
    version = next(c.label_version for c in s.criteria if c.name == crit)
    return Label(
        item_id=item,
        criterion=crit,
        criterion_version=version,
        label=value,  # type: ignore[arg-type]
        labeller=who,
        labelled_at=datetime.now(UTC),
    )


def _labels_of(s: Seeded) -> list[Label]:
    return LabelStore(s.store).for_items(s.items)


def test_relabel_updates_never_duplicates_and_keeps_history(seeded: Seeded) -> None:
    store = LabelStore(seeded.store)
    item = seeded.items[0]
    store.upsert([_label(seeded, item, "concise", "pass", "alice")])
    store.upsert([_label(seeded, item, "concise", "fail", "alice")])
    got = store.for_items([item])
    assert len(got) == 1
    assert (got[0].label, got[0].labeller) == ("fail", "alice")
    # A second person keeps a label of their own; the history keeps the change.
    store.upsert([_label(seeded, item, "concise", "pass", "bob")])
    got = store.for_items([item])
    assert sorted((g.labeller, g.label) for g in got) == [("alice", "fail"), ("bob", "pass")]
    assert [(h.labeller, h.label) for h in store.history(item)] == [
        ("alice", "pass"), ("alice", "fail"), ("bob", "pass"),
    ]  # fmt: skip


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _gavel_cfg(s: Seeded) -> list[str]:
    return ["--config", str(s.stack_config), "--judging", str(s.judging_config)]


def test_import_with_a_bad_row_changes_nothing_and_names_the_line(seeded: Seeded) -> None:
    a, b = seeded.items[:2]
    LabelStore(seeded.store).upsert([_label(seeded, a, "concise", "pass")])
    before = _labels_of(seeded)
    path = _write(
        seeded.tmp / "labels.jsonl",
        [
            {"item_id": a, "criterion": "concise", "label": "fail"},  # would update
            {"item_id": b, "criterion": "concise", "label": "pass"},
            "",
            {"item_id": b, "criterion": "answers_question", "label": "maybe"},
            "{not json",
            {"item_id": b, "criterion": "nonexistent", "label": "pass"},
            {"item_id": b, "criterion": "concise", "label": "fail"},
        ],
    )
    # The label group's one subprocess test: the console script itself.
    proc = run_gavel("label", "import", str(path), *_gavel_cfg(seeded))
    assert proc.returncode == 2, proc.stdout
    assert f"{path}:4: label:" in proc.stderr
    assert f"{path}:5: not valid JSON" in proc.stderr
    assert f"{path}:6: criterion: unknown criterion 'nonexistent'" in proc.stderr
    assert f"{path}:7: duplicate of line 2" in proc.stderr
    assert "nothing was imported" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _labels_of(seeded) == before


def test_import_export_round_trip(seeded: Seeded) -> None:
    a, b = seeded.items[:2]
    src = _write(
        seeded.tmp / "golden.jsonl",
        [
            {"item_id": a, "criterion": "concise", "label": "fail", "note": "rambles"},
            {
                "item_id": b,
                "criterion": "answers_question",
                "label": "pass",
                "labeller": "carol",
                "labelled_at": "2026-11-01T10:00:00Z",
                "criterion_note": "should allow partial answers",
            },
        ],
    )
    proc = gavel_main("label", "import", str(src), "--labeller", "golden", *_gavel_cfg(seeded))
    assert proc.returncode == 0, proc.stderr
    assert "imported 2 labels" in proc.stdout
    got = {(lab.item_id, lab.criterion): lab for lab in _labels_of(seeded)}
    assert got[(a, "concise")].labeller == "golden" and got[(a, "concise")].note == "rambles"
    assert got[(b, "answers_question")].labeller == "carol"
    out = seeded.tmp / "out" / "labels.jsonl"
    proc = gavel_main("label", "export", str(out), *_gavel_cfg(seeded))
    assert proc.returncode == 0, proc.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [r for r in exported if r["item_id"] in seeded.items]
    assert len(mine) == 2
    assert all(r["criterion_version"] and r["labeller"] and r["labelled_at"] for r in mine)
    # Importing the export again updates in place: still two labels.
    proc = gavel_main("label", "import", str(out), *_gavel_cfg(seeded))
    assert proc.returncode == 0, proc.stderr
    assert len(_labels_of(seeded)) == 2


def test_calibrate_cli_numbers_drift_notes_and_new_version(seeded: Seeded) -> None:
    # Humans agree with the judge on answers_question for 4 records and disagree on 1.
    rows = []
    for item in seeded.items:
        judge = seeded.judge[(item, "answers_question")]
        human = judge if item != seeded.items[0] else ("fail" if judge == "pass" else "pass")
        rows.append({"item_id": item, "criterion": "answers_question", "label": human})
    rows[1]["criterion_note"] = "unclear for arithmetic"
    path = _write(seeded.tmp / "l.jsonl", rows)
    assert gavel_main("label", "import", str(path), *_gavel_cfg(seeded)).returncode == 0
    # Expected, by hand, from the same labels and the seeded verdicts.
    expected = calibrate(
        seeded.criteria,
        LabelStore(seeded.store).query(),
        VerdictStore(seeded.store).current({c.name: c.version for c in seeded.criteria}),
        CalibrationConfig(min_kappa=0.6, min_labels=2),
        criterion="answers_question",
    )[0]
    out = seeded.tmp / "cal.json"
    proc = gavel_main(
        "judge", "calibrate", "--criterion", "answers_question", "--json", str(out),
        *_gavel_cfg(seeded),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())[0]
    assert got["agreement"] == expected.agreement
    assert got["kappa"] == expected.kappa
    assert "answers_question" in proc.stdout and "unclear for arithmetic" in proc.stdout
    # On PostgreSQL other tests' labels share the table; on a clean store n is exactly 5.
    assert got["n"] >= 5

    bad = gavel_main("judge", "calibrate", "--criterion", "nope", *_gavel_cfg(seeded))
    assert bad.returncode == 2 and "unknown criterion 'nope'" in bad.stderr

    # A new rubric is a new version: its calibration starts from nothing.
    new_tmp = seeded.tmp / "v2"
    new_tmp.mkdir()
    stack2, judging2 = write_configs(new_tmp, seeded.store.url, rubric_suffix=" Be strict.")
    proc = gavel_main(
        "judge", "calibrate", "--criterion", "answers_question", "--json", str(out),
        "--config", str(stack2), "--judging", str(judging2),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fresh = json.loads(out.read_text())[0]
    assert fresh["n"] == 0 and not fresh["trusted"]
    assert fresh["earlier_version_labels"] >= 5
    assert "earlier version" in proc.stdout  # the drift note is still listed


def _client(s: Seeded, scopes: list[str]) -> tuple[TestClient, str]:
    name, key = s.key(scopes)  # type: ignore[arg-type]
    client = TestClient(build_label_app(s.store, s.criteria))
    client.headers["authorization"] = f"Bearer {key}"
    return client, name


def test_api_errors_are_openai_shaped(seeded: Seeded) -> None:
    anon = TestClient(build_label_app(seeded.store, seeded.criteria))
    r = anon.get("/api/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    infer, _ = _client(seeded, ["infer"])
    r = infer.get("/api/queue")
    assert r.status_code == 403 and "'label' scope" in r.json()["error"]["message"]
    client, _ = _client(seeded, ["label"])
    assert client.get("/api/records/nope").status_code == 404
    item = seeded.items[0]
    r = client.put(f"/api/labels/{item}", json={"labels": [{"criterion": "follows_format",
                                                           "label": "pass"}]})  # fmt: skip
    assert r.status_code == 400 and "does not apply" in r.json()["error"]["message"]
    r = client.put(f"/api/labels/{item}", json={"labels": [{"criterion": "concise"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.get("/api/queue", params={"verdict": "maybe"})
    assert r.status_code == 400
    assert _labels_of(seeded) == []


def test_api_reveals_the_judge_only_after_every_criterion_is_labelled(seeded: Seeded) -> None:
    client, name = _client(seeded, ["label"])
    item = seeded.items[0]
    before = client.get(f"/api/records/{item}")
    assert before.status_code == 200
    body = before.json()
    assert [c["name"] for c in body["criteria"]] == sorted(LABELLED_CRITERIA)
    assert not body["revealed"] and "JUDGE-REASONING" not in before.text
    one = client.put(
        f"/api/labels/{item}", json={"labels": [{"criterion": "concise", "label": "pass"}]}
    )
    assert one.status_code == 200 and not one.json()["revealed"]
    assert "JUDGE-REASONING" not in one.text
    both = client.put(
        f"/api/labels/{item}",
        json={"labels": [{"criterion": "answers_question", "label": "fail", "note": "wrong"}]},
    )
    view = both.json()
    assert view["revealed"] and secret(item, "concise") in both.text
    by = {c["name"]: c for c in view["criteria"]}
    assert by["answers_question"]["human"]["labeller"] == name
    assert by["answers_question"]["judge_verdict"] == seeded.judge[(item, "answers_question")]
    queue = client.get("/api/queue", params={"day": seeded.day.isoformat()}).json()
    assert [e["item_id"] for e in queue] == seeded.items
    assert queue[0]["labelled"] and not queue[1]["labelled"]


def test_queue_filters(seeded: Seeded) -> None:
    versions = {c.name: c.version for c in seeded.criteria}
    verdicts = VerdictStore(seeded.store).current(versions, day=seeded.day.isoformat())
    a, b = seeded.items[:2]
    # a: judge says answers_question pass; the person says fail -> disagreement.
    labels = [_label(seeded, a, "answers_question", "fail"), _label(seeded, b, "concise", "pass")]
    all_ = build_queue(verdicts, labels, Filters())
    assert [e.item_id for e in all_] == seeded.items
    assert [e.item_id for e in build_queue(verdicts, labels, Filters(disagreement=True))] == [a]
    # Blind labelling: the verdict filter never lists a record the labeller has not labelled.
    assert build_queue(verdicts, labels, Filters(criterion="concise", verdict="fail")) == []
    both = labels + [
        _label(seeded, i, c, "pass") for i in seeded.items for c in ("answers_question", "concise")
    ]
    fails = build_queue(verdicts, both, Filters(criterion="concise", verdict="fail"))
    assert [e.item_id for e in fails] == [
        i for i in seeded.items if seeded.judge[(i, "concise")] == "fail"
    ]
    assert build_queue(verdicts, labels, Filters(criterion="follows_format")) == []
    assert build_queue(verdicts, labels, Filters(verdict="error")) == []


def _result(day: date) -> DailyResult:
    row = RateRow(
        criterion="concise",
        criterion_version="v1",
        model="app-model",
        passes=3,
        fails=1,
        errors=0,
        pass_rate=0.75,
        ci_low=0.3,
        ci_high=0.95,
    )
    return DailyResult(
        day=day,
        sampled=4,
        judged_now=4,
        skipped=0,
        rates=[row, row.model_copy(update={"criterion": "answers_question"})],
        pairs=[],
        judge_prompt_tokens=10,
        judge_completion_tokens=5,
        judge_cost_usd=0.0,
        errors=0,
        seconds=1.0,
    )


def test_daily_report_and_metrics_mark_untrusted_criteria(tmp_path: Path) -> None:
    from judges._calibration import CalibrationRow, Confusion

    def cal(name: str, trusted: bool, reason: str) -> CalibrationRow:
        return CalibrationRow(
            criterion=name,
            criterion_version="v1",
            n=40,
            confusion=Confusion(both_fail=10, both_pass=30),
            agreement=1.0,
            kappa=1.0 if trusted else 0.2,
            kappa_low=0.9,
            kappa_high=1.0,
            coverage=1.0,
            false_failure_rate=0.0,
            trusted=trusted,
            reason=reason,
        )

    rows = [cal("concise", True, "kappa 1.00 >= 0.60"), cal("answers_question", False, "kappa")]
    write_reports(_result(date(2026, 11, 1)), [], tmp_path, calibration=rows)
    md = (tmp_path / "summary.md").read_text()
    assert md.count("**not trustworthy**") == 1 and "| trusted |" in md
    assert "## Judge calibration" in md
    prom = (tmp_path / "metrics.prom").read_text()
    assert 'gavel_judge_trusted{criterion="answers_question",criterion_version="v1"} 0.0' in prom
    assert 'gavel_judge_trusted{criterion="concise",criterion_version="v1"} 1.0' in prom
    assert "not trustworthy" in (tmp_path / "report.html").read_text()
    # No calibration at all: every criterion's judge is marked, not silently trusted.
    write_reports(_result(date(2026, 11, 1)), [], tmp_path / "none")
    assert (tmp_path / "none" / "summary.md").read_text().count("**not trustworthy**") == 2


def test_session_cookie_is_a_server_side_id_and_pages_forbid_framing(seeded: Seeded) -> None:
    name, key = seeded.key(["label"])
    client = TestClient(build_label_app(seeded.store, seeded.criteria))
    r = client.post("/api/session", json={"key": key})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert (
        key not in cookie and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    )
    assert client.get("/api/me").json()["labeller"] == name  # the session works
    page = client.get("/")
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404
    client.delete("/api/session")
    assert client.get("/api/me").status_code == 401  # signed out: the id is dead
    forged = TestClient(build_label_app(seeded.store, seeded.criteria))
    forged.cookies.set("gavel_label_session", key)  # the raw key is no session
    assert forged.get("/api/me").status_code == 401


def test_queue_never_reveals_verdicts_of_unlabelled_records(seeded: Seeded) -> None:
    client, _ = _client(seeded, ["label"])
    day = seeded.day.isoformat()
    for verdict in ("pass", "fail"):
        r = client.get(
            "/api/queue", params={"day": day, "criterion": "concise", "verdict": verdict}
        )
        assert r.status_code == 200 and r.json() == []
    item = seeded.items[0]
    both = [{"criterion": c, "label": "pass"} for c in ("concise", "answers_question")]
    client.put(f"/api/labels/{item}", json={"labels": both})
    judged = seeded.judge[(item, "concise")]
    r = client.get("/api/queue", params={"day": day, "criterion": "concise", "verdict": judged})
    assert [e["item_id"] for e in r.json()] == [item]


def test_two_labellers_keep_two_labels_and_their_agreement_is_reported(seeded: Seeded) -> None:
    alice, alice_name = _client(seeded, ["label"])
    bob, bob_name = _client(seeded, ["label"])
    for i, item in enumerate(seeded.items):
        for client, flip in ((alice, False), (bob, i == 0)):
            first = "fail" if flip else "pass"
            client.put(f"/api/labels/{item}", json={"labels": [
                {"criterion": "concise", "label": first},
                {"criterion": "answers_question", "label": "pass"},
            ]})  # fmt: skip
    labels = _labels_of(seeded)
    assert len(labels) == 2 * 2 * len(seeded.items)  # nobody overwrote anybody
    pair = {alice_name, bob_name}  # (a shared PostgreSQL may hold other people's labels)
    rows = {
        r["criterion"]: r
        for r in alice.get("/api/agreement").json()
        if {r["labeller_a"], r["labeller_b"]} == pair
    }
    assert rows["concise"]["n"] == len(seeded.items)
    assert rows["concise"]["agreement"] == pytest.approx(4 / 5)
    # Each labeller's view shows their own label.
    item = seeded.items[0]
    mine = {
        c["name"]: c["human"]["label"] for c in bob.get(f"/api/records/{item}").json()["criteria"]
    }
    assert mine["concise"] == "fail"
    # Calibration reads one consensus label per record; an even split is left out.

    (row,) = calibrate(
        seeded.criteria, labels, VerdictStore(seeded.store).current(
            {c.name: c.version for c in seeded.criteria}, day=seeded.day.isoformat()
        ), CalibrationConfig(min_labels=1), criterion="concise",
    )  # fmt: skip
    assert row.n == len(seeded.items) - 1 and row.disputed_items == 1


def test_pairwise_labels_import_calibrate_and_make_the_judge_trusted(seeded: Seeded) -> None:
    """Eight judged shadow pairs (the judge: A B tie A B tie A B); people agree on all
    but pair 0 (B where the judge said A). By hand: people by judge, A/B/tie, is
    [[2,0,0],[1,3,0],[0,0,2]]; p_o 7/8, p_e (2*3 + 4*3 + 2*2)/64 = 22/64, kappa
    (56 - 22) / 42 = 0.8095: trusted (min_kappa 0.6, min_labels 2), so ``eval ab`` and
    ``swap report`` stop withholding. A pass/fail label on the pairwise criterion is
    refused, naming the line."""
    pairs = seed_pairs(seeded)
    rows = [{"item_id": item, "criterion": "preferred_response",
             "label": "B" if n == 0 else pairs.judge[n]}
            for n, item in enumerate(pairs.item_ids)]  # fmt: skip
    bad = gavel_main("label", "import", str(_write(seeded.tmp / "bad.jsonl", [
        {**rows[0], "label": "pass"}])), *_gavel_cfg(seeded))  # fmt: skip
    assert bad.returncode == 2
    assert "bad.jsonl:1: label: 'preferred_response' takes A, B or tie" in bad.stderr
    path = _write(seeded.tmp / "pairs.jsonl", rows)  # type: ignore[arg-type]
    assert gavel_main("label", "import", str(path), *_gavel_cfg(seeded)).returncode == 0
    out = seeded.tmp / "cal.json"
    proc = gavel_main("judge", "calibrate", "--criterion", "preferred_response", "--json",
                     str(out), *_gavel_cfg(seeded))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "preferred_response" in proc.stdout and "pos-cons" in proc.stdout
    [row] = json.loads(out.read_text())
    assert row["criterion"] == "preferred_response"
    if seeded.store.url.startswith("sqlite"):  # PostgreSQL shares its tables with other tests
        assert row["n"] == 8 and row["matrix"] == [[2, 0, 0], [1, 3, 0], [0, 0, 2]]
        assert row["kappa"] == pytest.approx(34 / 42) and row["trusted"] is True
        judging = load_judging(str(seeded.judging_config))
        crit = next(c for c in seeded.criteria if c.name == "preferred_response")
        assert pairwise_trust(seeded.store, judging, crit)[0] is True
