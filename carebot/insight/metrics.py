"""The care lead's numbers, each defined once: :class:`Insight` turns what the store holds into
a :class:`~carebot.insight.report.Report`, the same for the dashboard, ``carebot report`` and
``/metrics``. The definitions, in the words the code beside them uses (the README quotes them):

- **population**: conversations whose first customer message is in [since, until)
  (Conversation.created_at), optional channel filter (the channel of the conversation's
  identity), optional visibility filter (public or private: Conversation.visibility). A
  conversation whose only customer messages are survey replies, or public messages that ask
  nothing (see "asked"), is not a contact and is not in the population (a rating typed after
  the asked conversation closed lands in a new one; a thread of chatter under a post is
  counted only under "public messages"). Every rate below is over this population or a named
  part of it.
- **visibility**: a conversation is public (one customer's comments or mentions under one
  post) or private (direct messages). With the visibility filter only that visibility's
  conversations are in the population; what a customer did afterwards (durable, repeat
  contact) is still looked for in every conversation, public or private.
- **asked**: a customer message asks something of the brand, unless it is a public message
  the classifier put in praise, spam or chatter (public_items.category; carebot records it
  and leaves it, thanks it or hides it). A public message not classified (recorded while an
  agent had the conversation) asks.
- **intent answer**: a decision of kind answer that is not small talk (an intent tagged as in
  ``[triage] small_talk_tags``: greetings, thanks), nor a public thanks (reason praise), nor
  a move to private (reason moved_private: the question goes on in the private conversation
  the private reply opens, and is counted there). A decision of kind leave (a public message
  recorded with nothing to answer) is never one. So the bot resolves a public conversation
  only by answering its question in public. **involvement** = conversations with >= 1
  intent answer / conversations.
- **request**: a customer message that is not a survey reply, asks something, and was not
  answered as small talk (its decision, if any, is not small_talk). Messages with no decision
  (recorded while an agent had the conversation) are requests.
- **bot resolution, confirmed**: the conversation has a helpful survey ("did that answer your
  question?") answered "yes" (resolved_at = answered_at, of the first such answer). It counts
  even if the conversation was later handed over (it also counts in the handoff rate).
- **bot resolution, assumed** (only when not confirmed): let A = the conversation's last intent
  answer; no request in the same conversation in (A, A + assume_resolved_hours],
  now >= A + assume_resolved_hours (now = the time of the report), and no handoff in the
  conversation at all. resolved_at = A.
- **bot resolutions** = confirmed + assumed (each conversation once). **automation** = bot
  resolutions / conversations; **resolution rate** = bot resolutions / involved conversations
  (so automation = involvement x resolution rate).
- **durable**: a bot resolution with no request from the same customer (any conversation, any
  channel) in (resolved_at, resolved_at + 7 days], over bot resolutions with
  resolved_at <= now - 7 days.
- **handoff rate**: conversations with >= 1 handoff / conversations (a conversation handed over
  twice counts once); **main reason** = the first handoff's reason; **any reason** = every
  reason of any of its handoffs, each conversation once per reason.
- **not helpful**: helpful surveys answered "no" / helpful surveys answered, of the period's
  conversations.
- **human resolution**: a handoff of the conversation resolved by an agent (resolved_by set,
  and not ended otherwise, e.g. withdrawn by the customer; an agent who closes the
  conversation resolves its handoff too); resolved_at = the latest such. The **resolver** of
  a conversation is "bot" if bot-resolved, else "human" if human-resolved, else none.
- **repeat contact**: customers with a resolved (bot or human) conversation in the period who
  start another conversation (any channel; a contact, not survey-only) within 7 days after that
  resolution (the resolver's resolved_at), over customers with a resolved conversation in the
  period. Its conversations are those later ones.
- **first human response**: for each handoff opened by the bot in the period's conversations,
  the first agent message in the conversation at or after the handoff (and not after its
  resolution) minus the handoff's time; p50/p90 in clock time and in business hours
  (``[business_hours]``; none when no day has hours). A handoff nobody answered is no sample.
- **answered within target**: the handoffs the bot opened (as for first human response) whose
  team has a first-response target (``[[teams]] first_response_minutes``, counted in the
  team's business hours: :mod:`carebot.teams.targets`), answered at or before the due time /
  those answered, plus those still unanswered when the due time passed while they were open
  (not resolved or withdrawn before it). Handoffs of teams without a target are not counted;
  one not yet due and unanswered, or ended unanswered before it was due, has no verdict. The
  targets are today's config, applied to every handoff of the period.
- **team**: a handoff's team is the one it was routed or transferred to; one without a team
  (from before teams existed) or of a team no longer configured is the default team's. By
  team: **handoffs** = conversations with a handoff of the team / conversations handed over
  (a conversation handed to two teams counts for each); **first human response** of the
  team's handoffs, in clock time and in the team's business hours (its own, else
  ``[business_hours]``); **answered within target** of its handoffs; **time to resolution**
  and **CSAT** (human) of the conversations whose human resolution (the latest handoff an
  agent resolved) was the team's. **One team** (a filter): the conversations with a handoff of
  the team, and only that team's handoffs count in every figure.
- **time to resolution**: resolved_at - conversation start, for bot and human resolutions
  separately (a conversation resolved by the bot and later by a person is in both).
- **CSAT**: rating surveys answered with 4 or 5 / rating surveys answered, split by the
  survey's resolver (bot vs human, never mixed); **response rate** = rating surveys answered /
  rating surveys sent, same split. A rating answered later than ``[survey] reply_hours`` after
  it was asked does not count (and is not counted as answered).
- **cost saved**: durable bot resolutions x ``[insight] cost_per_contact``, in
  ``[insight] currency``; pending (no amount) while the period ends less than 7 days before
  now, never a misleading 0.
- **emotional share**: customer messages whose decision has the reason "emotional" / customer
  messages with a decision, in the period's conversations; per intent (the decision's intent)
  and per week.
- **top intents**: conversations per intent (a conversation counts for each distinct intent of
  its decisions that recognised one: kind answer or draft, or a handoff whose reasons include
  sensitive_intent or no_answer; small talk excluded), with each intent's automation and
  handoff rate, most conversations first (then by intent).
- **by visibility**: for the public and for the private conversations each: conversations
  (of that visibility / all conversations), and over that visibility's conversations only:
  involvement, automation, handoff rate, first human response (clock time and business
  hours), time to resolution (bot, human) and CSAT (bot, human), each as defined above.
- **public messages**: the public messages (public_items) of the period's public
  conversations, those that ask nothing included, each counted once over all of them (the
  conversations behind each are listed): **by category** (the classifier's: care_request,
  complaint, praise, spam, chatter; "unclassified" when it never saw it); **answered in
  public by the bot** (its decision is an intent answer); **thanked** (decision kind answer,
  reason praise: ``[public] thanks`` posted); **left** (decision kind leave: recorded,
  nothing to answer); **handed to people** (decision kind handoff); **moved to private** by
  carebot or by an agent (the message's one private reply was queued, private_reply_by
  carebot or an agent's name); **hidden by carebot** / **hidden by agents** (a "hidden"
  event in the conversation's audit trail by that actor, whether unhidden since or not);
  **unhidden by agents** (carebot hid it and an agent unhid it after); **shadowed** (shadow
  mode held back what carebot would have done: its decision's plan has shadowed steps), and
  by what it would have done (reply, private_reply, hide).
- **weeks**: buckets starting on Monday in the ``[business_hours]`` time zone, by conversation
  start.
- **p50 / p90**: the nearest-rank percentile: the smallest sample with at least p% of the
  samples at or below it (sorted samples, the ceil(p x n / 100)-th), so every figure shown is
  a real wait; none without samples.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from carebot.clock import Clock
from carebot.config import Settings
from carebot.exceptions import ConfigError
from carebot.hours import BusinessHours
from carebot.insight.breakdowns import intent_rows, week_rows
from carebot.insight.facts import Followups, load_conversations, load_followups
from carebot.insight.figures import (
    DURABLE_DAYS,
    REPEAT_DAYS,
    any_reasons,
    csat,
    durable_share,
    emotional_share,
    first_response,
    main_reasons,
    not_helpful,
    rating_response,
    repeat_contact,
    resolution_time,
    share,
    spread,
)
from carebot.insight.outcomes import Outcome, Rules
from carebot.insight.public import PublicItemFact, load_public_items, public_messages
from carebot.insight.report import ConversationRow, Money, Period, Report, Share, Spread
from carebot.insight.teams import TeamFigures
from carebot.insight.visibility import visibility_rows
from carebot.models import Visibility
from carebot.store.database import Database
from carebot.store.labels import ConversationLabels


class Insight:
    """Computes the period's :class:`Report` and its per-conversation rows from the store."""

    def __init__(self, *, db: Database, settings: Settings, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._rules = Rules(
            assume_resolved=timedelta(hours=settings.insight.assume_resolved_hours),
            rating_window=timedelta(hours=settings.survey.reply_hours),
            zone=settings.business_hours.zone(),
        )
        opened = any(settings.business_hours.opening(day) for day in range(7))
        self._hours = BusinessHours(settings.business_hours) if opened else None
        self._teams = TeamFigures(settings)
        self._labels = ConversationLabels(db, clock=clock)

    async def report(self, period: Period) -> Report:
        """Every figure of ``period``, as of now (the clock)."""
        now = self._clock()
        outcomes, items = await self._outcomes(period, now, public=True)
        followups = await self._followups(period, outcomes)
        report = self._report(period, now, outcomes, followups)
        return replace(
            report,
            visibilities=visibility_rows(outcomes, period, self._business_response),
            public=public_messages(items),
        )

    async def conversations(self, period: Period) -> list[ConversationRow]:
        """One row per conversation of ``period``, by start (then id)."""
        outcomes, _ = await self._outcomes(period, self._clock())
        return [conversation_row(o) for o in outcomes]

    async def _outcomes(
        self, period: Period, now: datetime, *, public: bool = False
    ) -> tuple[list[Outcome], list[PublicItemFact]]:
        """The outcomes of the period's conversations (the filters applied) and, with
        ``public``, the public messages of its public conversations (the same filters)."""
        self.known_visibility(period.visibility)
        facts = await load_conversations(self._db, period)
        items = await load_public_items(self._db, period) if public else []
        if period.label is not None:
            labelled = set(await self._labels.conversations_with_label(period.label))
            facts = [f for f in facts if f.id in labelled]
            items = [i for i in items if i.conversation_id in labelled]
        if period.team is not None:
            facts = self._teams.only(facts, self.known_team(period.team))
            handed = {f.id for f in facts}
            items = [i for i in items if i.conversation_id in handed]
        return [self._rules.outcome(f, now) for f in facts], items

    @staticmethod
    def known_visibility(name: str | None) -> None:
        """Raise a ConfigError naming the choices unless ``name`` is None, public or private."""
        choices = (Visibility.PUBLIC.value, Visibility.PRIVATE.value)
        if name is not None and name not in choices:
            raise ConfigError(f"There is no visibility {name!r}: it is public or private (or all)")

    def known_team(self, name: str) -> str:
        """``name`` if it is a configured team; else an error naming the teams there are."""
        names = [t.name for t in self._settings.teams_in_effect()]
        if name not in names:
            raise ConfigError(
                f"There is no team {name!r}: the teams are {', '.join(names)} ([[teams]] name "
                "in the config file)"
            )
        return name

    async def _followups(self, period: Period, outcomes: list[Outcome]) -> Followups:
        resolved = [o.resolved_at for o in outcomes if o.resolved_at is not None]
        if not resolved:
            return Followups({}, {})
        span = max(DURABLE_DAYS, REPEAT_DAYS)
        known = [o.facts for o in outcomes]
        return await load_followups(self._db, period, known, min(resolved), max(resolved) + span)

    def _report(
        self, period: Period, now: datetime, outcomes: list[Outcome], followups: Followups
    ) -> Report:
        bot = share(outcomes, lambda o: o.bot_resolved_at is not None)
        durable = durable_share(outcomes, followups, now)
        involved = [o for o in outcomes if o.involved]
        return Report(
            period=period,
            generated_at=now,
            conversations=share(outcomes, lambda o: True),
            involvement=share(outcomes, lambda o: o.involved),
            confirmed=share(outcomes, lambda o: o.confirmed_at is not None),
            assumed=share(outcomes, lambda o: o.assumed_at is not None),
            automation=bot,
            resolution_rate=share(involved, lambda o: o.bot_resolved_at is not None),
            durable=durable,
            handoffs=share(outcomes, lambda o: o.handed_over),
            handoff_main_reason=main_reasons(outcomes, len(outcomes)),
            handoff_any_reason=any_reasons(outcomes),
            not_helpful=not_helpful(outcomes),
            repeat_contact=repeat_contact(outcomes, followups),
            first_response=first_response(outcomes),
            first_response_business=self._business_response(outcomes),
            resolution_time_bot=resolution_time(outcomes, lambda o: o.bot_resolved_at),
            resolution_time_human=resolution_time(outcomes, lambda o: o.human_resolved_at),
            csat_bot=csat(outcomes, "bot"),
            csat_human=csat(outcomes, "human"),
            rating_response_bot=rating_response(outcomes, "bot"),
            rating_response_human=rating_response(outcomes, "human"),
            cost_saved=self._cost_saved(period, now, durable),
            emotional=emotional_share(outcomes),
            top_intents=intent_rows(outcomes),
            weeks=week_rows(outcomes, period, self._rules.week_of),
            notes=_notes(period, now, bot, durable),
            within_target=self._teams.within_target(outcomes, now),
            teams=tuple(
                row
                for row in self._teams.rows(outcomes, now)
                if period.team is None or row.team == period.team
            ),
        )

    def _business_response(self, outcomes: list[Outcome]) -> Spread | None:
        """first human response in business hours (BusinessHours.open_between); None when no
        day of [business_hours] has hours."""
        hours = self._hours
        if hours is None:
            return None
        return spread(
            (hours.open_between(r.handed_over_at, r.answered_at), o.facts.id)
            for o in outcomes
            for r in o.first_responses
        )

    def _cost_saved(self, period: Period, now: datetime, durable: Share) -> Money:
        """cost saved: durable bot resolutions x [insight] cost_per_contact, currency
        [insight] currency; pending (amount None) when period.until > now - 7 days."""
        cost = self._settings.insight.cost_per_contact
        pending = period.until > now - DURABLE_DAYS
        return Money(
            amount=None if pending else durable.count * cost,
            currency=self._settings.insight.currency,
            resolutions=durable.count,
            cost_per_contact=cost,
            pending=pending,
        )


def conversation_row(o: Outcome) -> ConversationRow:
    """The export's row of one conversation."""
    rating = o.ratings[0].answer if o.ratings else None
    return ConversationRow(
        id=o.facts.id,
        customer_id=o.facts.customer_id,
        channel=o.facts.channel,
        started=o.facts.started,
        resolver=o.resolver,
        first_handoff_reason=o.facts.handoffs[0].reason if o.facts.handoffs else None,
        resolved_at=o.resolved_at,
        first_human_response=o.first_responses[0].wait if o.first_responses else None,
        csat=int(rating) if rating and rating.isdigit() else None,
        intents=o.intents,
        visibility=o.facts.visibility,
    )


def _notes(period: Period, now: datetime, bot: Share, durable: Share) -> tuple[str, ...]:
    notes = []
    if period.until > now - DURABLE_DAYS:
        ready = (period.until + DURABLE_DAYS).date().isoformat()
        notes.append(
            f"Cost saved is pending until {ready}: a bot resolution is durable once 7 days "
            "have passed without the customer asking again."
        )
    younger = bot.count - durable.total
    if younger > 0:
        notes.append(
            f"{younger} of {bot.count} bot resolutions are younger than 7 days and not yet "
            "in the durable figure."
        )
    return tuple(notes)
