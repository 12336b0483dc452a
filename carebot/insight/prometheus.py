"""``/metrics``: what carebot did and how it went, in the Prometheus text format.

Off by default (``[metrics] enabled``). Two kinds of figures, none labelled with a customer or
conversation id:

- counters and histograms of what production wrote, read back from the store
  (:mod:`carebot.insight.counters`): the same totals on every worker, none lost on a restart;
- gauges of a care lead's headline figures (``carebot_insight_*``) over the conversations that
  started in the last ``[metrics] window_days`` days, from the same :class:`Report` the
  dashboard and ``carebot report`` show, computed at most every :data:`HEADLINE_TTL`. A figure
  with nothing to count (a rate over no conversations, a pending cost saved) has no sample:
  absent, never 0.

With ``[metrics] token_env`` set, a scrape must send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy.exc import SQLAlchemyError

from carebot.clock import Clock
from carebot.config import MetricsSettings, Settings
from carebot.exceptions import ConfigError, StoreError
from carebot.insight.counters import StoreCounters
from carebot.insight.metrics import Insight
from carebot.insight.report import PUBLIC_FIGURES, Period, Report, Share, Spread
from carebot.insight.totals import Histogram, Totals

if TYPE_CHECKING:
    from carebot.store.database import Database

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEADLINE_TTL = timedelta(seconds=30)


class Reports(Protocol):
    """What computes a lead's figures (:class:`carebot.insight.metrics.Insight`, or the
    dashboard's sources: the same function)."""

    @property
    def report(self) -> Callable[[Period], Awaitable[Report]]: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One headline gauge's value; ``key`` names the figure it shows (a
    :meth:`Report.lookup` key for a share)."""

    name: str
    labels: Mapping[str, str]
    value: float | None  # None: no sample (nothing to count)
    key: str


# (gauge name, help, report key, labels)
SHARES: tuple[tuple[str, str, str, Mapping[str, str]], ...] = (
    ("involvement_ratio", "bot sent an intent answer / conversations", "involvement", {}),
    ("automation_ratio", "bot resolutions / conversations", "automation", {}),
    ("bot_resolution_ratio", "bot resolutions / conversations, by how known", "confirmed",
     {"how": "confirmed"}),
    ("bot_resolution_ratio", "", "assumed", {"how": "assumed"}),
    ("resolution_rate_ratio", "bot resolutions / involved conversations", "resolution_rate", {}),
    ("durable_resolution_ratio", "durable / bot resolutions at least 7 days old", "durable", {}),
    ("handoff_ratio", "conversations handed over / conversations", "handoffs", {}),
    ("not_helpful_ratio", '"no" / answers to "did that answer your question?"',
     "not_helpful", {}),
    ("repeat_contact_ratio", "customers back within 7 days / customers with a resolution",
     "repeat_contact", {}),
    ("csat_ratio", "ratings 4-5 / ratings, by who resolved", "csat_bot", {"resolver": "bot"}),
    ("csat_ratio", "", "csat_human", {"resolver": "human"}),
    ("rating_response_ratio", "ratings / rating requests sent, by who resolved",
     "rating_response_bot", {"resolver": "bot"}),
    ("rating_response_ratio", "", "rating_response_human", {"resolver": "human"}),
    ("emotional_ratio", "customer messages flagged emotional / customer messages",
     "emotional", {}),
)  # fmt: skip
HELP = {name: text for name, text, _, _ in SHARES if text} | {
    "conversations": "conversations whose first customer message is in the window",
    "handoff_reason_ratio": "conversations by the first handoff's reason / conversations",
    "first_response_p50_seconds": "median first human response, clock or business hours",
    "first_response_p90_seconds": "90th percentile first human response",
    "resolution_time_p50_seconds": "median time to resolution, by who resolved",
    "resolution_time_p90_seconds": "90th percentile time to resolution, by who resolved",
    "cost_saved": "durable bot resolutions x cost per contact (absent while pending)",
    "cost_saved_pending": "1 while the window's durable resolutions are not yet known",
    "window_seconds": "the window the headline gauges are over",
    "visibility_conversations": "conversations in the window, public or private",
    "visibility_automation_ratio": "bot resolutions / conversations of that visibility",
    "visibility_handoff_ratio": "handed over / conversations of that visibility",
    "visibility_first_response_p50_seconds": "median first human response, by visibility",
    "public_messages": "public messages of the window's public conversations, by category",
    "public_handled": "public messages by what carebot or agents did with them",
}
# (gauge name, VisibilityRow figure): the by-visibility gauges, labelled visibility
VISIBILITY_GAUGES = (
    ("visibility_automation_ratio", "automation"),
    ("visibility_handoff_ratio", "handoffs"),
)


def headline_samples(report: Report) -> list[Sample]:
    """The ``carebot_insight_*`` gauges of ``report``, names without the prefix."""
    out = [Sample("conversations", {}, report.conversations.count, "conversations")]
    out += [
        Sample(name, labels, _share(report.lookup(key)), key) for name, _, key, labels in SHARES
    ]
    out += [
        Sample(
            "handoff_reason_ratio", {"reason": reason}, share.value, f"handoff_main_reason.{reason}"
        )
        for reason, share in sorted(report.handoff_main_reason.items())
    ]
    spreads: list[tuple[str, str, Spread | None, Mapping[str, str]]] = [
        ("first_response", "first_response", report.first_response, {"hours": "clock"}),
        ("first_response", "first_response_business", report.first_response_business,
         {"hours": "business"}),
        ("resolution_time", "resolution_time_bot", report.resolution_time_bot, {"resolver": "bot"}),
        ("resolution_time", "resolution_time_human", report.resolution_time_human,
         {"resolver": "human"}),
    ]  # fmt: skip
    for name, key, spread, labels in spreads:
        for quantile in ("p50", "p90"):
            value = getattr(spread, quantile) if spread is not None else None
            seconds = value.total_seconds() if value is not None else None
            out.append(
                Sample(f"{name}_{quantile}_seconds", labels, seconds, f"{key}.{quantile}_seconds")
            )
    money = report.cost_saved
    out.append(Sample("cost_saved", {"currency": money.currency}, money.amount, "cost_saved"))
    out.append(Sample("cost_saved_pending", {}, float(money.pending), "cost_saved.pending"))
    window = (report.period.until - report.period.since).total_seconds()
    out.append(Sample("window_seconds", {}, window, "period"))
    return out + public_samples(report)


def public_samples(report: Report) -> list[Sample]:
    """The gauges of the public and the private conversations, and of the public messages."""
    out = []
    for row in report.visibilities:
        labels, base = {"visibility": row.visibility}, f"visibility.{row.visibility}"
        key = f"{base}.conversations"
        out.append(Sample("visibility_conversations", labels, row.conversations.count, key))
        out += [
            Sample(name, labels, _share(row.figure(part)), f"{base}.{part}")
            for name, part in VISIBILITY_GAUGES
        ]
        p50 = row.first_response.p50
        out.append(
            Sample(
                "visibility_first_response_p50_seconds",
                labels,
                None if p50 is None else p50.total_seconds(),
                f"{base}.first_response.p50_seconds",
            )
        )
    public = report.public
    out += [
        Sample("public_messages", {"category": c}, s.count, f"public.category.{c}")
        for c, s in public.categories.items()
    ]
    out += [
        Sample("public_handled", {"what": part}, getattr(public, part).count, f"public.{part}")
        for part in PUBLIC_FIGURES
        if part != "messages"
    ]
    return out


def _share(figure: Share | Spread | None) -> float | None:
    return figure.value if isinstance(figure, Share) else None


class Headline:
    """The headline report over the last ``window_days``, computed at most every ``ttl``."""

    def __init__(
        self, *, insight: Reports, clock: Clock, window_days: float, ttl: timedelta = HEADLINE_TTL
    ) -> None:
        self._insight = insight
        self._clock = clock
        self._window = timedelta(days=window_days)
        self._ttl = ttl
        self._cached: tuple[datetime, Report] | None = None

    async def current(self) -> Report:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._ttl:
            return self._cached[1]
        report = await self._insight.report(Period(now - self._window, now))
        self._cached = (now, report)
        return report


class Snapshot:
    """A prometheus_client collector of the figures last read (collection is synchronous;
    the store is read before, by :class:`MetricsEndpoint`)."""

    def __init__(self) -> None:
        self.totals = Totals()
        self.report: Report | None = None

    def collect(self) -> Iterator[Metric]:
        yield from counter_families(self.totals)
        if self.report is not None:
            yield from gauge_families(self.report)


def counter_families(totals: Totals) -> Iterator[Metric]:
    """The counters and histograms of ``totals``."""
    messages = CounterMetricFamily(
        "carebot_messages", "messages stored", labels=["direction", "author", "channel"]
    )
    for labels, count in sorted(totals.messages.items()):
        messages.add_metric(list(labels), count)
    decisions = CounterMetricFamily(
        "carebot_decisions", "triage decisions, by kind and main reason", labels=["kind", "reason"]
    )
    for kind_reason, count in sorted(totals.decisions.items()):
        decisions.add_metric(list(kind_reason), count)
    handoffs = CounterMetricFamily(
        "carebot_handoffs", "conversations handed to a person, by main reason", labels=["reason"]
    )
    for reason, count in sorted(totals.handoffs.items()):
        handoffs.add_metric([reason], count)
    confirmed = CounterMetricFamily(
        "carebot_bot_resolutions_confirmed",
        'bot answers the customer confirmed ("yes" to "did that answer your question?")',
        value=totals.confirmed,
    )
    yield from (messages, decisions, handoffs, confirmed)
    yield _histogram("carebot_decision_seconds", "triage time", totals.decision_seconds)
    yield _histogram("carebot_match_score", "best intent score", totals.match_score)
    yield _histogram(
        "carebot_first_human_response_seconds",
        "handoff by the bot to the first agent reply, clock time",
        totals.first_response,
    )


def _histogram(name: str, doc: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, doc, buckets=histogram.cumulative(), sum_value=histogram.total
    )


def gauge_families(report: Report) -> Iterator[Metric]:
    """The ``carebot_insight_*`` gauges of ``report``; a figure that is None has no sample."""
    families: dict[str, GaugeMetricFamily] = {}
    for sample in headline_samples(report):
        family = families.get(sample.name)
        if family is None:
            family = families[sample.name] = GaugeMetricFamily(
                f"carebot_insight_{sample.name}",
                HELP.get(sample.name, sample.name.replace("_", " ")),
                labels=list(sample.labels),
            )
        if sample.value is not None:
            family.add_metric(list(sample.labels.values()), sample.value)
    yield from families.values()


def bearer_token(settings: MetricsSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The token scrapers must send, from the environment variable ``token_env`` names (None:
    no token asked). Raises ConfigError when that variable is not set or empty."""
    if not settings.token_env:
        return None
    token = (os.environ if env is None else env).get(settings.token_env, "").strip()
    if not token:
        raise ConfigError(
            f"[metrics] token_env names the environment variable {settings.token_env}, which "
            "is not set or empty: set it to the token Prometheus sends (Authorization: Bearer "
            '...), or set token_env = "" to serve /metrics without a token.'
        )
    return token


