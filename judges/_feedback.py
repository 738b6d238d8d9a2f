"""End users' feedback in the judging reports (pure functions): how often users say
something about a model's answers, how often it is positive (with a 95% Wilson interval),
and how a judge's pass/fail agrees with what users said.

Users' feedback is kept apart from human labels: agreement with users is reported beside
a judge's calibration, and never makes a judge trusted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from judges._calibration import Confusion, cohen_kappa
from judges._stats import wilson
from judges._wire import Verdict
from serving import GavelModel
from serving.feedback import Feedback


class FeedbackRow(GavelModel):
    """One model's feedback of one name over a day (or window)."""

    model: str
    name: str
    requests: int
    """Production requests to the model."""
    rated: int
    """Requests with at least one value of this name."""
    votes: int
    """Values (one per request and user)."""
    positive: int
    rate: float | None
    """``rated / requests``."""
    positive_share: float | None
    share_low: float | None
    share_high: float | None


class UserAgreement(GavelModel):
    """A criterion's judge against users' feedback of one name (records with both)."""

    criterion: str
    feedback: str
    confusion: Confusion
    agreement: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None


def feedback_rows(feedback: Sequence[Feedback], requests: Mapping[str, int]) -> list[FeedbackRow]:
    """Per model and name: the feedback rate and the positive share with its interval."""
    groups: dict[tuple[str, str], list[Feedback]] = defaultdict(list)
    for f in feedback:
        groups[(f.model, f.name)].append(f)
    rows = []
    for (model, name), fs in sorted(groups.items()):
        n_req, rated = requests.get(model, 0), len({f.request_id for f in fs})
        pos = sum(f.positive for f in fs)
        low, high = wilson(pos, len(fs))
        rows.append(FeedbackRow(
            model=model, name=name, requests=n_req, rated=rated, votes=len(fs), positive=pos,
            rate=rated / n_req if n_req else None, positive_share=pos / len(fs),
            share_low=low, share_high=high,
        ))  # fmt: skip
    return rows


def user_verdicts(feedback: Sequence[Feedback], name: str) -> dict[str, bool]:
    """request id -> what its users said (``True``: positive), by majority of users;
    a tie says nothing."""
    votes: dict[str, Counter[bool]] = defaultdict(Counter)
    for f in feedback:
        if f.name == name:
            votes[f.request_id][f.positive] += 1
    return {rid: c[True] > c[False] for rid, c in votes.items() if c[True] != c[False]}


def judge_vs_users(
    verdicts: Sequence[Verdict], feedback: Sequence[Feedback], mapping: Mapping[str, str]
) -> list[UserAgreement]:
    """For each criterion mapped to a feedback name: the judge's pass/fail against users'
    majority on the same records (a user's positive is a pass)."""
    out = []
    for criterion, name in sorted(mapping.items()):
        said = user_verdicts(feedback, name)
        counts: Counter[str] = Counter()
        for v in verdicts:
            if v.criterion != criterion or v.verdict not in ("pass", "fail"):
                continue
            if v.item_id in said:
                user = "pass" if said[v.item_id] else "fail"
                counts[_cell(user, v.verdict)] += 1
        m = Confusion(**counts)
        kappa, low, high = cohen_kappa(m)
        agree = (m.both_pass + m.both_fail) / m.n if m.n else None
        out.append(UserAgreement(criterion=criterion, feedback=name, confusion=m,
                                 agreement=agree, kappa=kappa, kappa_low=low,
                                 kappa_high=high))  # fmt: skip
    return out


def _cell(user: str, judge: str) -> str:
    if user == judge:
        return f"both_{user}"
    return "judge_pass_human_fail" if judge == "pass" else "judge_fail_human_pass"
