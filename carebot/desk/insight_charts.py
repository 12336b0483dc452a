"""The charts of ``/insights``: a report's weeks (conversations, automation, handoffs by main
reason, first human response, emotional share) and CSAT bot vs human. Each chart is drawn by
Chart.js (``static/insights.js``) from :meth:`Chart.data` and rendered by the server as a table
holding the same numbers, for screen readers and browsers without scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from carebot.desk import insight_format as fmt
from carebot.desk.insight_view import Figure, Link, reason_label
from carebot.insight.report import Report, Share, Spread

Show = Literal["count", "percent", "p50", "p90"]


@dataclass(frozen=True, slots=True)
class Series:
    """One line or bar colour of a chart: its values for the script, its cells for the table."""

    name: str
    values: tuple[float | None, ...]
    cells: tuple[Figure, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart, drawn by Chart.js from :meth:`data`, and shown as a table without a script."""

    id: str
    title: str
    kind: Literal["bar", "line"]
    unit: Literal["count", "percent", "minutes"]
    x_title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    stacked: bool = False
    empty: str = "No conversations in this period."

    @property
    def aria_label(self) -> str:
        """The chart in one sentence per point, for screen readers."""
        points = [
            f"{label}: " + ", ".join(f"{s.name} {s.cells[i].text}" for s in self.series)
            for i, label in enumerate(self.labels)
        ]
        return f"{self.title}. " + ("; ".join(points) if points else self.empty)

    def data(self) -> dict[str, object]:
        """What insights.js hands to Chart.js."""
        return {
            "type": self.kind,
            "unit": self.unit,
            "stacked": self.stacked,
            "x_title": self.x_title,
            "labels": list(self.labels),
            "datasets": [{"label": s.name, "data": list(s.values)} for s in self.series],
        }


@dataclass(frozen=True, slots=True)
class WeeklyCharts:
    """The charts of one report; every table cell links to its conversations."""

    report: Report
    link: Link

    def figure(self, key: str, text: str, of: str) -> Figure:
        return Figure("", text, of, key, self.link(key))

    def charts(self) -> tuple[Chart, ...]:
        """The weekly charts, and CSAT bot vs human."""
        return (
            self._week_chart(
                "chart-conversations",
                "Conversations per week",
                "bar",
                "count",
                self._weekly("Conversations", "conversations", "count", "conversations"),
            ),
            self._week_chart(
                "chart-automation",
                "Automation per week",
                "line",
                "percent",
                self._weekly("Automation", "automation", "percent", "conversations"),
            ),
            self._week_chart(
                "chart-handoffs",
                "Handoffs per week, by main reason",
                "bar",
                "count",
                *self._reason_series(),
                stacked=True,
            ),
            self._week_chart(
                "chart-first-response",
                "First human response per week",
                "line",
                "minutes",
                self._weekly("Median", "first_response", "p50", ""),
                self._weekly("90th percentile", "first_response", "p90", ""),
            ),
            self._week_chart(
                "chart-emotional",
                "Emotional share of customer messages per week",
                "line",
                "percent",
                self._weekly("Emotional", "emotional", "percent", "customer messages"),
            ),
            self._csat_chart(),
        )

    def _week_chart(
        self,
        chart_id: str,
        title: str,
        kind: Literal["bar", "line"],
        unit: Literal["count", "percent", "minutes"],
        *series: Series,
        stacked: bool = False,
    ) -> Chart:
        labels = tuple(fmt.week(w.start) for w in self.report.weeks)
        return Chart(chart_id, title, kind, unit, "Week of", labels, series, stacked=stacked)

    def _weekly(self, name: str, part: str, show: Show, unit: str) -> Series:
        points = [
            self._point(getattr(row, part), f"week.{row.start.isoformat()}.{part}", show, unit)
            for row in self.report.weeks
        ]
        return Series(name, tuple(v for v, _ in points), tuple(c for _, c in points))

    def _point(
        self, figure: Share | Spread | None, key: str, show: Show, unit: str
    ) -> tuple[float | None, Figure]:
        """A chart's value and its table cell: a share's count or percentage, or a spread's
        median or 90th percentile (in minutes for the chart)."""
        if isinstance(figure, Spread):
            value = figure.p50 if show == "p50" else figure.p90
            minutes = None if value is None else value.total_seconds() / 60
            of = f"{fmt.count(figure.samples)} sampled"
            return minutes, self.figure(key, fmt.duration(value), of)
        share = figure if isinstance(figure, Share) else Share(0, 0)
        if show == "count":
            return float(share.count), self.figure(key, fmt.count(share.count), unit)
        rate = None if share.value is None else share.value * 100
        return rate, self.figure(key, fmt.percent(share.value), fmt.share_of(share, unit))

    def _reason_series(self) -> tuple[Series, ...]:
        weeks = self.report.weeks
        totals: dict[str, int] = {}
        for row in weeks:
            for reason, share in row.handoff_reasons.items():
                totals[reason] = totals.get(reason, 0) + share.count
        series = []
        for reason in sorted(totals, key=lambda code: (-totals[code], code)):
            points = [
                self._point(
                    row.handoff_reasons.get(reason, Share(0, row.conversations.count)),
                    f"week.{row.start.isoformat()}.handoff_reason.{reason}",
                    "count",
                    "handoffs",
                )
                for row in weeks
            ]
            values = tuple(v for v, _ in points)
            series.append(Series(reason_label(reason), values, tuple(c for _, c in points)))
        return tuple(series)

    def _csat_chart(self) -> Chart:
        series = []
        for name, keys, unit in (
            ("CSAT", ("csat_bot", "csat_human"), "ratings"),
            ("Response rate", ("rating_response_bot", "rating_response_human"), "requests"),
        ):
            points = [self._point(self.report.lookup(key), key, "percent", unit) for key in keys]
            series.append(Series(name, tuple(v for v, _ in points), tuple(c for _, c in points)))
        asked = any(value is not None for s in series for value in s.values)
        return Chart(
            "chart-csat",
            "CSAT, bot-resolved vs human-resolved",
            "bar",
            "percent",
            "Resolved by",
            ("Bot-resolved", "Human-resolved") if asked else (),
            tuple(series) if asked else (),
            empty="No rating was asked for in this period.",
        )
