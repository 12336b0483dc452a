"""Bad input at every door, the CI pass: 1,000 cases of the fuzzer (tests/fuzz_doors.py) on
SQLite and 1,000 on PostgreSQL, each the same every run (seeded), most of them validly signed.
None may be answered 5xx, crash a handler, or (unsigned or mis-signed) store anything.
``bench/fuzz.py`` runs the full 10,000."""

from __future__ import annotations

from pathlib import Path

from tests.every_door import MIS_SIGNED, SIGNED, UNSIGNED, every_door
from tests.fuzz_cases import doors_of
from tests.fuzz_doors import fuzz, report
from tests.schema_strategies import spec

CASES = 1_000  # per database


async def test_no_door_answers_5xx_crashes_or_stores_a_badly_signed_request(
    tmp_path: Path, database_url: str
) -> None:
    async with every_door(tmp_path, database_url) as doors:
        tally = await fuzz(doors, cases=CASES, seed_value=19)
    print(report(tally))  # shown with -s, and with the failure
    assert tally.failures == []
    assert (
        tally.total("server_errors"),
        tally.total("crashes"),
        tally.total("bad_signature_rows"),
    ) == (0, 0, 0)
    # The pass means something: it sent what it should have, where it should have.
    assert tally.cases == CASES
    modes = tally.modes()
    assert modes[SIGNED] > 0.6 * CASES and modes[UNSIGNED] > 0 and modes[MIS_SIGNED] > 0
    every = {door.name for door in doors_of(spec())}
    assert len(set(tally.doors)) > 0.8 * len(every), sorted(every - set(tally.doors))
    taken = sum(n for door in tally.doors.values() for s, n in door.statuses.items() if s < 300)
    assert taken > 0.2 * CASES  # and many were taken: they reached the parsers and the store
