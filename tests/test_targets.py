"""First-response targets (carebot/teams/targets.py): due times counted in each team's business
hours, the reminder before the breach, and the status an agent reads ("12 min left").

The global hours are Monday to Friday 09:00-18:00 UTC. 2026-11-18 is a Wednesday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carebot.config import Settings
from carebot.teams.targets import BREACHED, MET, RUNNING, FirstResponseTargets, duration_words
from tests.conftest import settings_data

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
EVERY_DAY = (*WEEKDAYS, "saturday", "sunday")
CLOSED = {day: "" for day in EVERY_DAY}

TEAMS: list[dict[str, object]] = [
    # its own hours: 08:00-20:00 on weekdays
    {
        "name": "billing",
        "first_response_minutes": 30,
        "remind_before_minutes": 5,
        "business_hours": {"timezone": "UTC", **{d: "08:00-20:00" for d in WEEKDAYS}},
    },
    # the global hours (09:00-18:00 on weekdays)
    {"name": "legal", "first_response_minutes": 60, "remind_before_minutes": 10},
    {"name": "press", "first_response_minutes": 0},  # no target
    # hours in another time zone (Berlin is UTC+1 in November)
    {
        "name": "berlin",
        "first_response_minutes": 30,
        "business_hours": {"timezone": "Europe/Berlin", **{d: "09:00-17:00" for d in WEEKDAYS}},
    },
    # the last two hours of every day, and round the clock: spans that end at midnight
    {
        "name": "night",
        "first_response_minutes": 90,
        "business_hours": {"timezone": "UTC", **{d: "22:00-24:00" for d in EVERY_DAY}},
    },
    {
        "name": "allday",
        "first_response_minutes": 30,
        "business_hours": {"timezone": "UTC", **{d: "00:00-24:00" for d in EVERY_DAY}},
    },
    # closed every day: the target counts clock time
    {"name": "never", "first_response_minutes": 45, "business_hours": CLOSED},
    # a reminder lead longer than the target
    {
        "name": "short",
        "first_response_minutes": 30,
        "remind_before_minutes": 45,
        "business_hours": {"timezone": "UTC", **{d: "08:00-20:00" for d in WEEKDAYS}},
    },
    {"name": "quiet", "first_response_minutes": 30, "remind_before_minutes": 0},
]


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """November ``day``, 2026, UTC (the 18th is a Wednesday)."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def targets(tmp_path: Path) -> FirstResponseTargets:
    data: dict[str, object] = {
        **settings_data(tmp_path),
        "teams": TEAMS,
        "routing": {"default_team": "legal"},
    }
    data["business_hours"] = {"timezone": "UTC"}
    return FirstResponseTargets(Settings.model_validate(data))


@pytest.mark.parametrize(
    ("team", "created", "due"),
    [
        ("billing", at(18, 10), at(18, 10, 30)),  # open: 30 minutes later
        ("billing", at(18, 19, 30), at(18, 20)),  # due exactly at closing
        ("billing", at(18, 19, 50), at(19, 8, 20)),  # 10 min today, 20 after opening
        ("billing", at(18, 20), at(19, 8, 30)),  # at closing: all of it tomorrow
        ("billing", at(18, 7), at(18, 8, 30)),  # before opening
        ("billing", at(20, 19, 50), at(23, 8, 20)),  # Friday evening: Monday (weekend closed)
        ("billing", at(21, 12), at(23, 8, 30)),  # on a closed day
        ("legal", at(18, 10), at(18, 11)),  # the global hours
        ("legal", at(18, 17, 50), at(19, 9, 50)),  # global closing 18:00, opening 09:00
        ("legal", at(18, 19, 50), at(19, 10)),  # same moment as billing's, other hours
        (None, at(18, 19, 50), at(19, 10)),  # a handoff without a team: the default team
        ("gone", at(18, 10), at(18, 11)),  # a team no longer configured: the default team
        ("berlin", at(18, 15, 50), at(19, 8, 20)),  # 16:50 in Berlin, open until 17:00
        ("night", at(18, 23), at(19, 22, 30)),  # 60 min to midnight, 30 the next night
        ("allday", at(18, 23, 50), at(19, 0, 20)),  # across midnight without a break
        ("never", at(21, 3), at(21, 3, 45)),  # no hours at all: clock time
        ("press", at(18, 10), None),  # no target
    ],
)
def test_due_counts_the_teams_business_hours(
    targets: FirstResponseTargets, team: str | None, created: datetime, due: datetime | None
) -> None:
    assert targets.due(team, created) == due


