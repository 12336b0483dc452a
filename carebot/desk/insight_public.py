"""The public side of ``/insights``: the "Public and private" table (the headline figures of
the public and of the private conversations) and the "Public messages" table (what came in
public and what was done with it). Every number links to its conversations, as the rest of
the page (:class:`carebot.desk.insight_view.Dashboard` makes the cells); nothing here computes
a metric."""

from __future__ import annotations

from dataclasses import dataclass

from carebot.desk import insight_format as fmt
from carebot.desk.insight_view import Dashboard, Figure
from carebot.insight.report import Share, Spread, VisibilityRow

VISIBILITY_TITLES = {"public": "Public (comments, mentions)", "private": "Private messages"}
PUBLIC_ROWS: tuple[tuple[str, str], ...] = (
    ("answered_public", "Answered in public by the bot"),
    ("thanked", "Thanked by the bot (praise)"),
    ("left", "Left: recorded, nothing to answer"),
    ("handed_over", "Handed to people"),
    ("moved_private_bot", "Moved to private by carebot"),
    ("moved_private_agents", "Moved to private by agents"),
    ("hidden_by_carebot", "Hidden by carebot"),
    ("hidden_by_agents", "Hidden by agents"),
    ("unhidden_by_agents", "Unhidden by agents after carebot hid them"),
    ("shadowed", "Shadowed: carebot would have acted"),
)
CATEGORY_TITLES = {
    "care_request": "Care requests",
    "complaint": "Complaints",
    "praise": "Praise",
    "spam": "Spam and abuse",
    "chatter": "Chatter",
    "unclassified": "Not classified",
}


@dataclass(frozen=True, slots=True)
class PublicRow:
    """One line of the Public messages table: what, the key, and its figure."""

    key: str
    title: str
    figure: Figure
    indent: bool = False


def visibility_rows(d: Dashboard) -> tuple[tuple[VisibilityRow, str, tuple[Figure, ...]], ...]:
    """Per visibility: its title and its cells: conversations, involvement, automation,
    handoff rate, first response (median, clock and business hours), time to resolution
    (median, bot and human) and CSAT (bot and human)."""
    return tuple(
        (row, VISIBILITY_TITLES.get(row.visibility, row.visibility), _visibility_cells(d, row))
        for row in d.report.visibilities
    )


def _visibility_cells(d: Dashboard, row: VisibilityRow) -> tuple[Figure, ...]:
    base = f"visibility.{row.visibility}"
    conversations = d.figure(
        "",
        f"{base}.conversations",
        f"{fmt.count(row.conversations.count)} ({fmt.percent(row.conversations.value)})",
        fmt.share_of(row.conversations, "conversations"),
    )
    unit = f"{row.visibility} conversations"
    return (
        conversations,
        _percent(d, f"{base}.involvement", row.involvement, unit),
        _percent(d, f"{base}.automation", row.automation, unit),
        _percent(d, f"{base}.handoffs", row.handoffs, unit),
        _time(d, f"{base}.first_response", row.first_response),
        _time(d, f"{base}.first_response_business", row.first_response_business),
        _time(d, f"{base}.resolution_time_bot", row.resolution_time_bot),
        _time(d, f"{base}.resolution_time_human", row.resolution_time_human),
        _percent(d, f"{base}.csat_bot", row.csat_bot, "ratings"),
        _percent(d, f"{base}.csat_human", row.csat_human, "ratings"),
    )


def public_rows(d: Dashboard) -> tuple[PublicRow, ...]:
    """The public messages: the total, each category, then what was done with them (each a
    count, over the public messages)."""
    public = d.report.public
    if not public.messages.total:
        return ()
    rows = [
        PublicRow(
            "public.messages", "Public messages", _count(d, "public.messages", public.messages)
        )
    ]
    rows += [
        PublicRow(f"public.category.{name}", CATEGORY_TITLES.get(name, name),
                  _count(d, f"public.category.{name}", share), indent=True)
        for name, share in public.categories.items()
    ]  # fmt: skip
    for part, title in PUBLIC_ROWS:
        figure = public.figure(part)
        assert figure is not None, part
        rows.append(PublicRow(f"public.{part}", title, _count(d, f"public.{part}", figure)))
        if part == "shadowed":
            rows += [
                PublicRow(f"public.shadowed_action.{kind}",
                          f"would have: {kind.replace('_', ' ')}",
                          _count(d, f"public.shadowed_action.{kind}", share), indent=True)
                for kind, share in public.shadowed_actions.items()
            ]  # fmt: skip
    return tuple(rows)


def _count(d: Dashboard, key: str, share: Share) -> Figure:
    text = f"{fmt.count(share.count)} ({fmt.percent(share.value)})"
    return d.figure("", key, text, fmt.share_of(share, "public messages"))


def _percent(d: Dashboard, key: str, share: Share, unit: str) -> Figure:
    return d.figure("", key, fmt.percent(share.value), fmt.share_of(share, unit))


def _time(d: Dashboard, key: str, spread: Spread | None) -> Figure:
    of = (
        "no business hours configured" if spread is None else f"{fmt.count(spread.samples)} sampled"
    )
    return d.figure("", key, fmt.duration(fmt.spread_p50(spread)), of)
