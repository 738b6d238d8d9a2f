"""Human labels, stored beside the verdicts, and their JSONL import and export.

A label is keyed by item, criterion, criterion version and labeller: two people who
label the same record keep two labels, a person labelling it again updates theirs (the
history keeps every earlier label), and a new criterion version starts a new
calibration. The JSONL format is :class:`LabelRow`, one object per line.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError
from sqlalchemy import select

from judges._criteria import Criterion
from judges._registry import KindRegistry
from judges.kinds import default_kinds
from serving import GavelModel
from serving.store import Row, Store, tables

NOTE_MAX = 2000

Note = Annotated[str, Field(max_length=NOTE_MAX)]

LabelValue = Literal["pass", "fail", "A", "B", "tie"]
"""pass/fail for a one-answer criterion; for a pairwise one, the better response (``A``,
the pair's first, or ``B``) or ``tie``: by response, never by the side it was shown on."""
PAIR_LABELS = frozenset({"A", "B", "tie"})


class Label(GavelModel):
    """One person's label on one criterion of one sampled record (or pair of records)."""

    item_id: Annotated[str, Field(min_length=1, max_length=200)]
    """The judged item: the traffic record's request id."""
    criterion: Annotated[str, Field(min_length=1, max_length=128)]
    criterion_version: Annotated[str, Field(min_length=1, max_length=32)]
    label: LabelValue
    note: Note | None = None
    """Why, in the labeller's words."""
    criterion_note: Note | None = None
    """Criteria drift: the criterion itself is wrong, unclear or missing something."""
    labeller: Annotated[str, Field(min_length=1, max_length=128)]
    labelled_at: datetime


class LabelRow(GavelModel):
    """A line of a label JSONL file. Export writes every field; import may omit the last three.

    Without ``criterion_version`` the label is for the criterion's current version;
    without ``labeller``, the importer's ``--labeller``; without ``labelled_at``, now.
    """

    item_id: Annotated[str, Field(min_length=1, max_length=200)]
    criterion: Annotated[str, Field(min_length=1, max_length=128)]
    label: LabelValue
    note: Note | None = None
    criterion_note: Note | None = None
    criterion_version: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    labeller: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    labelled_at: datetime | None = None


class LabelImportError(Exception):
    """A label file has bad rows; nothing was imported. ``problems`` are (line, message)."""

    def __init__(self, path: str, problems: list[tuple[int, str]]) -> None:
        self.path = path
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{path}:{first[0]}: {first[1]}{more}")


_l = tables.labels
_h = tables.label_history


class LabelStore:
    """Labels in the same database as traffic and verdicts: one per item, criterion version
    and labeller, with the history of every change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema()

    def upsert(self, items: Iterable[Label]) -> int:
        """Insert or update labels and append them to the history, in one transaction;
        returns how many were written."""
        rows = [lab.model_dump() for lab in items]
        if not rows:
            return 0
        with self.store.transaction() as conn:
            self.store.upsert(
                _l, rows, update=("label", "note", "criterion_note", "labelled_at"), conn=conn
            )
            conn.execute(_h.insert(), rows)
        return len(rows)

    def for_items(self, item_ids: Iterable[str], *, labeller: str | None = None) -> list[Label]:
        """Labels of these items (every criterion, version and labeller, or one labeller's)."""
        wanted = list(item_ids)
        if not wanted:
            return []
        stmt = select(_l).where(_l.c.item_id.in_(wanted))
        if labeller is not None:
            stmt = stmt.where(_l.c.labeller == labeller)
        return [_from_row(r) for r in self.store.fetch(stmt)]

    def query(self, *, criterion: str | None = None) -> list[Label]:
        """Every label (of one criterion if given), oldest first."""
        stmt = select(_l).order_by(_l.c.labelled_at, _l.c.item_id, _l.c.criterion, _l.c.labeller)
        if criterion is not None:
            stmt = stmt.where(_l.c.criterion == criterion)
        return [_from_row(r) for r in self.store.fetch(stmt)]

    def history(self, item_id: str) -> list[Label]:
        """Every label ever written for one item, oldest first (changes included)."""
        stmt = select(_h).where(_h.c.item_id == item_id).order_by(_h.c.id)
        rows = self.store.fetch(stmt)
        return [_from_row({k: v for k, v in r.items() if k != "id"}) for r in rows]


def _from_row(m: Row) -> Label:
    return Label.model_validate(m)


def parse_label_file(
    path: Path,
    criteria: Sequence[Criterion],
    *,
    labeller: str,
    now: datetime,
    kinds: KindRegistry | None = None,
) -> list[Label]:
    """Read and check a whole JSONL label file; raises :class:`LabelImportError` on any bad row.

    Every line is checked before anything is returned, so a caller that writes the
    result in one transaction imports all rows or none.
    """
    by_name = {c.name: c for c in criteria}
    registry = kinds or default_kinds()
    labelled = {c.name for c in registry.pass_fail(criteria)}
    paired = {c.name for c in registry.pairwise(criteria)}
    out: list[Label] = []
    problems: list[tuple[int, str]] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LabelImportError(str(path), [(0, f"cannot read {path}: {why}")]) from None
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = LabelRow.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append((no, f"not valid JSON ({exc.msg})"))
            continue
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(p) for p in e["loc"]) or "row"
            problems.append((no, f"{loc}: {e['msg']}"))
            continue
        crit = by_name.get(row.criterion)
        if crit is None:
            problems.append((no, f"criterion: unknown criterion {row.criterion!r}"))
            continue
        if crit.name not in labelled | paired:
            problems.append((no, f"criterion: {row.criterion!r} is {crit.kind}, not labelled"))
            continue
        want = "A, B or tie" if crit.name in paired else "pass or fail"
        if (row.label in PAIR_LABELS) != (crit.name in paired):
            problems.append((no, f"label: {row.criterion!r} takes {want}, not {row.label!r}"))
            continue
        version = row.criterion_version or crit.label_version
        who = row.labeller or labeller
        key = (row.item_id, row.criterion, version, who)
        if key in seen:
            problems.append(
                (no, f"duplicate of line {seen[key]} (same item, criterion and labeller)")
            )
            continue
        seen[key] = no
        out.append(
            Label(
                item_id=row.item_id,
                criterion=row.criterion,
                criterion_version=version,
                label=row.label,
                note=row.note,
                criterion_note=row.criterion_note,
                labeller=who,
                labelled_at=row.labelled_at or now,
            )
        )
    if problems:
        raise LabelImportError(str(path), problems)
    return out


def write_label_file(path: Path, items: Sequence[Label]) -> None:
    """Write labels as JSONL atomically (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for lab in items:
                f.write(LabelRow(**lab.model_dump()).model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def since_filter(items: Iterable[Label], since: date | None) -> list[Label]:
    """Labels made on or after ``since`` (UTC day)."""
    if since is None:
        return list(items)
    return [lab for lab in items if lab.labelled_at.astimezone(UTC).date() >= since]
