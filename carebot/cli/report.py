"""``carebot report``: a care lead's numbers in the terminal, as JSON or as CSV.

``carebot report [--since 7d] [--until ...] [--channel ...] [--team ...] [--label ...]
[--visibility all|public|private] [--format table|json|csv]`` shows the figures of the
conversations that started in the period (the same :class:`Report` as the dashboard and
``/metrics``; with ``--team``, only the conversations handed to that team, and only its
handoffs count; with ``--visibility``, only the public or the private ones); ``carebot report
conversations`` lists those conversations, one row each, for joining to other data (it holds
customer ids: mind where it goes).

The store is opened as the service opens it (SQLite is migrated, PostgreSQL must be); the
model is never loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO
from zoneinfo import ZoneInfo

from carebot.cli.commands import Commands
from carebot.cli.report_tables import conversation_table, report_table
from carebot.exceptions import CarebotError, DataError, StoreError
from carebot.insight.export import conversation_csv, conversation_data, seconds
from carebot.insight.report import (
    PUBLIC_FIGURES,
    TEAM_FIGURES,
    VISIBILITY_FIGURES,
    ConversationRow,
    Money,
    Period,
    Report,
    Share,
    Spread,
)

if TYPE_CHECKING:
    from carebot.config import Settings
    from carebot.store.database import Database

FORMATS = ("table", "json", "csv")
VISIBILITIES = ("all", "public", "private")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FORMS = (
    "a duration back from now (90m, 24h, 7d, 4w), or an ISO date or date and time "
    "(2026-11-01, 2026-11-01T09:30, 2026-11-01T09:30+01:00; without an offset, in the "
    "[business_hours] time zone)"
)


class InsightSource(Protocol):
    """What computes the figures (:class:`carebot.insight.metrics.Insight`)."""

    async def report(self, period: Period) -> Report: ...

    async def conversations(self, period: Period) -> list[ConversationRow]: ...


@dataclass(frozen=True, slots=True)
class Moment:
    """A ``--since``/``--until`` value: some time back from now, or a point in time (a naive
    one is in the business time zone)."""

    text: str
    back: timedelta | None = None
    at: datetime | None = None

    def resolve(self, now: datetime, zone: ZoneInfo) -> datetime:
        if self.back is not None:
            return now - self.back
        assert self.at is not None
        return self.at if self.at.tzinfo else self.at.replace(tzinfo=zone)


def moment(value: str) -> Moment:
    """Parse a ``--since``/``--until`` value (argparse ``type``)."""
    if value.strip().lower() == "now":
        return Moment(value, back=timedelta(0))
    found = _DURATION.match(value)
    if found:
        amount, unit = float(found.group(1)), _UNITS[found.group(2).lower()]
        return Moment(value, back=timedelta(**{unit: amount}))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return Moment(value, at=datetime.combine(date.fromisoformat(value.strip()), time()))
        return Moment(value, at=datetime.fromisoformat(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {FORMS}") from None


def add_report(commands: Commands) -> None:
    report = commands.add_parser(
        "report",
        help="a care lead's numbers for a period: table, JSON or CSV",
        description="The figures of the conversations whose first customer message is in the "
        "period (README, 'Insight', defines each one). 'report conversations' lists those "
        "conversations instead, one row each (it holds customer ids).",
    )
    report.add_argument(
        "view",
        nargs="?",
        choices=("summary", "conversations"),
        default="summary",
        help="summary (default): the figures; conversations: one row per conversation",
    )
    report.add_argument(
        "--since", type=moment, default=moment("7d"), help=f"start of the period (7d): {FORMS}"
    )
    report.add_argument(
        "--until", type=moment, default=moment("now"), help="end of the period (now): as --since"
    )
    report.add_argument("--channel", help="only conversations on this channel (default: all)")
    report.add_argument(
        "--team",
        help="only conversations handed to this team, and only its handoffs (default: all)",
    )
    report.add_argument(
        "--label", help="only conversations agents put this label on in the inbox (default: all)"
    )
    report.add_argument(
        "--visibility",
        choices=VISIBILITIES,
        default="all",
        help="only public conversations (comments, mentions) or only private ones (all)",
    )
    report.add_argument("--format", choices=FORMATS, default="table", help="output (table)")
    report.add_argument(
        "--ids", action="store_true", help="json: list the conversation ids behind each figure"
    )
    report.add_argument("--out", type=Path, help="write to this file (default: stdout)")
    report.set_defaults(command=_report)


def period_of(args: argparse.Namespace, *, now: datetime, zone: ZoneInfo) -> Period:
    """The period ``--since``/``--until``/``--channel``/``--team``/``--label``/``--visibility``
    ask for, relative to ``now``."""
    since, until = args.since.resolve(now, zone), args.until.resolve(now, zone)
    if since >= until:
        raise CarebotError(
            f"--since {args.since.text} ({since.isoformat()}) is not before --until "
            f"{args.until.text} ({until.isoformat()}): give a start before the end"
        )
    label = (getattr(args, "label", None) or "").strip().lower() or None
    visibility = getattr(args, "visibility", "all")
    return Period(
        since,
        until,
        args.channel or None,
        args.team or None,
        label,
        None if visibility == "all" else visibility,
    )


async def write_report(
    args: argparse.Namespace, *, insight: InsightSource, now: datetime, zone: ZoneInfo, out: TextIO
) -> None:
    """Write what ``args`` ask for to ``out``."""
    period = period_of(args, now=now, zone=zone)
    if args.view == "conversations":
        rows = await insight.conversations(period)
        if args.format == "csv":
            out.write(conversation_csv(rows))
        elif args.format == "json":
            json.dump([conversation_data(row) for row in rows], out, indent=2)
            out.write("\n")
        else:
            out.write(conversation_table(rows, period, zone))
        return
    report = await insight.report(period)
    if args.format == "csv":
        write_headline_csv(report, out)
    elif args.format == "json":
        json.dump(jsonable(report, ids=args.ids), out, indent=2)
        out.write("\n")
    else:
        out.write(report_table(report, zone))


def jsonable(value: Any, *, ids: bool) -> Any:
    """``value`` (a report or any part of it) as JSON data: shares as count/total/value,
    durations in seconds, times in ISO 8601; conversation ids only with ``ids``."""
    if isinstance(value, Share):
        out: dict[str, Any] = {"count": value.count, "total": value.total, "value": value.value}
        return out | ({"ids": list(value.ids)} if ids else {})
    if isinstance(value, Spread):
        out = {"samples": value.samples, "p50_seconds": seconds(value.p50)}
        out["p90_seconds"] = seconds(value.p90)
        return out | ({"ids": list(value.ids)} if ids else {})
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), ids=ids) for f in fields(value)}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): jsonable(v, ids=ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, ids=ids) for v in value]
    return value


def headline_rows(report: Report) -> Iterator[tuple[str, int | str, int | str, float | str]]:
    """``(key, count, total, value)`` for each headline figure; an empty value is one with
    nothing to count (or a cost saved still pending). Spreads give their samples as count
    and seconds as value; the cost saved its resolutions as count."""
    for f in fields(report):
        figure = getattr(report, f.name)
        if isinstance(figure, Share):
            yield _share_row(f.name, figure)
        elif f.name in ("handoff_main_reason", "handoff_any_reason"):
            for reason, share in sorted(figure.items()):
                yield _share_row(f"{f.name}.{reason}", share)
        elif isinstance(figure, Spread):
            for quantile in ("p50", "p90"):
                wait = seconds(getattr(figure, quantile))
                yield (f"{f.name}.{quantile}_seconds", figure.samples, "", _blank(wait))
        elif isinstance(figure, Money):
            yield ("cost_saved", figure.resolutions, "", _blank(figure.amount))
            yield ("cost_saved.pending", "", "", int(figure.pending))
    yield from _team_rows(report)
    yield from _visibility_rows(report)
    for part in PUBLIC_FIGURES:
        yield _share_row(f"public.{part}", getattr(report.public, part))
    for category, share in report.public.categories.items():
        yield _share_row(f"public.category.{category}", share)
    for kind, share in report.public.shadowed_actions.items():
        yield _share_row(f"public.shadowed_action.{kind}", share)


def _visibility_rows(report: Report) -> Iterator[tuple[str, int | str, int | str, float | str]]:
    """``visibility.<public|private>.<figure>`` rows, as the headline's."""
    for row in report.visibilities:
        for part in VISIBILITY_FIGURES:
            yield from _figure_rows(f"visibility.{row.visibility}.{part}", row.figure(part))


