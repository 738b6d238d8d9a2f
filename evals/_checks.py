"""Deterministic assertions, registered like the judges: each is a named function from an
answer (and the item's expected answer) to pass or fail, with the arguments it needs."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from serving import GavelModel


class AssertArgs(GavelModel):
    """Arguments of a deterministic assertion (each assertion reads the ones it needs)."""

    pattern: str | None = None
    max: Annotated[int, Field(ge=1)] | None = None
    min: Annotated[int, Field(ge=1)] | None = None
    json_schema: dict[str, Any] | None = None
    refusal_patterns: list[str] | None = None


Outcome = str
"""``pass``, ``fail``, or ``skip`` (the check does not apply, e.g. no expected answer)."""
AssertFn = Callable[[str, str | None, AssertArgs], Outcome]

DEFAULT_REFUSALS = (
    r"\bI('m| am) (sorry|unable|not able)\b",
    r"\bI can(no|')t (help|assist|do that|provide)\b",
    r"\bas an AI\b",
    r"\bI won't\b",
)


def normalise(text: str) -> str:
    """Lower case, accents and punctuation removed, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^\w\s.-]", " ", text)
    return " ".join(text.replace(". ", " ").strip(" .").split())


@dataclass(frozen=True)
class Assertion:
    """A registered assertion: its function and the arguments it requires."""

    name: str
    fn: AssertFn
    needs: tuple[str, ...] = ()


@dataclass
class AssertionRegistry:
    """Assertions by name."""

    found: dict[str, Assertion] = field(default_factory=dict)

    def register(self, name: str, *, needs: tuple[str, ...] = ()) -> Callable[[AssertFn], AssertFn]:
        """Decorator: register ``fn`` under ``name``."""

        def deco(fn: AssertFn) -> AssertFn:
            self.found[name] = Assertion(name, fn, needs)
            return fn

        return deco

    def problem(self, name: str, args: AssertArgs) -> str | None:
        """Why a check cannot use this assertion with these arguments, or ``None``."""
        a = self.found.get(name)
        if a is None:
            return f"unknown assertion {name!r} (known: {', '.join(sorted(self.found))})"
        missing = [n for n in a.needs if getattr(args, n) is None]
        if missing:
            return f"{name} needs args.{', args.'.join(missing)}"
        if args.pattern is not None:
            try:
                re.compile(args.pattern)
            except re.error as exc:
                return f"args.pattern is not a regular expression ({exc})"
        return None

    def run(self, name: str, answer: str, expected: str | None, args: AssertArgs) -> Outcome:
        """Run one assertion."""
        return self.found[name].fn(answer, expected, args)


ASSERTIONS = AssertionRegistry()
"""The built-in assertions (this module registers them; it is the registry's home)."""


@ASSERTIONS.register("equals_expected")
def equals_expected(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """The normalised answer equals the normalised expected answer."""
    if expected is None:
        return "skip"
    return "pass" if normalise(answer) == normalise(expected) else "fail"


@ASSERTIONS.register("contains_expected")
def contains_expected(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """The normalised expected answer appears in the normalised answer, as whole words."""
    if expected is None:
        return "skip"
    want = normalise(expected)
    found = re.search(rf"(?<![\w.-]){re.escape(want)}(?![\w-])", normalise(answer))
    return "pass" if want and found else "fail"


@ASSERTIONS.register("regex", needs=("pattern",))
def regex(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """The answer matches ``args.pattern`` (search)."""
    return "pass" if re.search(str(args.pattern), answer) else "fail"


@ASSERTIONS.register("valid_json")
def valid_json(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """The answer is JSON (optionally valid against ``args.json_schema``)."""
    try:
        value = json.loads(answer)
    except ValueError:
        return "fail"
    if args.json_schema is None:
        return "pass"
    import jsonschema

    try:
        jsonschema.validate(value, args.json_schema)
    except jsonschema.ValidationError:
        return "fail"
    return "pass"


@ASSERTIONS.register("max_words", needs=("max",))
def max_words(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """At most ``args.max`` words."""
    return "pass" if len(answer.split()) <= int(args.max or 0) else "fail"


@ASSERTIONS.register("min_words", needs=("min",))
def min_words(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """At least ``args.min`` words."""
    return "pass" if len(answer.split()) >= int(args.min or 0) else "fail"


@ASSERTIONS.register("no_refusal")
def no_refusal(answer: str, expected: str | None, args: AssertArgs) -> Outcome:
    """No refusal phrase (``args.refusal_patterns``, else common English ones)."""
    patterns = args.refusal_patterns or list(DEFAULT_REFUSALS)
    refused = any(re.search(p, answer, flags=re.IGNORECASE) for p in patterns)
    return "fail" if refused else "pass"