class MetricsEndpoint:
    """``GET /metrics``: reads what is new in the store, then answers in the text format."""

    def __init__(self, *, counters: StoreCounters, headline: Headline, token: str | None) -> None:
        self._counters = counters
        self._headline = headline
        self._expected = f"Bearer {token}".encode() if token else None
        self._snapshot = Snapshot()
        self._registry = CollectorRegistry(auto_describe=False)  # never the global default
        self._registry.register(self._snapshot)

    async def handle(self, request: web.Request) -> web.Response:
        if self._expected is not None:
            sent = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(sent, self._expected):
                return web.Response(
                    status=401,
                    text="/metrics needs Authorization: Bearer <token> ([metrics] token_env)\n",
                    headers={"WWW-Authenticate": 'Bearer realm="carebot metrics"'},
                )
        try:
            self._snapshot.totals = await self._counters.refresh()
            self._snapshot.report = await self._headline.current()
        except (SQLAlchemyError, StoreError, OSError) as exc:
            log.warning("/metrics: cannot read the store: %s", exc)
            return web.Response(status=503, text="the database cannot be read now\n")
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def mount_metrics(
    app: web.Application,
    settings: Settings,
    *,
    db: Database,
    clock: Clock,
    env: Mapping[str, str] | None = None,
    insight: Reports | None = None,
) -> None:
    """Serve ``/metrics`` on ``app`` when ``[metrics] enabled`` (else nothing: 404).
    ``insight`` computes the headline figures (default: :class:`Insight` on ``db``)."""
    cfg = settings.metrics
    if not cfg.enabled:
        return
    token = bearer_token(cfg, env)
    if insight is None:
        insight = Insight(db=db, settings=settings, clock=clock)
    counters = StoreCounters(db=db, clock=clock, reply_hours=settings.survey.reply_hours)
    headline = Headline(insight=insight, clock=clock, window_days=cfg.window_days)
    endpoint = MetricsEndpoint(counters=counters, headline=headline, token=token)
    app.router.add_get("/metrics", endpoint.handle)
