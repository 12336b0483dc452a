"""The headline figures of :mod:`carebot.insight.metrics` split into the public and the private
conversations of the period ("by visibility", defined there in the same words): each row is
the same figure over that visibility's conversations only."""

from __future__ import annotations

from collections.abc import Callable

from carebot.insight.figures import csat, first_response, resolution_time, share
from carebot.insight.outcomes import Outcome
from carebot.insight.report import Period, Share, Spread, VisibilityRow
from carebot.models import Visibility

VISIBILITIES = (Visibility.PUBLIC.value, Visibility.PRIVATE.value)


def visibility_rows(
    outcomes: list[Outcome],
    period: Period,
    business: Callable[[list[Outcome]], Spread | None],
) -> tuple[VisibilityRow, ...]:
    """One row per visibility, public then private (only the period's, when it names one).
    ``business``: the first human response in business hours of some outcomes."""
    names = (period.visibility,) if period.visibility else VISIBILITIES
    return tuple(_row(name, outcomes, business) for name in names)


def _row(
    name: str, outcomes: list[Outcome], business: Callable[[list[Outcome]], Spread | None]
) -> VisibilityRow:
    mine = [o for o in outcomes if o.facts.visibility == name]
    return VisibilityRow(
        visibility=name,
        conversations=Share(len(mine), len(outcomes), tuple(o.facts.id for o in mine)),
        involvement=share(mine, lambda o: o.involved),
        automation=share(mine, lambda o: o.bot_resolved_at is not None),
        handoffs=share(mine, lambda o: o.handed_over),
        first_response=first_response(mine),
        first_response_business=business(mine),
        resolution_time_bot=resolution_time(mine, lambda o: o.bot_resolved_at),
        resolution_time_human=resolution_time(mine, lambda o: o.human_resolved_at),
        csat_bot=csat(mine, "bot"),
        csat_human=csat(mine, "human"),
    )
