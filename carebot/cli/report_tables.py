"""``carebot report`` as plain aligned text: every rate with its count and what it is over
("412 of 1,020 conversations, 40.4%"), "-" where there is nothing to count (never 0), the
cost saved "pending" while durability cannot be known yet. Times in the business time zone."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from carebot.insight.report import ConversationRow, Money, Period, Report, Share, Spread

NONE = "-"

# (key, label, what the total counts); indented labels are parts of the line above
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("involvement", "involvement (the bot answered)", "conversations"),
    ("automation", "automation rate", "conversations"),
    ("confirmed", "  bot resolutions, confirmed", "conversations"),
    ("assumed", "  bot resolutions, assumed", "conversations"),
    ("resolution_rate", "bot resolution rate", "involved conversations"),
    ("durable", "durable resolutions", "bot resolutions 7+ days old"),
    ("handoffs", "handoff rate", "conversations"),
    ("not_helpful", '"did that answer?": no', "answers"),
    ("repeat_contact", "repeat contact within 7 days", "customers with a resolution"),
    ("emotional", "emotional messages", "customer messages"),
    ("within_target", "answered within target", "handoffs of teams with a target"),
)


def count(value: int) -> str:
    return f"{value:,}"


def percent(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def share(figure: Share, unit: str = "") -> str:
    """``412 of 1,020 conversations, 40.4%`` (``-`` for the rate when the total is 0)."""
    over = f"{count(figure.total)} {unit}".rstrip()
    return f"{count(figure.count)} of {over}, {percent(figure.value)}"


def duration(value: timedelta | None) -> str:
    """``45s``, ``4m 12s``, ``3h 05m``, ``2d 04h``; ``-`` for None."""
    if value is None:
        return NONE
    seconds = round(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def money(figure: Money) -> str:
    if figure.pending or figure.amount is None:
        return "pending (whether this period's bot resolutions lasted 7 days is not known yet)"
    return (
        f"{figure.currency} {figure.amount:,.2f} ({count(figure.resolutions)} durable bot "
        f"resolutions x {figure.currency} {figure.cost_per_contact:,.2f})"
    )


def when(value: datetime | None, zone: ZoneInfo) -> str:
    return NONE if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    indent: str = "  ",
    right: Collection[int] | None = None,
) -> str:
    """Columns padded to their widest cell; the ``right`` ones (default: all but the first)
    right-aligned."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    right = range(1, len(headers)) if right is None else right

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)]) + "\n"


def report_table(report: Report, zone: ZoneInfo) -> str:
    """The whole report as text sections."""
    from carebot.cli.report_public import public_section, visibility_section

    sections = [
        _title(report.period, report.generated_at, zone),
        _headline(report),
        _reasons(report.handoff_main_reason, report.handoff_any_reason),
        _csat(report),
        _times(report),
        _teams(report),
        visibility_section(report),
        public_section(report),
        _intents(report),
        _weeks(report),
    ]
    if report.notes:
        sections.append("Notes\n" + "".join(f"  - {note}\n" for note in report.notes))
    return "\n".join(sections)


def _title(period: Period, generated: datetime, zone: ZoneInfo) -> str:
    channel = f"channel {period.channel}" if period.channel else "all channels"
    if period.team:
        channel += f", handed to team {period.team}"
    if period.label:
        channel += f", labelled {period.label}"
    if period.visibility:
        channel += f", {period.visibility} conversations only"
    return (
        f"Conversations started {when(period.since, zone)} to {when(period.until, zone)} "
        f"({zone.key}), {channel}\n(generated {when(generated, zone)})\n"
    )


def _headline(report: Report) -> str:
    rows = [["conversations", count(report.conversations.count)]]
    for key, label, unit in HEADLINE:
        figure = report.lookup(key)
        assert isinstance(figure, Share), key
        rows.append([label, share(figure, unit)])
    rows.append(["cost saved", money(report.cost_saved)])
    width = max(len(label) for label, _ in rows)
    return "Headline\n" + "".join(f"  {label.ljust(width)}  {text}\n" for label, text in rows)


def _reasons(main: Mapping[str, Share], any_: Mapping[str, Share]) -> str:
    if not main and not any_:
        return "Handoffs by reason\n  (no handoffs)\n"
    reasons = sorted(set(main) | set(any_), key=lambda r: (-_count_of(main, r), r))
    rows = [
        [reason, *_count_pct(main.get(reason)), *_count_pct(any_.get(reason))] for reason in reasons
    ]
    headers = ["reason", "main (first handoff)", "%", "any handoff", "%"]
    return "Handoffs by reason (of all conversations)\n" + table(headers, rows)


