"""The docs hold together: every relative link of the README and ``docs/`` resolves to a
file (and an anchor to one of its headings), every page is reachable from the README,
and the README stays short (what Gavel is, the two commands, the quickstart, links)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of ``page``."""
    out = set()
    fence = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#{1,6} (.+)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def links(page: Path) -> list[str]:
    """The relative links of ``page`` (outside code blocks)."""
    prose = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    return [u for u in _LINK.findall(prose) if not re.match(r"^[a-z]+:", u)]


def broken(page: Path) -> list[str]:
    """The links of ``page`` that resolve to no file, or to no heading of it."""
    bad = []
    for url in links(page):
        path, _, anchor = url.partition("#")
        target = (page.parent / path).resolve() if path else page
        no_anchor = anchor and target.suffix == ".md" and anchor not in _anchors(target)
        if not target.exists() or no_anchor:
            bad.append(url)
    return bad


def test_every_relative_link_resolves() -> None:
    bad = {str(p.relative_to(ROOT)): b for p in PAGES if (b := broken(p))}
    assert not bad, f"broken links: {bad}"


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n")
    page.write_text("[ok](other.md#a-heading) [gone](nope.md) [no](other.md#missing)\n")
    assert broken(page) == ["nope.md", "other.md#missing"]


def test_every_page_is_reachable_from_the_readme() -> None:
    seen, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for url in links(page):
            target = (page.parent / url.partition("#")[0]).resolve()
            if target.suffix == ".md" and target.exists():
                todo.append(target)
    unreached = sorted(str(p.relative_to(ROOT)) for p in PAGES if p.resolve() not in seen)
    assert not unreached, f"pages no link leads to: {unreached}"


def test_the_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_a_tier_over_its_budget_warns() -> None:
    from tests.tiers import BUDGET_S, verdict

    assert verdict("unit", BUDGET_S["unit"] - 1).startswith("tier unit")
    assert verdict("unit", BUDGET_S["unit"] + 30).startswith("WARNING: tier unit")


# --- Benchmark figures: regenerated from the benchmarks' JSON ----------------------------

HAND_WRITTEN: set[str] = set()
"""Benchmark pages whose figures were measured before the benchmarks recorded their
provenance (each says its date in prose): they get a figures block when their benchmark
next runs. This list may only shrink."""


def test_every_benchmark_table_matches_its_json() -> None:
    from serving.bench.figures import stale_blocks

    assert stale_blocks() == [], "run `make docs-figures`"


def test_every_benchmark_page_is_generated_or_listed_as_hand_written() -> None:
    from serving.bench.figures import BLOCK

    pages = [p for p in (ROOT / "docs/benchmarks").glob("*.md") if p.name != "README.md"]
    generated = {p.name for p in pages if BLOCK.search(p.read_text())}
    assert generated, "no benchmark page is generated from JSON"
    assert generated.isdisjoint(HAND_WRITTEN), generated & HAND_WRITTEN
    assert {p.name for p in pages} == generated | HAND_WRITTEN


def test_a_table_that_differs_from_its_json_is_stale(tmp_path: Path) -> None:
    """The table-from-JSON check can fail: a hand-edited figure, or new JSON."""
    import json

    from serving.bench.figures import refresh, render

    def table(data: dict[str, object]) -> str:
        return f"| x |\n|---|\n| {data['x']} |"

    prov = {"date": "2026-12-03", "commit": "abc1234", "dirty": False, "config": "c.yaml",
            "machine": {"cpus": 2, "memory_gib": 23.4, "system": "Linux x86_64"}}  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps({"x": 7, "provenance": prov}))
    body = render({"x": 7, "provenance": prov}, table)
    assert body.startswith("Measured 2026-12-03 at commit `abc1234` (config: c.yaml) on a 2-core")
    page = f"intro\n<!-- figures: b -->\n{body}<!-- /figures -->\nafter\n"
    assert refresh(page, tmp_path, {"b": table}) == page
    edited = page.replace("| 7 |", "| 8 |")
    assert refresh(edited, tmp_path, {"b": table}) == page
    (tmp_path / "b.json").write_text(json.dumps({"x": 9, "provenance": prov}))
    assert "| 9 |" in refresh(page, tmp_path, {"b": table})
