"""``carebot report``: the period asked for, and the figures shown as a table, JSON and CSV.

The figures come from a fake insight returning hand-built reports (tests/insight_reports_cli.py):
these tests are about what the command shows; the figures themselves are tested with the
metrics."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carebot.cli.report import add_report, moment, open_store, period_of, write_report
from carebot.config import Settings
from carebot.exceptions import CarebotError, StoreError
from carebot.insight.report import Money, Period, Share
from carebot.store.database import Database
from tests.conftest import make_settings
from tests.insight_reports_cli import NOW, FakeInsight, make_report
from tests.test_cli import carebot, config


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="carebot")
    add_report(parser.add_subparsers())
    return parser.parse_args(["report", *argv])


async def run(*argv: str, insight: FakeInsight | None = None, zone: str = "UTC") -> str:
    out = io.StringIO()
    insight = insight or FakeInsight()
    await write_report(parse(*argv), insight=insight, now=NOW, zone=ZoneInfo(zone), out=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("4w", NOW - timedelta(weeks=4)),
        ("90m", NOW - timedelta(minutes=90)),
        ("1.5d", NOW - timedelta(hours=36)),
        ("now", NOW),
        # a date is midnight in the business time zone (Berlin: UTC+1 in November)
        ("2026-11-01", datetime(2026, 10, 31, 23, 0, tzinfo=UTC)),
        ("2026-11-01T09:30", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
        ("2026-11-01T09:30+00:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_since_and_until_accept_durations_dates_and_datetimes(
    value: str, expected: datetime
) -> None:
    assert moment(value).resolve(NOW, ZoneInfo("Europe/Berlin")) == expected


@pytest.mark.parametrize("value", ["7x", "yesterday", "2026-13-01", "-7d", ""])
def test_a_bad_since_names_the_value_and_the_accepted_forms(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        moment(value)
    message = str(info.value)
    assert repr(value) in message
    assert "7d" in message and "2026-11-01T09:30" in message


def test_the_command_refuses_a_bad_since_with_its_value() -> None:
    result = carebot("report", "--since", "last week")
    assert result.returncode == 2
    assert "argument --since: 'last week' is not a duration back from now" in result.stderr
    assert "HEAVY:\n" in result.stdout  # the model's libraries were not even imported


def test_the_period_defaults_to_the_last_seven_days_on_every_channel() -> None:
    period = period_of(parse(), now=NOW, zone=ZoneInfo("UTC"))
    assert period == Period(NOW - timedelta(days=7), NOW, None)


async def test_the_insight_is_asked_for_the_period_and_channel_given() -> None:
    insight = FakeInsight()
    argv = ("--since", "2026-11-01", "--until", "2026-11-08", "--channel", "telegram")
    await run(*argv, insight=insight, zone="Europe/Berlin")
    midnight = datetime(2026, 10, 31, 23, tzinfo=UTC)  # in Berlin
    assert insight.periods == [Period(midnight, midnight + timedelta(days=7), "telegram")]


async def test_the_insight_is_asked_for_one_team() -> None:
    insight = FakeInsight()
    text = await run("--team", "billing", insight=insight)
    assert insight.periods == [Period(NOW - timedelta(days=7), NOW, None, "billing")]
    assert "all channels, handed to team billing" in text


async def test_the_insight_is_asked_for_one_label() -> None:
    insight = FakeInsight()
    text = await run("--label", "Damaged", insight=insight)
    assert "all channels, labelled damaged" in text
    assert insight.periods == [Period(NOW - timedelta(days=7), NOW, None, None, "damaged")]


async def test_the_table_shows_the_human_figures_by_team() -> None:
    text = await run()
    lines = [line.strip() for line in text.splitlines()]
    within = "45 of 60 handoffs of teams with a target, 75.0%"
    assert _line(lines, "answered within target").endswith(within)
    joined = [" ".join(line.split()) for line in lines]
    assert "Billing (billing) 150/250 60.0% 45/60 75.0% 4m 00s 1h 00m 3m 00s - 20/25 80.0%" in (
        joined
    )
    assert "escalation 100/250 40.0% no target 5m 00s 1h 06m - - 10/15 66.7%" in joined
    assert "(teams without a target are not counted)" in text


async def test_csv_and_json_have_the_figures_by_team() -> None:
    rows = list(csv.reader(io.StringIO(await run("--format", "csv"))))
    by_key = {row[0]: row[1:] for row in rows[1:]}
    assert by_key["within_target"] == ["45", "60", "0.75"]
    assert by_key["team.billing.within_target"] == ["45", "60", "0.75"]
    assert by_key["team.billing.first_response_business.p50_seconds"] == ["140", "", "180.0"]
    assert by_key["team.escalation.handoffs"] == ["100", "250", "0.4"]
    assert "team.escalation.within_target" not in by_key  # no target: no row
    assert "team.escalation.first_response_business.p50_seconds" not in by_key
    data = json.loads(await run("--format", "json"))
    assert data["within_target"] == {"count": 45, "total": 60, "value": 0.75}
    assert [(t["team"], t["within_target"]) for t in data["teams"]] == [
        ("billing", {"count": 45, "total": 60, "value": 0.75}),
        ("escalation", None),
    ]


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(CarebotError, match=r"--since 2d .* is not before --until 3d"):
        period_of(parse("--since", "2d", "--until", "3d"), now=NOW, zone=ZoneInfo("UTC"))


async def test_the_table_shows_each_rate_with_its_count_and_denominator() -> None:
    text = await run()
    lines = [line.strip() for line in text.splitlines()]
    assert "Conversations started 2026-11-11 10:00 to 2026-11-18 10:00 (UTC), all channels" in text
    assert _line(lines, "conversations ") == "conversations                   1,020"
    assert _line(lines, "involvement").endswith("412 of 1,020 conversations, 40.4%")
    assert _line(lines, "automation rate").endswith("300 of 1,020 conversations, 29.4%")
    assert _line(lines, "bot resolutions, confirmed").endswith("100 of 1,020 conversations, 9.8%")
    assert _line(lines, "bot resolution rate").endswith("300 of 412 involved conversations, 72.8%")
    # nothing to count: "-", never 0%
    assert _line(lines, "repeat contact").endswith("0 of 0 customers with a resolution, -")
    assert _line(lines, "durable resolutions").endswith("0 of 0 bot resolutions 7+ days old, -")
    assert _line(lines, "cost saved").startswith("cost saved                      pending (")


async def test_the_table_shows_reasons_satisfaction_times_intents_and_weeks() -> None:
    lines = [line.split() for line in (await run()).splitlines()]
    assert ["below_threshold", "150", "14.7%", "160", "15.7%"] in lines
    assert ["emotional", "-", "-", "30", "2.9%"] in lines  # never the first reason
    csat = next(line for line in lines if line[:1] == ["CSAT"])
    assert " ".join(csat).endswith("8 of 10 ratings, 80.0% 30 of 40 ratings, 75.0%")
    response = next(line for line in lines if line[:2] == ["response", "rate"])
    assert " ".join(response) == "response rate 10 of 40 asked, 25.0% 40 of 120 asked, 33.3%"
    clock, business = (
        _after(lines, "first human response,"),
        _after(lines, "first human response,", 1),
    )
    assert " ".join(clock) == "clock time 4m 12s 1h 05m 240"
    assert " ".join(business) == "business hours - - no business hours configured"
    assert _after(lines, "time to resolution,", 1) == ["human", "-", "-", "0"]
    joined = [" ".join(line) for line in lines]
    assert "order_status 500 49.0% 200/500 40.0% 50/500 10.0% 10/700 1.4%" in joined
    assert "refund 120 11.8% 20/120 16.7% 90/120 75.0% 0/0 -" in joined
    assert "2026-11-09 400 120/400 30.0% 100/400 25.0% 5m 00s 20/600 3.3%" in joined
    assert "2026-11-16 620 180/620 29.0% 150/620 24.2% - 41/900 4.6%" in joined


async def test_a_known_cost_saved_shows_the_amount_and_how_it_is_made() -> None:
    report = make_report(cost_saved=Money(1232.0, "EUR", 154, 8.0, pending=False))
    text = await run(insight=FakeInsight(report))
    assert "EUR 1,232.00 (154 durable bot resolutions x EUR 8.00)" in text


async def test_json_has_every_figure_as_count_total_value_and_seconds() -> None:
    data = json.loads(await run("--format", "json"))
    assert data["period"] == {
        "since": "2026-11-11T10:00:00+00:00",
        "until": "2026-11-18T10:00:00+00:00",
        "channel": None,
        "team": None,
        "label": None,
        "visibility": None,
    }
    assert data["involvement"] == {"count": 412, "total": 1020, "value": 412 / 1020}
    assert data["repeat_contact"] == {"count": 0, "total": 0, "value": None}
    assert data["first_response"] == {"samples": 240, "p50_seconds": 252.0, "p90_seconds": 3900.0}
    assert data["first_response_business"] is None
    assert data["resolution_time_human"] == {"samples": 0, "p50_seconds": None, "p90_seconds": None}
    assert data["cost_saved"] == {
        "amount": None,
        "currency": "USD",
        "resolutions": 0,
        "cost_per_contact": 8.0,
        "pending": True,
    }
    emotional = data["handoff_any_reason"]["emotional"]
    assert emotional == {"count": 30, "total": 1020, "value": 30 / 1020}
    assert data["top_intents"][1]["handoffs"] == {"count": 90, "total": 120, "value": 0.75}
    assert data["weeks"][0]["start"] == "2026-11-09"
    assert data["weeks"][0]["handoff_reasons"]["below_threshold"]["count"] == 60
    assert "ids" not in json.dumps(data)


async def test_json_lists_the_conversations_behind_each_figure_with_ids() -> None:
    data = json.loads(await run("--format", "json", "--ids"))
    assert data["involvement"]["ids"] == [1, 2, 3]
    assert data["handoff_main_reason"]["asked_for_human"]["ids"] == [5]
    assert data["first_response"]["ids"] == [4, 5]


async def test_csv_has_the_headline_figures_as_key_count_total_value() -> None:
    rows = list(csv.reader(io.StringIO(await run("--format", "csv"))))
    assert rows[0] == ["key", "count", "total", "value"]
    by_key = {row[0]: row[1:] for row in rows[1:]}
    assert by_key["conversations"] == ["1020", "1020", "1.0"]
    assert by_key["involvement"] == ["412", "1020", str(412 / 1020)]
    assert by_key["repeat_contact"] == ["0", "0", ""]  # nothing to count: empty, not 0
    assert by_key["handoff_main_reason.below_threshold"] == ["150", "1020", str(150 / 1020)]
    assert by_key["handoff_any_reason.emotional"] == ["30", "1020", str(30 / 1020)]
    assert by_key["csat_human"] == ["30", "40", "0.75"]
    assert by_key["first_response.p90_seconds"] == ["240", "", "3900.0"]
    assert by_key["resolution_time_human.p50_seconds"] == ["0", "", ""]
    assert by_key["cost_saved"] == ["0", "", ""]
    assert by_key["cost_saved.pending"] == ["", "", "1"]
    assert "first_response_business.p50_seconds" not in by_key  # no business hours: no row
    for key, _, _, _ in rows[1:]:  # every share key is one Report.lookup knows
        if not key.endswith(("_seconds", "pending")) and key != "cost_saved":
            assert isinstance(make_report().lookup(key), Share), key


async def test_conversations_export_one_csv_row_each() -> None:
    rows = list(csv.DictReader(io.StringIO(await run("conversations", "--format", "csv"))))
    assert [row["id"] for row in rows] == ["7", "8", "9"]
    assert rows[0] == {
        "id": "7",
        "customer_id": "3",
        "channel": "webchat",
        "started": "2026-11-17T10:00:00+00:00",
        "resolver": "bot",
        "first_handoff_reason": "",
        "resolved_at": "2026-11-18T10:00:00+00:00",
        "first_human_response_seconds": "",
        "csat": "5",
        "intents": "order_status;delivery_time",
        "visibility": "private",
    }
    assert (rows[1]["first_handoff_reason"], rows[1]["first_human_response_seconds"]) == (
        "asked_for_human",
        "252.5",
    )
    assert (rows[2]["resolver"], rows[2]["resolved_at"], rows[2]["intents"]) == ("", "", "")


async def test_conversations_as_json_and_as_a_table() -> None:
    data = json.loads(await run("conversations", "--format", "json"))
    assert data[1]["first_human_response_seconds"] == 252.5
    assert data[0]["intents"] == ["order_status", "delivery_time"]
    assert data[2]["resolved_at"] is None
    table = (await run("conversations", zone="Europe/Berlin")).splitlines()
    assert table[0] == "Times in Europe/Berlin"
    assert table[2].split() == [
        "7", "3", "webchat", "private", "2026-11-17", "11:00", "bot", "-", "2026-11-18",
        "11:00", "-", "5", "order_status,", "delivery_time",
    ]  # fmt: skip
    assert "4m 12s" in table[3]


async def test_no_conversations_says_so() -> None:
    text = await run("conversations", insight=FakeInsight(rows=[]))
    assert text == "No conversations started 2026-11-11 10:00 to 2026-11-18 10:00.\n"


async def test_a_missing_sqlite_store_is_named_not_created(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store={"url": f"sqlite+aiosqlite:///{tmp_path}/none.db"})
    with pytest.raises(StoreError, match=r"No database at .*none\.db"):
        await open_store(settings)
    assert not (tmp_path / "none.db").exists()


async def test_the_store_is_opened_as_the_service_opens_it(
    database_url: str, tmp_path: Path
) -> None:
    """SQLite is migrated on opening; PostgreSQL must be migrated already."""
    settings: Settings = make_settings(tmp_path, store={"url": database_url})
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite+aiosqlite:///")).touch()
        db = await open_store(settings)
        assert await db.current_revision() is not None
        await db.close()
        return
    with pytest.raises(StoreError, match="carebot db upgrade"):
        await open_store(settings)
    migrated = Database(database_url)
    await migrated.upgrade()
    await migrated.close()
    db = await open_store(settings)
    await db.close()


def test_the_report_runs_on_a_store_without_loading_the_model(tmp_path: Path) -> None:
    """The command end to end, with the real insight (``carebot.insight.metrics``)."""
    cfg = config(tmp_path)
    assert carebot("-c", str(cfg), "db", "upgrade").returncode == 0
    out = tmp_path / "report.json"
    result = carebot("-c", str(cfg), "report", "--format", "json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "HEAVY:\n" in result.stdout
    data = json.loads(out.read_text())
    assert data["conversations"] == {"count": 0, "total": 0, "value": None}


def _line(lines: list[str], start: str) -> str:
    return next(line for line in lines if line.startswith(start))


def _after(lines: list[list[str]], label: str, skip: int = 0) -> list[str]:
    """The cells after ``label`` of the ``skip``-th line starting with it."""
    found = [line for line in lines if " ".join(line).startswith(label)][skip]
    return found[len(label.split()) :]
