"""Registered judge factories, one per criterion kind (as Inspect registers ``@scorer``s).

A factory takes a criterion and a judge client and returns a typed async callable that
turns a :class:`JudgeItem` into a :class:`JudgeOutcome`. The registry records each
factory's name and version, which every verdict carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from judges._client import JudgeClient
from judges._criteria import Criterion
from judges._wire import JudgeItem

JudgeFn = Callable[[JudgeItem], Awaitable["JudgeOutcome"]]
JudgeFactory = Callable[[Criterion, JudgeClient], JudgeFn]


@dataclass(frozen=True)
class JudgeOutcome:
    """What a judge callable returns; errors are outcomes too, never pass or fail."""

    verdict: str
    reasoning: str | None = None
    error: str | None = None
    order_winners: list[str] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class RegisteredJudge:
    """A factory with its registered name and version."""

    name: str
    version: str
    factory: JudgeFactory


@dataclass
class JudgeRegistry:
    """Judge factories by criterion kind."""

    judges: dict[str, RegisteredJudge] = field(default_factory=dict)

    def register(
        self, kind: str, *, name: str, version: str
    ) -> Callable[[JudgeFactory], JudgeFactory]:
        """Decorator: register ``factory`` as the judge of ``kind``."""

        def deco(factory: JudgeFactory) -> JudgeFactory:
            self.judges[kind] = RegisteredJudge(name=name, version=version, factory=factory)
            return factory

        return deco

    def for_kind(self, kind: str) -> RegisteredJudge:
        """The judge registered for a criterion kind."""
        try:
            return self.judges[kind]
        except KeyError:
            raise KeyError(f"no judge registered for kind {kind!r}") from None


JUDGES = JudgeRegistry()
"""The registry Gavel's built-in judges are registered in (see ``judges._judges``)."""