def _figure_rows(
    key: str, figure: Share | Spread | None
) -> Iterator[tuple[str, int | str, int | str, float | str]]:
    if isinstance(figure, Share):
        yield _share_row(key, figure)
    elif isinstance(figure, Spread):
        for quantile in ("p50", "p90"):
            wait = seconds(getattr(figure, quantile))
            yield (f"{key}.{quantile}_seconds", figure.samples, "", _blank(wait))


def _team_rows(report: Report) -> Iterator[tuple[str, int | str, int | str, float | str]]:
    """``team.<name>.<figure>`` rows, as the headline's (a team without a target has no
    ``within_target`` row)."""
    for row in report.teams:
        for part in TEAM_FIGURES:
            figure = row.figure(part)
            key = f"team.{row.team}.{part}"
            if isinstance(figure, Share):
                yield _share_row(key, figure)
            elif isinstance(figure, Spread):
                for quantile in ("p50", "p90"):
                    wait = seconds(getattr(figure, quantile))
                    yield (f"{key}.{quantile}_seconds", figure.samples, "", _blank(wait))


def _share_row(key: str, share: Share) -> tuple[str, int, int, float | str]:
    return (key, share.count, share.total, _blank(share.value))


def _blank(value: float | None) -> float | str:
    return "" if value is None else value


def write_headline_csv(report: Report, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "count", "total", "value"])
    writer.writerows(headline_rows(report))


async def open_store(settings: Settings) -> Database:
    """The configured database, as the service opens it: SQLite is migrated, PostgreSQL must
    be (``carebot db upgrade``). A SQLite file that does not exist is an error, not a new,
    empty store."""
    from carebot.store.database import Database

    db = Database(settings.database_url())
    path = db.url.database
    if db.is_sqlite and path not in (None, "", ":memory:") and not Path(path).exists():
        await db.close()
        raise StoreError(
            f"No database at {path}: nothing has been stored there yet. Check [store] url "
            f"(or {settings.store.url_env}) in the config file carebot serve uses."
        )
    try:
        await db.prepare()
    except BaseException:
        await db.close()
        raise
    return db


def _write(text: str, path: Path | None) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"Cannot write the report to {path}: {exc.strerror}") from exc
    print(f"wrote {path}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from carebot.clock import utcnow
    from carebot.config import load_settings
    from carebot.insight.metrics import Insight

    settings = load_settings(args.config)

    async def run() -> str:
        db = await open_store(settings)
        try:
            insight = Insight(db=db, settings=settings, clock=utcnow)
            zone = settings.business_hours.zone()
            out = io.StringIO()
            await write_report(args, insight=insight, now=utcnow(), zone=zone, out=out)
            return out.getvalue()
        finally:
            await db.close()

    _write(asyncio.run(run()), args.out)
    return 0
