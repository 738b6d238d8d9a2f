"""Continuous batching of one simulated engine replica, in asyncio.

The scheduler admits requests while a sequence slot and room in the KV cache are free,
prefills one prompt at a time, and runs decode steps while any sequence is running: each
step gives every running sequence one token and lasts what the profile says for that
many sequences. Deadlines are kept on the monotonic clock, so a busy event loop does not
slow the simulated GPU down.

The waiting queue is ordered as vLLM's scheduler orders it: first come, first served,
or, under the ``priority`` policy, by each request's ``priority`` (lower first), then by
arrival. As in vLLM v1, a waiting request never preempts a running one: vLLM preempts
(the lowest priority, latest first) only when a running request cannot grow its KV
cache, and the simulated engine reserves a request's whole KV room at admission, so it
never needs to.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from serving.sim._profiles import SimProfile


class TooLarge(ValueError):
    """A request needs more KV cache than the replica has."""


@dataclass(eq=False)
class _Seq:
    prompt_tokens: int
    output_tokens: int
    width: int
    priority: int = 0
    arrival: int = 0
    produced: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def kv(self) -> int:
        return self.prompt_tokens + self.width * self.output_tokens

    @property
    def order(self) -> tuple[int, int]:
        """Its place in the waiting queue."""
        return (self.priority, self.arrival)


@dataclass
class SchedulerStats:
    """What the scheduler has done (for tests and the engine's routing stats)."""

    admitted: int = 0
    finished: int = 0
    steps: int = 0
    max_running: int = 0
    max_waiting: int = 0


class Scheduler:
    """One simulated engine replica's queue, prefill and decode loop."""

    def __init__(self, profile: SimProfile, *, priority: bool = False) -> None:
        """``priority``: vLLM's ``scheduling_policy: priority`` (else first come, first
        served, where every request's priority is 0)."""
        self.profile = profile
        self.priority = priority
        self.stats = SchedulerStats()
        self._arrivals = itertools.count()
        self._waiting: list[tuple[_Seq, asyncio.Future[None]]] = []  # by _Seq.order
        self._active: set[_Seq] = set()  # admitted: prefilling or decoding
        self._running: list[_Seq] = []  # decoding
        self._kv_used = 0
        self._prefill = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        """Sequences admitted (prefilling or decoding), each of ``n`` choices counted."""
        return sum(s.width for s in self._active)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot or KV room."""
        return len(self._waiting)

    async def generate(
        self, prompt_tokens: int, output_tokens: int, *, width: int = 1, priority: int = 0
    ) -> AsyncIterator[int]:
        """Yield the count of tokens produced so far (per choice), as each step ends.

        The first yield comes after queueing and prefill; the last is ``output_tokens``.
        Closing the iterator early (a client gone) frees the slot and the KV room.
        ``priority`` counts only under the priority policy (lower runs first).
        """
        seq = _Seq(
            prompt_tokens,
            max(output_tokens, 1),
            max(width, 1),
            priority=priority if self.priority else 0,
            arrival=next(self._arrivals),
        )
        if seq.kv > self.profile.kv_tokens or seq.width > self.profile.max_num_seqs:
            raise TooLarge(
                f"the request needs {seq.kv} tokens of KV cache; the replica holds "
                f"{self.profile.kv_tokens}"
            )
        try:
            await self._admit(seq)
            async with self._prefill:
                await asyncio.sleep(self.profile.prefill_s(prompt_tokens))
            seq.produced = 1
            yield 1
            if seq.produced < seq.output_tokens:
                self._running.append(seq)
                self._start_loop()
            while seq.produced < seq.output_tokens:
                await seq.wake.wait()
                seq.wake.clear()
                yield seq.produced
        finally:
            self._release(seq)

    async def _admit(self, seq: _Seq) -> None:
        ahead = self._waiting and self._waiting[0][0].order <= seq.order
        if not ahead and self._fits(seq):
            self._take(seq)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bisect.insort(self._waiting, (seq, future), key=lambda w: w[0].order)
        self.stats.max_waiting = max(self.stats.max_waiting, len(self._waiting))
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self._release(seq)  # admitted just as it was cancelled
            else:
                self._waiting.remove((seq, future))
            raise

    def _fits(self, seq: _Seq) -> bool:
        return (
            self.running + seq.width <= self.profile.max_num_seqs
            and self._kv_used + seq.kv <= self.profile.kv_tokens
        )

    def _take(self, seq: _Seq) -> None:
        self._active.add(seq)
        self._kv_used += seq.kv
        self.stats.admitted += 1
        self.stats.max_running = max(self.stats.max_running, self.running)

    def _release(self, seq: _Seq) -> None:
        if seq not in self._active:
            return
        self._active.discard(seq)
        if seq in self._running:
            self._running.remove(seq)
        self._kv_used -= seq.kv
        self.stats.finished += 1
        while self._waiting and self._fits(self._waiting[0][0]):
            nxt, future = self._waiting.pop(0)
            self._take(nxt)
            future.set_result(None)

    def _start_loop(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._decode())

    async def _decode(self) -> None:
        deadline = time.monotonic()
        while self._running:
            deadline = max(deadline, time.monotonic() - 0.05)  # no catch-up after a stall
            deadline += self.profile.step_s(sum(s.width for s in self._running))
            await asyncio.sleep(max(deadline - time.monotonic(), 0))
            self.stats.steps += 1
            for seq in list(self._running):
                seq.produced += 1
                seq.wake.set()
                if seq.produced >= seq.output_tokens:
                    self._running.remove(seq)