def _count_of(shares: Mapping[str, Share], reason: str) -> int:
    found = shares.get(reason)
    return found.count if found else 0


def _count_pct(figure: Share | None) -> list[str]:
    return [NONE, NONE] if figure is None else [count(figure.count), percent(figure.value)]


def _csat(report: Report) -> str:
    rows = [
        ["CSAT (ratings 4-5)", share(report.csat_bot, "ratings"),
         share(report.csat_human, "ratings")],
        ["response rate", share(report.rating_response_bot, "asked"),
         share(report.rating_response_human, "asked")],
    ]  # fmt: skip
    return "Satisfaction, by who resolved\n" + table(["", "bot", "human"], rows)


def _times(report: Report) -> str:
    spreads: list[tuple[str, Spread | None]] = [
        ("first human response, clock time", report.first_response),
        ("first human response, business hours", report.first_response_business),
        ("time to resolution, bot", report.resolution_time_bot),
        ("time to resolution, human", report.resolution_time_human),
    ]
    rows = [
        [label, NONE, NONE, "no business hours configured"]
        if spread is None
        else [label, duration(spread.p50), duration(spread.p90), count(spread.samples)]
        for label, spread in spreads
    ]
    return "Times\n" + table(["", "p50", "p90", "samples"], rows)


def _teams(report: Report) -> str:
    """The human figures by team: handoffs, answered within target, first response (clock
    and the team's hours), time to a person's resolution and human CSAT."""
    if not report.teams:
        return "By team\n  (none)\n"
    rows = [
        [
            f"{row.label} ({row.team})" if row.label != row.team else row.team,
            _of(row.handoffs),
            "no target" if row.within_target is None else _of(row.within_target),
            duration(row.first_response.p50),
            duration(row.first_response.p90),
            NONE if row.first_response_business is None
            else duration(row.first_response_business.p50),
            duration(row.resolution_time_human.p50),
            _of(row.csat_human),
        ]
        for row in report.teams
    ]  # fmt: skip
    headers = ["team", "handoffs", "within target", "first response p50", "p90",
               "business p50", "resolution p50", "CSAT"]  # fmt: skip
    note = (
        "  handoffs: conversations handed to the team / handed over; within target: of its "
        "handoffs judged (teams without a target are not counted)\n"
    )
    return "By team\n" + table(headers, rows) + note


def _intents(report: Report) -> str:
    if not report.top_intents:
        return "Top intents\n  (none)\n"
    rows = [
        [
            row.intent,
            count(row.conversations.count),
            percent(row.conversations.value),
            _of(row.automation),
            _of(row.handoffs),
            _of(row.emotional),
        ]
        for row in report.top_intents
    ]
    headers = ["intent", "conversations", "%", "automation", "handoffs", "emotional msgs"]
    return "Top intents\n" + table(headers, rows)


def _of(figure: Share) -> str:
    """``12/30 40.0%``: compact, for the columns of a table."""
    return f"{count(figure.count)}/{count(figure.total)} {percent(figure.value)}"


def _weeks(report: Report) -> str:
    if not report.weeks:
        return "Weeks\n  (none)\n"
    rows = [
        [
            week.start.isoformat(),
            count(week.conversations.count),
            _of(week.automation),
            _of(week.handoffs),
            duration(week.first_response.p50),
            _of(week.emotional),
        ]
        for week in report.weeks
    ]
    headers = [
        "week of",
        "conversations",
        "automation",
        "handoffs",
        "1st response p50",
        "emotional",
    ]
    return "Weeks (Monday to Sunday)\n" + table(headers, rows)


def conversation_table(rows: Sequence[ConversationRow], period: Period, zone: ZoneInfo) -> str:
    """One line per conversation."""
    if not rows:
        since, until = when(period.since, zone), when(period.until, zone)
        return f"No conversations started {since} to {until}.\n"
    headers = ["id", "customer", "channel", "visibility", "started", "resolver",
               "first handoff", "resolved", "1st response", "CSAT", "intents"]  # fmt: skip
    lines = [
        [
            str(row.id),
            str(row.customer_id),
            row.channel,
            row.visibility,
            when(row.started, zone),
            row.resolver or NONE,
            row.first_handoff_reason or NONE,
            when(row.resolved_at, zone),
            duration(row.first_human_response),
            NONE if row.csat is None else str(row.csat),
            ", ".join(row.intents) or NONE,
        ]
        for row in rows
    ]
    return f"Times in {zone.key}\n" + table(headers, lines, indent="", right=(0, 1, 8, 9))