@pytest.mark.parametrize(
    ("team", "created", "reminder"),
    [
        ("billing", at(18, 10), at(18, 10, 25)),
        ("billing", at(18, 19, 50), at(19, 8, 15)),  # 5 working minutes before 08:20
        ("billing", at(18, 19, 58), at(19, 8, 23)),  # due 08:28
        ("billing", at(18, 19, 27), at(18, 19, 52)),  # due 19:57
        ("legal", at(18, 17, 55), at(19, 9, 45)),  # due 09:55, 10 minutes before
        ("short", at(18, 10), at(18, 10)),  # lead longer than the target: at the handoff
        ("short", at(18, 21), at(19, 8)),  # ... but in the team's hours
        ("quiet", at(18, 10), None),  # remind_before_minutes 0: the breach notice only
        ("press", at(18, 10), None),  # no target, no reminder
    ],
)
def test_reminder_before_the_breach(
    targets: FirstResponseTargets, team: str, created: datetime, reminder: datetime | None
) -> None:
    assert targets.reminder_at(team, created) == reminder


@pytest.mark.parametrize(
    ("created", "reply", "now", "state", "text"),
    [
        (at(18, 10), None, at(18, 10, 18), RUNNING, "12 min left"),
        (at(18, 10), None, at(18, 10, 29, 30), RUNNING, "under a minute left"),
        (at(18, 10), None, at(18, 10, 30), BREACHED, "breached under a minute ago"),
        (at(18, 10), None, at(18, 10, 35), BREACHED, "breached 5 min ago"),
        (at(18, 10), None, at(18, 12, 35), BREACHED, "breached 2 h 5 min ago"),
        (at(18, 10), at(18, 10, 8), at(18, 11), MET, "met in 8 min"),
        (at(18, 10), at(18, 10, 30), at(18, 11), MET, "met in 30 min"),  # at the due time
        (at(18, 10), at(18, 10, 45), at(18, 11), BREACHED, "missed by 15 min"),
        (at(18, 19, 50), None, at(18, 21), RUNNING, "20 min left (closed now)"),
        (at(18, 19, 50), None, at(19, 8, 5), RUNNING, "15 min left"),
        (at(18, 19, 50), at(19, 8, 5), at(19, 9), MET, "met in 15 min"),  # working time
        (at(20, 19, 50), None, at(24, 8, 20), BREACHED, "breached 1 d ago"),
    ],
)
def test_status_an_agent_reads(
    targets: FirstResponseTargets,
    created: datetime,
    reply: datetime | None,
    now: datetime,
    state: str,
    text: str,
) -> None:
    status = targets.status("billing", created, reply, now)
    assert status is not None
    assert (status.state, status.text) == (state, text)
    assert status.due == targets.due("billing", created)
    assert status.breached == (state == BREACHED)


def test_status_counts_the_time_left_and_taken(targets: FirstResponseTargets) -> None:
    waiting = targets.status("billing", at(18, 19, 50), None, at(18, 22))
    assert waiting is not None
    assert (waiting.left, waiting.closed, waiting.took) == (timedelta(minutes=20), True, None)
    answered = targets.status("billing", at(18, 19, 50), at(19, 8, 40), at(19, 9))
    assert answered is not None
    assert (answered.left, answered.took) == (timedelta(), timedelta(minutes=50))


def test_no_target_no_status(targets: FirstResponseTargets) -> None:
    assert targets.status("press", at(18, 10), None, at(18, 11)) is None
    assert targets.target("press") is None
    assert targets.met("press", at(18, 10), at(18, 10, 5)) is None


@pytest.mark.parametrize(
    ("reply", "met"),
    [(at(19, 8, 20), True), (at(19, 8, 21), False), (None, None)],
)
def test_met_within_target(
    targets: FirstResponseTargets, reply: datetime | None, met: bool | None
) -> None:
    assert targets.met("billing", at(18, 19, 50), reply) is met


def test_without_teams_the_default_team_has_no_target(tmp_path: Path) -> None:
    targets = FirstResponseTargets(Settings.model_validate(settings_data(tmp_path)))
    assert targets.due(None, at(18, 10)) is None
    assert targets.reminder_at(None, at(18, 10)) is None


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(seconds=59), "under a minute"),
        (timedelta(minutes=1), "1 min"),
        (timedelta(minutes=59, seconds=59), "59 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=2, minutes=5), "2 h 5 min"),
        (timedelta(days=1), "1 d"),
        (timedelta(days=3, hours=4, minutes=10), "3 d 4 h"),
        (timedelta(seconds=-30), "under a minute"),
    ],
)
def test_duration_words(span: timedelta, words: str) -> None:
    assert duration_words(span) == words
