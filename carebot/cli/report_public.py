"""The public side of ``carebot report``'s table: the headline figures of the public and of the
private conversations side by side ("Public and private"), and what came in public and what
was done with it ("Public messages"). Each figure is defined in :mod:`carebot.insight.metrics`
and the README, in the same words."""

from __future__ import annotations

from carebot.cli.report_tables import NONE, duration, table
from carebot.cli.report_tables import percent as _percent
from carebot.insight.report import Report, Share, Spread


def _of(figure: Share) -> str:
    """``12/30 40.0%``: compact, for the columns of a table."""
    return f"{figure.count:,}/{figure.total:,} {_percent(figure.value)}"


def _p50(spread: Spread | None) -> str:
    return NONE if spread is None else duration(spread.p50)


def visibility_section(report: Report) -> str:
    """Per visibility: conversations, involvement, automation, handoff rate, first human
    response (median, clock and business hours), time to resolution (median, bot and human)
    and CSAT (bot and human)."""
    if not report.visibilities:
        return "Public and private\n  (none)\n"
    rows = [
        [
            row.visibility,
            _of(row.conversations),
            _of(row.involvement),
            _of(row.automation),
            _of(row.handoffs),
            _p50(row.first_response),
            _p50(row.first_response_business),
            _p50(row.resolution_time_bot),
            _p50(row.resolution_time_human),
            _of(row.csat_bot),
            _of(row.csat_human),
        ]
        for row in report.visibilities
    ]
    headers = ["", "conversations", "involvement", "automation", "handoffs",
               "1st response p50", "business p50", "resolved bot p50", "human p50",
               "CSAT bot", "CSAT human"]  # fmt: skip
    note = (
        "  conversations: of all conversations; the rest over that visibility's conversations.\n"
        "  The bot resolves a public conversation only by answering its question in public\n"
        "  (thanks for praise, a move to private and what it leaves are no answers).\n"
    )
    return "Public and private\n" + table(headers, rows) + note


PUBLIC_LINES: tuple[tuple[str, str], ...] = (
    ("answered_public", "answered in public by the bot"),
    ("thanked", "thanked by the bot (praise)"),
    ("left", "left (recorded, nothing to answer)"),
    ("handed_over", "handed to people"),
    ("moved_private_bot", "moved to private by carebot"),
    ("moved_private_agents", "moved to private by agents"),
    ("hidden_by_carebot", "hidden by carebot"),
    ("hidden_by_agents", "hidden by agents"),
    ("unhidden_by_agents", "  unhidden by agents after carebot hid them"),
    ("shadowed", "shadowed (carebot would have acted)"),
)


def public_section(report: Report) -> str:
    """Public messages: how many, by category, and what carebot and agents did with them."""
    public = report.public
    if not public.messages.total:
        return "Public messages\n  (none)\n"
    rows = [["public messages", f"{public.messages.count:,}", ""]]
    rows += [
        [f"  {name}", f"{s.count:,}", _percent(s.value)] for name, s in public.categories.items()
    ]
    for key, label in PUBLIC_LINES:
        figure = public.figure(key)
        assert figure is not None, key
        rows.append([label, f"{figure.count:,}", _percent(figure.value)])
        if key == "shadowed":
            rows += [
                [f"  would have: {kind.replace('_', ' ')}", f"{s.count:,}", _percent(s.value)]
                for kind, s in public.shadowed_actions.items()
            ]
    note = "  % of the public messages of the period's public conversations (chatter included)\n"
    return "Public messages\n" + table(["", "messages", "%"], rows) + note
