"""The docs test themselves: the CLI reference (``docs/reference.md``) is the parsers',
every ``gavel`` line of the README and ``docs/`` parses with the real parser, and the
README's quickstart runs as written, in order, in a fresh clone, against the running
test stack."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from serving._commandline import walk_parsers
from serving.cli import build_parser
from serving.cli_reference import readme_table, reference_table
from tests.conftest import CONFIG, ROOT, SESSION_DIR

QUICKSTART = (ROOT / "README.md").read_text()
README = "\n".join(
    p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
)
"""The README and every docs page, as one text (their ``gavel`` lines and mentions)."""
REFERENCE = (ROOT / "docs" / "reference.md").read_text()
_GAVEL = re.compile(r"^(?:\.venv(?:-gpu)?/bin/)?gavel$")
_ENV = re.compile(r"^\w+=\S*$")


def _blocks(text: str) -> list[str]:
    """The bodies of the shell code blocks (bash, sh or unnamed) of ``text``."""
    return [
        m.group(2)
        for m in re.finditer(r"(?ms)^```(\w*)\n(.*?)^```", text)
        if m.group(1) in ("bash", "sh", "")
    ]


def _logical_lines(block: str) -> list[str]:
    """Lines with ``\\`` continuations joined and here-documents left out."""
    out: list[str] = []
    heredoc: str | None = None
    for line in block.replace("\\\n", " ").splitlines():
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        m = re.search(r"<<-?\s*'?(\w+)'?", line)
        if m:
            heredoc = m.group(1)
        out.append(line)
    return out


def gavel_invocations(text: str) -> list[list[str]]:
    """Every ``gavel`` command line in the README's shell blocks, as argv."""
    found: list[list[str]] = []
    for block in _blocks(text):
        for line in _logical_lines(block):
            for piece in re.split(r"\$\(|\)|&&|\|\||;|\|", line):
                try:
                    words = shlex.split(piece, comments=True)
                except ValueError:
                    continue
                while words and _ENV.match(words[0]):
                    words = words[1:]
                if words and _GAVEL.match(words[0]):
                    found.append(words[1:])
    return found


def inline_mentions(text: str) -> list[list[str]]:
    """Every inline ``gavel ...`` code span of the prose (a command named, maybe with
    some of its flags), as words; grammar summaries (``a|b``, ``[...]``) are left out."""
    prose = re.sub(r"(?ms)^```.*?^```", "", text)
    spans = re.findall(r"`(gavel [^`]+)`", prose)
    return [
        shlex.split(span)[1:]
        for span in spans
        if not any(c in span for c in "[|…/") and "..." not in span
    ]


def test_cli_reference_is_the_parsers() -> None:
    assert readme_table(REFERENCE) == reference_table(), (
        "docs/reference.md is stale: run `make cli-reference`"
    )


def test_every_gavel_line_of_the_readme_parses() -> None:
    invocations = gavel_invocations(README)
    assert len(invocations) > 30, len(invocations)
    parser = build_parser()
    bad = []
    for argv in invocations:
        try:
            parser.parse_args(argv)
        except SystemExit:
            bad.append(" ".join(argv))
    assert not bad, f"README lines the parser rejects: {bad}"


def test_every_inline_gavel_mention_names_a_real_command_and_flags() -> None:
    parsers = {path: p for path, p in walk_parsers(build_parser())}
    mentions = inline_mentions(README)
    assert len(mentions) > 30, len(mentions)
    bad = []
    for words in mentions:
        if "--config" in words:  # global: before or after any command and action
            i = words.index("--config")
            words = words[:i] + words[i + 2 :]
        path: tuple[str, ...] = ()
        while words and (*path, words[0]) in parsers:
            path, words = (*path, words[0]), words[1:]
        flags = {o for a in parsers[path]._actions for o in a.option_strings}
        unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in flags]
        if not path or unknown:
            bad.append(" ".join(["gavel", *path, *words]))
    assert not bad, f"README mentions commands or flags gavel does not have: {bad}"


def test_the_parse_check_rejects_a_bad_flag() -> None:
    argv = gavel_invocations("```bash\ngavel keys create x --colour red | tail -1\n```\n")
    assert argv == [["keys", "create", "x", "--colour", "red"]]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv[0])


def quickstart_script(text: str) -> str:
    """The quickstart's shell blocks, in order, minus what the test stack already does
    (``make serve``) and the two web apps (they serve until Ctrl-C; the console's and the
    labelling page's own tests start them)."""
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in _blocks(section):
        if "make serve" in block:
            continue
        lines += [line for line in block.splitlines()
                  if line.strip() not in ("gavel label", "gavel console")]  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.mark.stack
@pytest.mark.engine  # the newcomer's path, on the real model
def test_quickstart_runs_as_written_in_a_fresh_clone(stack: str, tmp_path: Path) -> None:
    clone = tmp_path / "gavel"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    # The test stack's store, with a small sample so that judging today takes seconds.
    judging = yaml.safe_load((ROOT / "config/judging.yaml").read_text())
    judging["sampling"] = {"rate": 1.0, "max_per_stratum": 2, "stratify_by": ["model"]}
    judging["report_dir"] = str(tmp_path / "reports")
    (tmp_path / "judging.yaml").write_text(yaml.safe_dump(judging))
    stack_cfg = yaml.safe_load(Path(CONFIG).read_text())
    stack_cfg["judging"] = str(tmp_path / "judging.yaml")
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(stack_cfg))
    script = quickstart_script(QUICKSTART)
    assert "gavel judge daily --date today" in script and "gavel eval run" in script
    assert "gavel console" not in script and "gavel console" in QUICKSTART
    env = {**os.environ, "GAVEL_CONFIG": str(tmp_path / "stack.yaml")}
    env.pop("GAVEL_API_KEY", None)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert re.search(r"^replayed \d+ requests over 1 days", proc.stdout, re.M), proc.stdout
    assert "report: " in proc.stdout and (tmp_path / "reports").is_dir()
    assert (clone / ".gavel/keys/quickstart.key").stat().st_mode & 0o077 == 0
    assert SESSION_DIR.is_dir()
