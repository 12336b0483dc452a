"""The one retry policy: the backoff with its jitter, and the retry and repeat loops."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from carebot.retry import Backoff, repeat, retry

log = logging.getLogger("tests.retry")


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(0, 1), (1, 1), (2, 2), (3, 4), (6, 32), (9, 256), (10, 300), (40, 300), (5000, 300)],
)
def test_the_ceiling_doubles_and_is_capped(failures: int, seconds: float) -> None:
    assert Backoff().ceiling(failures) == seconds


def test_the_backoff_honours_its_base_and_cap() -> None:
    backoff = Backoff(base=0.5, cap=3, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


@pytest.mark.parametrize(
    ("draw", "seconds"), [(0.0, 8.0), (0.5, 6.0), (0.25, 7.0)], ids=["none", "half", "quarter"]
)
def test_the_jitter_shortens_the_wait_by_a_random_share(draw: float, seconds: float) -> None:
    # 8 s before jitter; up to half of it (jitter 0.5) taken off, as the random source says.
    assert Backoff(rng=lambda: draw).delay(4) == seconds


def test_workers_that_failed_together_do_not_retry_in_lockstep() -> None:
    rng = random.Random(12)
    waits = [Backoff(rng=rng.random).delay(3) for _ in range(200)]
    assert all(2.0 <= wait <= 4.0 for wait in waits)  # between half the ceiling and all of it
    assert len({round(wait, 3) for wait in waits}) > 150  # spread, not a handful of values
    assert max(waits) - min(waits) > 1.8


@pytest.mark.parametrize(
    ("values", "problem"),
    [({"base": 0}, "base"), ({"base": 10, "cap": 5}, "base"), ({"jitter": 1.0}, "jitter")],
)
def test_a_backoff_that_makes_no_sense_is_refused(values: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Backoff(**values)


class Script:
    """An action that fails with the given errors in turn, then returns "done"; and a sleep
    that records its waits instead of waiting."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.waits: list[float] = []

    async def action(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


STEADY = Backoff(base=1.0, cap=60.0, jitter=0.0)


async def test_retry_backs_off_until_the_action_works(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(ConnectionError("refused"), ConnectionError("refused"), KeyError("bug"))
    caplog.set_level(logging.WARNING, logger=log.name)

    result = await retry(
        script.action,
        what="Connecting",
        backoff=STEADY,
        log=log,
        expected=(ConnectionError,),
        sleep=script.sleep,
    )

    assert (result, script.calls, script.waits) == ("done", 4, [1.0, 2.0, 4.0])
    expected, unexpected = caplog.records[:2], caplog.records[2]
    assert [r.levelname for r in expected] == ["WARNING", "WARNING"]
    assert all(r.exc_info is None for r in expected)  # expected failures: one line each
    assert expected[1].getMessage() == "Connecting failed (2 in a row): refused; again in 2.0s"
    assert unexpected.levelname == "ERROR" and unexpected.exc_info is not None  # a traceback
    assert unexpected.getMessage() == "Connecting failed (3 in a row); again in 4.0s"


async def test_a_hint_from_the_error_wins_over_the_backoff() -> None:
    class Busy(Exception):
        retry_after = 7.0

    script = Script(Busy(), ValueError())
    hint: Callable[[Exception], float | None] = lambda exc: getattr(exc, "retry_after", None)  # noqa: E731
    await retry(script.action, what="x", backoff=STEADY, log=log, hint=hint, sleep=script.sleep)
    assert script.waits == [7.0, 2.0]  # the second failure gave no hint: the backoff


async def test_repeat_starts_afresh_after_a_success_and_stops_when_told() -> None:
    outcomes: list[Exception | None] = [OSError(), OSError(), None, OSError(), None, None]
    waits: list[float] = []
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await repeat(
        step, until=lambda: not outcomes, what="A pass", backoff=STEADY, log=log, sleep=sleep
    )
    assert steps == 6
    assert waits == [1.0, 2.0, 1.0]  # the failure after a success waits the first wait again


async def test_repeat_does_nothing_once_told_to_stop() -> None:
    script = Script()
    await repeat(script.action, until=lambda: True, what="x", backoff=STEADY, log=log)
    assert script.calls == 0
