"""What the benchmarks share: percentiles of timings in milliseconds, and a channel that takes
every reply at once."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; 0.0 when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


class Sink:
    """A channel that takes every reply at once (the outbox's send is part of the inbox path)."""

    name = "bench"

    async def start(self, deliver: object) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, reply: object) -> None:
        return None
