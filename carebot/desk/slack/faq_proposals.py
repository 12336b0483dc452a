"""The "Add to FAQ" message shortcut in Slack: an agent's reply in a handoff thread, and the
customer's question before it, become a proposal for the ops console
(:meth:`carebot.console.proposals.ProposalMaker.from_reply`). Nothing goes live: an ops person
reviews, edits and publishes it, or rejects it.

The shortcut works on the agents' replies that carebot sent to the customer: an agent's own
reply in a card's thread, or the bot's copy of a reply sent from the inbox or the card. Slack
does not say which carebot message a Slack message is, and carebot keeps no Slack ts per
message, so the message is found in the thread's conversation by its text: an agent's own reply
by the plain text it was relayed as (the agent's name and the time settle a tie), the bot's copy
by the text the sync posted for it. A message edited in Slack after it was relayed is not found.

Used on anything else (the card, a customer's message, a note, a message outside the care
threads), the agent is told why and nothing is queued. Only care agents (see :mod:`.people`)
may use it. Slack is acknowledged first; every answer goes only to the agent, through the
shortcut's response URL.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from carebot.console.proposals import ProposalMaker
from carebot.desk.slack import card as cards
from carebot.desk.slack.api import SlackApi
from carebot.desk.slack.listeners import NOTE_PREFIX, Track
from carebot.desk.slack.mrkdwn import escape, plain, shorten
from carebot.desk.slack.people import People
from carebot.exceptions import SlackError, StoreError
from carebot.store.proposals import Proposal, ProposalKind
from carebot.store.slack_threads import Mirrored, SlackThreadStore

log = logging.getLogger(__name__)
CALLBACK_ID = "carebot_add_to_faq"
NOT_ALLOWED = (
    "Only care agents can propose FAQ changes: members of the care channel, or the agents "
    "listed in carebot's [slack] settings. Nothing was proposed."
)
CANNOT_CHECK = (
    "Slack did not let carebot check that you are a care agent ({reason}). Nothing was "
    "proposed: try again in a moment."
)
HOW = "Use *Add to FAQ* on an agent's reply in the thread of a carebot card."
OUTSIDE = "This message is not in the thread of a carebot card. Nothing was proposed. " + HOW
ON_CARD = "This is the conversation's card. Nothing was proposed. " + HOW
NOT_SENT = (
    "carebot did not send this message to the customer (it was not relayed, or it was edited "
    "in Slack afterwards), so there is no reply to propose. Nothing was proposed. " + HOW
)
A_NOTE = "An internal note never reaches the customer. Nothing was proposed. " + HOW
NOT_A_REPLY = "This is {what}, not an agent's reply. Nothing was proposed. " + HOW
WHAT = {"customer": "the customer's message", "bot": "the bot's message"}
EXAMPLE_SHOWN = 200  # characters of the question quoted in the confirmation


class AddToFaq:
    def __init__(
        self,
        *,
        maker: ProposalMaker,
        threads: SlackThreadStore,
        people: People,
        api: SlackApi,
        public_url: str = "",
    ) -> None:
        self._maker = maker
        self._threads = threads
        self._people = people
        self._api = api
        self._public_url = public_url.rstrip("/")

    def register(self, app: AsyncApp, *, track: Track | None = None) -> None:
        """Listen on ``app``; ``track`` wraps the listener (see :meth:`Listeners.register`)."""
        app.shortcut(CALLBACK_ID)(track(self.on_shortcut) if track else self.on_shortcut)

    async def on_shortcut(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond | None = None,
    ) -> None:
        await ack()
        user = str(body.get("user", {}).get("id"))
        message = dict(body.get("message") or {})
        channel = str((body.get("channel") or {}).get("id") or "")
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "")
        here = thread_ts if channel == self._api.channel and thread_ts else None
        try:
            if not await self._allowed(user, respond, here):
                return
            found = await self._reply_of(channel, message, context.bot_user_id)
            if isinstance(found, str):
                await self._tell(user, found, respond, here)
                return
            author = await self._people.name(user)
            try:
                proposal = await self._maker.from_reply(found.id, author=author)
            except StoreError as exc:
                await self._tell(user, f"Nothing was proposed: {exc}", respond, here)
                return
            log.info("%s proposed %s from reply %s in Slack", author, proposal.id, found.id)
            await self._tell(user, self.confirmation(proposal), respond, here)
        except SlackError as exc:
            log.warning("Slack failed on Add to FAQ by %s: %s", user, exc)

    async def _reply_of(
        self, channel: str, message: dict[str, Any], bot_user: str | None
    ) -> Mirrored | str:
        """The agent's reply that ``message`` is, or why there is none."""
        ts, thread_ts = str(message.get("ts") or ""), str(message.get("thread_ts") or "")
        if channel != self._api.channel or not ts:
            return OUTSIDE
        if not thread_ts or thread_ts == ts:
            on_card = await self._threads.conversation_of(channel, ts)
            return ON_CARD if on_card is not None else OUTSIDE
        conversation_id = await self._threads.conversation_of(channel, thread_ts)
        if conversation_id is None:
            return OUTSIDE
        messages = await self._threads.messages_after(conversation_id, 0)
        text = str(message.get("text") or "")
        by_bot = bool(message.get("bot_id")) or (
            bot_user is not None and message.get("user") == bot_user
        )
        if by_bot:
            posted = " ".join(text.split())
            mirrored = [m for m in messages if " ".join(cards.mirror_text(m).split()) == posted]
            if not mirrored:
                return NOT_A_REPLY.format(what="a message carebot posted")
            found = mirrored[-1]
            if found.author != "agent":
                return NOT_A_REPLY.format(what=WHAT.get(found.author, "a message carebot posted"))
            return found
        said = plain(text)
        if said.lstrip("*_~> ").casefold().startswith(NOTE_PREFIX):
            return A_NOTE
        relayed = [
            m for m in messages if m.author == "agent" and m.via == "slack" and m.text == said
        ]
        if not relayed:
            return NOT_SENT
        name = await self._people.name(str(message.get("user")))
        return min(
            relayed, key=lambda m: (m.agent != name, abs(m.created_at.timestamp() - float(ts)))
        )

    def confirmation(self, proposal: Proposal) -> str:
        """What the agent is told once the proposal is queued."""
        if proposal.kind is ProposalKind.ADD_EXAMPLES:
            example = escape(shorten(proposal.examples[0], EXAMPLE_SHOWN))
            title = escape(proposal.title or proposal.intent_id)
            what = f"add “{example}” as an example of *{title}* (`{proposal.intent_id}`)"
        else:
            what = f"a new intent `{proposal.intent_id}` with this reply as its answer"
        flags = len(proposal.flags)
        check = (
            f"{flags} flag{'s' if flags != 1 else ''} to check before publishing"
            if flags
            else "nothing flagged"
        )
        where = (
            f"<{self._public_url}/console/proposals/{proposal.id}|Review it in the console>"
            if self._public_url
            else f"It waits as proposal {proposal.id} in the ops console."
        )
        return f"Proposed: {what}; {check}. An ops person reviews it before it goes live. {where}"

    async def _allowed(
        self, user: str, respond: AsyncRespond | None, thread_ts: str | None
    ) -> bool:
        """Whether ``user`` is a care agent; if not (or Slack cannot say), they are told."""
        try:
            if await self._people.may_act(user):
                return True
            await self._tell(user, NOT_ALLOWED, respond, thread_ts)
        except SlackError as exc:
            log.warning("Cannot check whether %s may propose FAQ changes: %s", user, exc)
            await self._tell(user, CANNOT_CHECK.format(reason=exc), respond, thread_ts)
        return False

    async def _tell(
        self, user: str, text: str, respond: AsyncRespond | None, thread_ts: str | None
    ) -> None:
        """A message only ``user`` sees: through the shortcut's response URL (it reaches people
        outside the care channel too), else in the care channel (``thread_ts``: its thread)."""
        if respond is not None and respond.response_url:
            answer = await respond(text=text, response_type="ephemeral", replace_original=False)
            if answer.status_code != 200:
                log.warning(
                    "Slack refused the answer to Add to FAQ (HTTP %s: %s)",
                    answer.status_code,
                    answer.body,
                )
            return
        await self._api.ephemeral(user, text, thread_ts=thread_ts)
