"""What agents do in Slack, translated into agent-desk actions (Slack -> carebot).

* a reply in a card's thread goes to the customer on their own channel (``note:`` stays
  internal); it gets a check mark once it is queued for the customer;
* the card's buttons send the draft, open the edit modal, take the conversation over,
  resolve it (back to the bot) or close it; the modal's submission sends the edited reply;
* acting on a conversation a colleague has (replying in its thread, "Take over", "Send draft",
  the edit modal) changes nothing at first: the agent is asked, privately, with a button
  "Take it over from Ann". Their reply is kept in that button (when it fits Slack's 2,000
  characters; else they are asked to send it again) and goes to the customer once they press
  it. The thread then says who took it over from whom, mentioning the previous agent;
* "Upset" / "Not upset" label the customer message the card was made for (or, under a customer
  message mirrored into the thread, that message) for retraining the emotion signal;
* "Transfer" opens a modal (another team, an optional note) that moves the conversation to that
  team (:meth:`carebot.agents.AgentDesk.transfer`): the sync opens its new card there;
* a thread reply starting with ``note:`` is an internal note, stored with the conversation
  (:class:`carebot.store.notes.Notes`, once per Slack message) so the inbox shows it too; it
  gets a memo reaction once kept.
* in a public conversation (a comment, a mention): ``private:`` replies, Hide / Unhide and
  refusals in plain words are :mod:`.public_actions`'s.

With ``[[teams]]``, events and buttons come from every team's channel, and a thread is its
conversation's by channel and ts. Only the members of the handoff's team (and leads) may act on
it, recognised by their ``slack_user_id``; a team with no members falls back to its channel's
members (or ``[slack] agents``), as the single care channel does. An agent who maps to a
configured one acts under that agent's inbox name, so both desks see the same person.

Every handler acknowledges Slack first (Slack wants an answer within 3 seconds) and then
works. Only agents may act (see :mod:`.people`); anyone else is told so, privately, and nothing
changes. Retried deliveries of a thread reply are dropped by their ``event_id``.

An agent's reply (in a thread, or from the edit modal) is never dropped because Slack cannot
say who is in the care channel: it is held, the agent is told so privately, and it goes out as
soon as the member list can be fetched (asked for again every few seconds), in the order the
thread's replies came. Answering Slack with an error instead, so that it sends the event again,
would not do: bolt has acknowledged the event before the listener runs, Slack tries again only
three times within about five minutes (and turns an app's events off when most fail), and a
modal's text is not sent again at all. A held reply lives as long as the process; one still
held when carebot stops is logged as not sent. A button pressed meanwhile changes nothing and
the agent is told to press it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from carebot.agents import AgentDesk
from carebot.desk.slack import card as cards
from carebot.desk.slack import public_actions as public
from carebot.desk.slack.api import SlackApi
from carebot.desk.slack.mrkdwn import plain
from carebot.desk.slack.people import People
from carebot.events import Event, EventHub
from carebot.exceptions import SlackError, StoreError
from carebot.store.emotion_labels import EmotionLabel
from carebot.store.handoffs import OwnedByColleague
from carebot.store.notes import Notes
from carebot.store.queue import AgentQueue
from carebot.store.slack_threads import SlackThreadStore
from carebot.teams.membership import Membership

log = logging.getLogger(__name__)
NOT_ALLOWED = (
    "Only care agents can do this: members of the care channel, or the agents listed in "
    "carebot's [slack] settings. Nothing was changed."
)
NOTE_PREFIX = "note:"
HELD = (
    "Slack did not let carebot check that you are a care agent ({reason}). Your reply is held, "
    "not lost: it goes to the customer as soon as Slack answers."
)
CANNOT_CHECK = (
    "Slack did not let carebot check that you are a care agent ({reason}). Nothing was "
    "changed: try again in a moment."
)
ORPHANED = (
    "This thread's card was replaced by a newer one, so this reply was not sent. Reply in the "
    "thread of the conversation's newest card."
)
NOT_A_MEMBER = "This conversation belongs to {team}; only its members can act on it."
MOVED = (
    "This conversation was transferred to {team}, so this reply was not sent. Its new card is "
    "in {team}'s channel."
)
RELAYED = "white_check_mark"  # the reaction on a thread reply queued for the customer
NOTED = "memo"  # the reaction on a note: reply kept with the conversation
RELAYED_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
Listener = Callable[..., Awaitable[Any]]
Track = Callable[[Listener], Listener]


def _untracked(listener: Listener) -> Listener:
    return listener


class Listeners:
    def __init__(
        self,
        *,
        desk: AgentDesk,
        queue: AgentQueue,
        threads: SlackThreadStore,
        people: People,
        api: SlackApi,
        settled: Callable[[], Awaitable[None]],
        membership: Membership | None = None,
        notes: Notes | None = None,
        events: EventHub | None = None,
    ) -> None:
        """``membership``: who may act on which team's handoffs, and the teams' channels (None:
        the one care channel, whose members may act). ``notes``: where ``note:`` replies are
        kept (None: they stay in Slack only); ``events`` hears of them."""
        self._settled = settled
        self._membership = membership
        self._notes = notes
        self._events = events
        self._channels = frozenset({api.channel}) | (
            frozenset(
                membership.settings.slack_channel(team.name)
                for team in membership.settings.teams_in_effect()
            )
            - {""}
            if membership is not None
            else frozenset()
        )
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._desk = desk
        self._queue = queue
        self._threads = threads
        self._people = people
        self._api = api

    def register(self, app: AsyncApp, *, track: Track = _untracked) -> None:
        """Listen on ``app``; ``track`` wraps each listener (the desk awaits the runs in hand
        when it stops)."""
        app.event("message")(track(self.on_message))
        for action in (cards.SEND_DRAFT, cards.TAKE_OVER, cards.RESOLVE, cards.CLOSE):
            app.action(action)(track(self.on_button))
        app.action(cards.EDIT_DRAFT)(track(self.on_edit))
        app.action(cards.TAKE_FROM_COLLEAGUE)(track(self.on_take_from_colleague))
        app.action(cards.TRANSFER)(track(self.on_transfer))
        app.view(cards.TRANSFER_VIEW)(track(self.on_transfer_submitted))
        for action in (cards.LABEL_UPSET, cards.LABEL_NOT_UPSET):
            app.action(action)(track(self.on_label))
        app.view(cards.EDIT_VIEW)(track(self.on_edit_submitted))
        buttons = public.PublicButtons(self._desk, self._allowed, self._agent_name, self._tell)
        buttons.register(app, track=track)  # a public conversation's Hide / Unhide

    async def on_message(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """A message in a team's channel: relayed when it is an agent's reply in a card thread.

        Replies in one thread are handled one at a time, in the order they arrived."""
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        if (
            event.get("channel") not in self._channels
            or not thread_ts
            or thread_ts == ts
            or event.get("bot_id")
            or event.get("subtype") not in RELAYED_SUBTYPES
        ):
            return
        async with self._locks.setdefault(thread_ts, asyncio.Lock()):
            await self._on_reply(event, body, context, thread_ts)

    async def _on_reply(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, thread_ts: str
    ) -> None:
        user, ts = str(event.get("user")), event.get("ts")
        channel = str(event.get("channel"))
        conversation_id = await self._conversation_of(channel, thread_ts)
        if conversation_id is None:
            if event.get("parent_user_id") == context.bot_user_id:  # under an old, replaced card
                old = await self._threads.superseded(channel, thread_ts)
                said = MOVED.format(team=self._label(old.transferred_to)) if old else ORPHANED
                await self._tell(user, said, thread_ts=thread_ts, channel=channel)
            return
        event_id = str(body.get("event_id") or f"{channel}:{ts}")
        if not await self._threads.first_delivery(event_id):
            log.info("Dropping Slack's redelivery of event %s", event_id)
            return
        text = str(event.get("text") or "")
        written = plain(text).lstrip("*_~> ")
        if written.casefold().startswith(NOTE_PREFIX):  # an internal note, for the agents only
            await self._note(conversation_id, user, written[len(NOTE_PREFIX) :], thread_ts, ts)
            return
        await self._relay(conversation_id, user, text, thread_ts, ts, channel)

    async def _conversation_of(self, channel: str, thread_ts: str) -> int | None:
        found = await self._threads.conversation_of(channel, thread_ts)
        if found is None:
            # The card may be posted and its ts not saved yet: wait for the sync, look again.
            await self._settled()
            found = await self._threads.conversation_of(channel, thread_ts)
        return found

    async def _note(
        self, conversation_id: int, user: str, text: str, thread_ts: str, ts: str | None
    ) -> None:
        """Keep a ``note:`` reply with the conversation, once per Slack message."""
        if self._notes is None or not ts or not text.strip():
            return
        channel = await self._channel_of(conversation_id)
        try:
            refusal = await self._refusal(user, conversation_id)
            if refusal:
                await self._tell(user, refusal, thread_ts=thread_ts, channel=channel)
                return
            name = await self._agent_name(user)
            try:
                await self._notes.add(conversation_id, name, text, "slack", external_id=ts)
            except StoreError as exc:
                await self._tell(
                    user, f"The note was not kept: {exc}", thread_ts=thread_ts, channel=channel
                )
                return
            if self._events is not None:
                self._events.publish(Event("agent_action", conversation_id))
            await self._api.react(NOTED, ts, channel=channel)
        except SlackError as exc:
            log.warning("Slack failed on a note in conversation %s: %s", conversation_id, exc)

    async def _relay(
        self,
        conversation_id: int,
        user: str,
        text: str,
        thread_ts: str,
        ts: str | None,
        channel: str | None = None,
    ) -> None:
        try:
            refusal = await self._refusal_or_held(
                user, conversation_id, thread_ts=thread_ts, channel=channel
            )
            if refusal:
                await self._tell(user, refusal, thread_ts=thread_ts, channel=channel)
                return
            private, reply = public.private_reply(plain(text))  # "private:" in a public one
            if not reply:
                return
            name = await self._agent_name(user)
            try:
                await self._desk.reply(conversation_id, name, reply, via="slack", private=private)
            except OwnedByColleague as exc:
                action = {"conversation": conversation_id, "do": "reply", "text": reply}
                action |= {"private": True} if private else {}
                if ts:
                    action["ts"] = ts  # checked once it is sent
                await self._ask(user, exc.owner, action, thread_ts=thread_ts, channel=channel)
                return
            except StoreError as exc:
                said = public.not_sent(exc, private=private)
                await self._tell(user, said, thread_ts=thread_ts, channel=channel)
                return
            if ts:
                await self._api.react(RELAYED, ts, channel=channel)
        except SlackError as exc:
            log.warning(
                "Slack failed while relaying a reply in conversation %s: %s", conversation_id, exc
            )

    async def on_button(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond | None = None,
    ) -> None:
        await ack()
        user, conversation_id = body["user"]["id"], int(action["value"])
        try:
            if not await self._allowed(user, conversation_id, respond=respond):
                return
            name = await self._agent_name(user)
            try:
                if action["action_id"] == cards.SEND_DRAFT:
                    await self._desk.send_draft(conversation_id, name, via="slack-card")
                elif action["action_id"] == cards.TAKE_OVER:
                    await self._desk.take_over(conversation_id, name)
                elif action["action_id"] == cards.CLOSE:
                    await self._desk.close(conversation_id, name)
                else:
                    await self._desk.resolve(conversation_id, name)
            except OwnedByColleague as exc:
                do = "send_draft" if action["action_id"] == cards.SEND_DRAFT else "take_over"
                asked = {"conversation": conversation_id, "do": do}
                await self._ask(user, exc.owner, asked, respond=respond)
            except StoreError as exc:
                await self._tell(user, public.not_sent(exc, "Nothing changed"), respond=respond)
        except SlackError as exc:
            log.warning("Slack failed on %s in %s: %s", action["action_id"], conversation_id, exc)

    async def on_label(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond | None = None,
    ) -> None:
        """Label a customer message upset or not. The card shows the labels on its message;
        under a thread message, the agent is told privately."""
        await ack()
        user, message_id = body["user"]["id"], int(action["value"])
        label = (
            EmotionLabel.UPSET
            if action["action_id"] == cards.LABEL_UPSET
            else (EmotionLabel.NOT_UPSET)
        )
        channel = (body.get("channel") or {}).get("id")
        try:
            if not await self._allowed(user, None, respond=respond, channel=channel):
                return
            name = await self._agent_name(user)
            try:
                await self._desk.label_emotion(message_id, name, label)
            except StoreError as exc:
                await self._tell(user, public.not_sent(exc, "Nothing changed"), respond=respond)
                return
            if action.get("block_id") == cards.THREAD_LABEL_BLOCK:
                said = f"You marked this message {label.words}; it is kept for retraining."
                await self._tell(user, said, respond=respond)
        except SlackError as exc:
            log.warning("Slack failed while labelling message %s: %s", message_id, exc)

    async def on_edit(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond | None = None,
    ) -> None:
        """Open the modal with the draft, to be edited and sent."""
        await ack()
        user, conversation_id = body["user"]["id"], int(action["value"])
        try:
            if not await self._allowed(user, conversation_id, respond=respond):
                return
            case = await self._case(user, conversation_id, respond)
            if case is None:
                return
            draft = str((case.handoff or {}).get("draft") or "")
            view = cards.edit_modal(conversation_id, case.customer["name"], draft)
            await self._api.open_modal(body["trigger_id"], view)
        except SlackError as exc:
            log.warning("Cannot open the edit modal for conversation %s: %s", conversation_id, exc)

    async def _case(self, user: str, conversation_id: int, respond: AsyncRespond | None) -> Any:
        """The conversation a button names, or None when there is none (the agent is told)."""
        try:
            return await self._queue.case(conversation_id)
        except StoreError as exc:  # a button no card of ours has (a forged one)
            await self._tell(user, f"Nothing was opened: {exc}.", respond=respond)
            return None

    async def on_edit_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        """Send the edited reply. Acknowledged before any Slack call (Slack waits 3 s)."""
        user = body["user"]["id"]
        values = view["state"]["values"]
        text = str(values.get(cards.REPLY_BLOCK, {}).get(cards.REPLY_INPUT, {}).get("value") or "")
        if not text.strip():
            await ack(response_action="errors", errors={cards.REPLY_BLOCK: "Write a reply first."})
            return
        await ack()
        conversation_id = int(view["private_metadata"])
        channel = await self._channel_of(conversation_id)
        try:
            refusal = await self._refusal_or_held(user, conversation_id, channel=channel)
            if refusal:
                await self._tell(user, refusal, channel=channel)
                return
            name = await self._agent_name(user)
            try:
                await self._desk.send_draft(conversation_id, name, text=text, via="slack-card")
            except OwnedByColleague as exc:
                action = {"conversation": conversation_id, "do": "send_draft", "text": text}
                await self._ask(user, exc.owner, action, channel=channel)
            except StoreError as exc:
                await self._tell(user, public.not_sent(exc), channel=channel)
        except SlackError as exc:
            log.warning("Slack failed after an edited reply in %s: %s", conversation_id, exc)

    async def on_take_from_colleague(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond | None = None,
    ) -> None:
        """The agent confirmed: take the conversation from the colleague who has it, do what
        they were asked about (send their reply, the draft), and say so in the thread."""
        await ack()
        user, asked = body["user"]["id"], json.loads(action["value"])
        conversation_id, do, text = int(asked["conversation"]), asked["do"], asked.get("text")
        try:
            if not await self._allowed(user, conversation_id, respond=respond):
                return
            name = await self._agent_name(user)
            try:
                if do == "reply" and text:
                    await self._desk.reply(
                        conversation_id,
                        name,
                        text,
                        via="slack",
                        from_colleague=True,
                        private=bool(asked.get("private")),  # a "private:" reply
                    )
                elif do == "send_draft":
                    await self._desk.send_draft(
                        conversation_id, name, text=text, via="slack-card", from_colleague=True
                    )
                else:
                    await self._desk.take_over(conversation_id, name, from_colleague=True)
            except StoreError as exc:
                await self._tell(user, public.not_sent(exc, "Nothing changed"), respond=respond)
                return
            done = {
                "reply": "Your reply went to the customer.",
                "send_draft": "The draft went to the customer.",
            }.get(do, "")
            await self._tell(
                user,
                f"You have the conversation now. {done}".strip(),
                respond=respond,
                replace=True,
            )
            # The thread says who took it over from whom: the sync notes every change of
            # hands, from whichever desk (carebot.desk.slack.sync).
            if do == "reply" and text and asked.get("ts"):
                channel = await self._channel_of(conversation_id)
                await self._api.react(RELAYED, str(asked["ts"]), channel=channel)
        except SlackError as exc:
            log.warning("Slack failed while %s took over %s: %s", user, conversation_id, exc)

    async def on_transfer(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond | None = None,
    ) -> None:
        """Open the transfer modal: the other teams, and a note for them."""
        await ack()
        user, conversation_id = body["user"]["id"], int(action["value"])
        try:
            if not await self._allowed(user, conversation_id, respond=respond):
                return
            if self._membership is None:
                return
            settings = self._membership.settings
            current = settings.team(await self._team_of(conversation_id)).name
            teams = tuple(
                (t.name, t.label) for t in settings.teams_in_effect() if t.name != current
            )
            if not teams:
                await self._tell(user, "There is no other team to transfer to.", respond=respond)
                return
            case = await self._case(user, conversation_id, respond)
            if case is None:
                return
            view = cards.transfer_modal(conversation_id, case.customer["name"], teams)
            await self._api.open_modal(body["trigger_id"], view)
        except SlackError as exc:
            log.warning("Cannot open the transfer modal for %s: %s", conversation_id, exc)

    async def on_transfer_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        """Transfer to the chosen team; the sync opens the new card in its channel and marks
        the old one. The customer is not messaged."""
        user = body["user"]["id"]
        values = view["state"]["values"]
        chosen = values.get(cards.TEAM_BLOCK, {}).get(cards.TEAM_INPUT, {})
        team = str((chosen.get("selected_option") or {}).get("value") or "")
        if not team:
            await ack(response_action="errors", errors={cards.TEAM_BLOCK: "Choose a team."})
            return
        note = str(values.get(cards.NOTE_BLOCK, {}).get(cards.NOTE_INPUT, {}).get("value") or "")
        await ack()
        conversation_id = int(view["private_metadata"])
        channel = await self._channel_of(conversation_id)
        try:
            refusal = await self._refusal(user, conversation_id)
            if refusal:
                await self._tell(user, refusal, channel=channel)
                return
            name = await self._agent_name(user)
            try:
                await self._desk.transfer(conversation_id, name, team, note=note)
            except StoreError as exc:
                await self._tell(user, f"Not transferred: {exc}", channel=channel)
        except SlackError as exc:
            log.warning("Slack failed after a transfer of %s: %s", conversation_id, exc)

    async def _team_of(self, conversation_id: int) -> str | None:
        """The team of the conversation's latest handoff (None: before teams, or none)."""
        latest = await self._threads.latest_handoff(conversation_id)
        return latest.handoff.team if latest is not None else None

    async def _channel_of(self, conversation_id: int) -> str | None:
        """The channel of the conversation's live card (None: the care channel)."""
        thread = await self._threads.get(conversation_id)
        return thread.channel if thread is not None else None

    def _label(self, team: str | None) -> str:
        if self._membership is None:
            return team or "another team"
        return self._membership.settings.team(team).label

    async def _agent_name(self, user: str) -> str:
        """The name ``user`` acts under: the configured agent's inbox name when their
        ``slack_user_id`` is set (so both desks see one person), else their Slack name."""
        if self._membership is not None:
            agent = self._membership.find(user)
            if agent is not None and agent.slack_user_id == user:
                # the inbox acts under the display name; it names the agent when only they have it
                same = self._membership.find(agent.label)
                return agent.label if same is not None and same.name == agent.name else agent.name
        return await self._people.name(user)

    async def _gate(
        self, conversation_id: int | None, channel: str | None = None
    ) -> tuple[People | None, str | None]:
        """Who decides whether a Slack user may act on the conversation: the people of a
        channel (a team without members, or no team), or, for a team with members, the
        membership (None, with the team's name)."""
        if self._membership is None or conversation_id is None:
            return self._people.in_channel(channel), None
        team = await self._team_of(conversation_id)
        fallback = self._membership.slack_channel_fallback(team)
        if fallback is None:
            return None, team
        return self._people.in_channel(fallback or None), None

    async def _refusal(
        self, user: str, conversation_id: int | None, *, channel: str | None = None
    ) -> str:
        """Why ``user`` may not act on the conversation ("" when they may). Raises
        SlackError when a channel's member list is needed and cannot be fetched."""
        people, team = await self._gate(conversation_id, channel)
        if people is not None:
            return "" if await people.may_act(user) else NOT_ALLOWED
        assert self._membership is not None
        if self._membership.may_act_in_slack(team, user, frozenset()):
            return ""
        return NOT_A_MEMBER.format(team=self._label(team))

    async def _ask(
        self,
        user: str,
        owner: str,
        action: dict[str, Any],
        *,
        thread_ts: str | None = None,
        respond: AsyncRespond | None = None,
        channel: str | None = None,
    ) -> None:
        """Ask ``user``, privately, whether to take the conversation from ``owner``."""
        text, blocks = cards.ask_to_take_over(owner, action)
        await self._tell(
            user, text, thread_ts=thread_ts, respond=respond, blocks=blocks, channel=channel
        )

    async def _tell(
        self,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        respond: AsyncRespond | None = None,
        blocks: list[dict[str, Any]] | None = None,
        replace: bool = False,
        channel: str | None = None,
    ) -> None:
        """A message only ``user`` sees: through the button's response URL when there is one
        (it reaches people outside the channel too; ``replace``: instead of the message the
        button was on), else as an ephemeral message."""
        if respond is not None and respond.response_url:
            await respond(
                text=text,
                blocks=blocks,
                response_type="ephemeral",
                replace_original=replace,
            )
        else:
            await self._api.ephemeral(
                user, text, thread_ts=thread_ts, blocks=blocks, channel=channel
            )

    async def _allowed(
        self,
        user: str,
        conversation_id: int | None,
        *,
        respond: AsyncRespond | None,
        channel: str | None = None,
    ) -> bool:
        """Whether ``user`` may press a button on the conversation now; if not, they are told
        why (privately)."""
        where = channel or (await self._channel_of(conversation_id) if conversation_id else None)
        try:
            refusal = await self._refusal(user, conversation_id, channel=channel)
            if not refusal:
                return True
            await self._tell(user, refusal, respond=respond, channel=where)
        except SlackError as exc:
            log.warning("Cannot check whether %s may act (%s); nothing changed", user, exc)
            await self._tell(user, CANNOT_CHECK.format(reason=exc), respond=respond, channel=where)
        return False

    async def _refusal_or_held(
        self,
        user: str,
        conversation_id: int,
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> str:
        """Why ``user`` may not send a reply ("" when they may), waiting (the reply held)
        while Slack cannot say who is in the channel that decides."""
        people, _team = await self._gate(conversation_id)
        told = False
        try:
            while True:
                woken = people.wakes if people is not None else 0
                try:
                    return await self._refusal(user, conversation_id)
                except SlackError as exc:
                    if not told:
                        log.warning(
                            "Holding a reply by %s in conversation %s until Slack says who is in "
                            "the care channel: %s",
                            user,
                            conversation_id,
                            exc,
                        )
                        await self._tell_held(user, exc, thread_ts, channel)
                        told = True
                await (people or self._people).next_try(woken=woken)
        except asyncio.CancelledError:
            if told:
                log.warning(
                    "A held reply by %s in conversation %s was not sent: carebot stopped first",
                    user,
                    conversation_id,
                )
            raise

    async def _tell_held(
        self, user: str, reason: SlackError, thread_ts: str | None, channel: str | None
    ) -> None:
        try:
            await self._tell(user, HELD.format(reason=reason), thread_ts=thread_ts, channel=channel)
        except SlackError as exc:  # the reply stays held; the agent learns when it goes out
            log.warning("Cannot tell %s that their reply is held: %s", user, exc)
