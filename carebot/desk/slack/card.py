"""What the Slack desk posts: the handoff card (Block Kit), thread posts and the edit modal.

Pure functions of what the store says; the same conversation always gives the same card, so
the desk can tell whether a card changed by comparing hashes. Times are Slack date tokens, so
each agent reads them in their own time zone, and nothing on the card ages by itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carebot.desk.slack import public_card
from carebot.desk.slack.mrkdwn import LIMIT, escape, quote, shorten, when
from carebot.models import HANDOFF_REASONS, WITHDRAWN_BY_CUSTOMER, ConversationState
from carebot.nlu.language import language_name
from carebot.store.emotion_labels import LabelView
from carebot.store.queue import Case, MessageView, describe_change, describe_reasons
from carebot.store.slack_threads import Mirrored, Undelivered
from carebot.store.tables import Handoff

SEND_DRAFT, EDIT_DRAFT, TAKE_OVER, RESOLVE, CLOSE = (
    "carebot_send_draft",
    "carebot_edit_draft",
    "carebot_take_over",
    "carebot_resolve",
    "carebot_close",
)
TAKE_FROM_COLLEAGUE = "carebot_take_from_colleague"  # the confirmation, asked privately
EDIT_VIEW = "carebot_edit_reply"  # the modal's callback id
TRANSFER, TRANSFER_VIEW = "carebot_transfer", "carebot_transfer_view"  # the button, its modal
TEAM_BLOCK, TEAM_INPUT, NOTE_BLOCK, NOTE_INPUT = "team", "team", "note", "note"
LABEL_UPSET, LABEL_NOT_UPSET = "carebot_label_upset", "carebot_label_not_upset"
CARD_LABEL_BLOCK, THREAD_LABEL_BLOCK = "carebot_emotion", "carebot_emotion_thread"
REPLY_BLOCK, REPLY_INPUT = "reply", "text"
CARD_MESSAGES = 10  # the card shows the last ten; the full history goes into the thread
AUTHORS = {"customer": "Customer", "bot": "Bot", "agent": "Agent"}
VIA = {"inbox": "from the inbox", "slack-card": "sent from the card"}


@dataclass(frozen=True, slots=True)
class CardData:
    case: Case
    handoff: Handoff | None  # the latest, open or resolved
    emotion: float
    history: list[MessageView]  # the customer's messages on every channel, up to the handoff
    closed_note: str | None  # set when the handoff came outside business hours
    top: list[dict[str, Any]] = field(default_factory=list)  # of the decision that handed over
    # the customer message the handoff was made for, with the agents' emotion labels on it
    labelled: tuple[int, list[LabelView]] | None = None
    team: str = ""  # the display name of the handoff's team ("" before teams: not shown)
    # the teams it may be transferred to (name, display name): the "Transfer" button
    transfer_to: tuple[tuple[str, str], ...] = ()
    # set on a card replaced by a newer one in another team's channel: "Transferred to ..."
    transferred: str | None = None


def card(data: CardData) -> tuple[str, list[dict[str, Any]]]:
    """The card's notification text and its blocks."""
    case, name = data.case, data.case.customer["name"]
    status = _lower_first(data.transferred) if data.transferred else _status(data)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(shorten(f"{name}: {status}", 150))},
        {"type": "section", "fields": _facts(data)},
        *public_card.blocks(case),  # a comment or mention: the post, its state, the bot's plan
    ]
    change = _change(data)
    if change:
        blocks.append(_context(change))
    if data.closed_note:
        blocks.append(_context(f":crescent_moon: {escape(data.closed_note)}"))
    if data.labelled is not None and not data.transferred:  # a transferred card: no buttons
        blocks.extend(_emotion_label(*data.labelled))
    if data.handoff is not None and data.handoff.draft:
        blocks.append(_section(_draft(data.handoff)))
    if data.top:
        scores = " · ".join(f"`{t['intent']}` {float(t['score']):.2f}" for t in data.top)
        blocks.append(_context(f"Top intents: {scores}"))
    blocks.append({"type": "divider"})
    blocks.append(_section(history_text(data.history[-CARD_MESSAGES:], len(data.history))))
    buttons = [] if data.transferred else _buttons(case)
    if buttons and data.transfer_to and data.handoff is not None and not data.handoff.resolved_at:
        buttons.insert(
            -1 if case.can_close else len(buttons), _button("Transfer", TRANSFER, str(case.id))
        )
    if data.transferred:
        blocks.insert(1, _context(f":twisted_rightwards_arrows: {escape(data.transferred)}"))
    if buttons:
        blocks.append({"type": "actions", "block_id": "carebot_actions", "elements": buttons})
    where = public_card.title(case.public).lower() if case.public else case.channel
    return f"{escape(name)} ({where}): {status}", blocks


def card_hash(text: str, blocks: list[dict[str, Any]]) -> str:
    body = json.dumps([text, blocks], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def history_text(messages: list[MessageView], total: int) -> str:
    """The newest messages that fit one section, under a heading that counts them."""
    if not messages:
        return "*History*\nNo messages yet."
    lines = _fitting_lines(messages)
    head = f"*Last {len(lines)} of {total} messages*" if total > len(lines) else "*History*"
    return shorten("\n".join([head, *lines]), LIMIT)


def shows_all(history: list[MessageView]) -> bool:
    """Whether the card shows the whole history (else it goes into the thread in full)."""
    return len(history) <= CARD_MESSAGES and len(_fitting_lines(history)) == len(history)


def _fitting_lines(messages: list[MessageView]) -> list[str]:
    lines = [_line(m.author, m.agent, m.channel, m.at, m.text, 300) for m in messages]
    while len("\n".join(lines)) > LIMIT - 40 and len(lines) > 1:
        lines.pop(0)
    return lines


def full_history(messages: list[MessageView]) -> list[str]:
    """The whole history as thread posts of at most one section each, oldest first."""
    posts, current = [], f"*Full history ({len(messages)} messages)*"
    for m in messages:
        # Quoting and escaping lengthen a message; cut it so one line always fits a post.
        line = shorten(_line(m.author, m.agent, m.channel, m.at, m.text, 1000), LIMIT // 2)
        if len(current) + len(line) + 1 > LIMIT:
            posts.append(current)
            current = line
        else:
            current += "\n" + line
    return [*posts, current]


def mirror_text(message: Mirrored, case: Case | None = None) -> str:
    """A later message of the conversation, as a thread post (a public action says what was
    done: :func:`public_card.mirror_text`)."""
    if message.public:
        return public_card.mirror_text(message, case)
    via = f" ({VIA[message.via]})" if message.via in VIA else ""
    head = _line(message.author, message.agent, message.channel, message.created_at, "", 0)
    return head.rstrip() + via + "\n" + quote(message.text, 2500)


def undelivered(failed: Undelivered) -> str:
    """A reply refused for good: the customer never got it, and why."""
    who = AUTHORS.get(failed.author, failed.author)
    if failed.agent:
        who += f" {escape(failed.agent)}"
    return (
        f":warning: *{who}'s reply was not delivered to the customer*: {escape(failed.reason)}\n"
        f"{quote(failed.text, 1000)}"
    )


def mirror_blocks(message: Mirrored) -> list[dict[str, Any]] | None:
    """A customer's message in the thread gets the emotion label buttons too."""
    if message.author != "customer":
        return None
    buttons = _label_buttons(message.id, THREAD_LABEL_BLOCK)
    return [_section(mirror_text(message)), buttons]


def handed_over_again(data: CardData) -> str:
    reasons = data.handoff.reasons.split(",") if data.handoff and data.handoff.reasons else []
    return f":rotating_light: Needs an agent again: {describe_reasons(reasons) or 'asked for'}."


# What a confirmed take-over then does, in the words of the question asking for it.
HELD_ACTIONS = {
    "take_over": "Nothing was changed",
    "reply": "Your reply was not sent to the customer",
    "send_draft": "The draft was not sent to the customer",
}
BUTTON_VALUE_LIMIT = 2000  # Slack's limit for a button's value


def ask_to_take_over(owner: str, action: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The private question to an agent acting on a colleague's conversation: who has it, and
    a button that takes it from them and then does ``action`` (kept in the button: the
    conversation, what to do, and the reply's text when it fits)."""
    held = HELD_ACTIONS[action["do"]]
    value = json.dumps(action, ensure_ascii=False)
    if len(value) > BUTTON_VALUE_LIMIT:  # too long to keep: taken over only, sent again
        kept = {"conversation": action["conversation"], "do": "take_over"}
        value = json.dumps(kept, ensure_ascii=False)
        after = " Once you have it, send your reply again."
    elif action["do"] == "take_over":
        after = ""
    else:
        after = " Taking it over sends it."
    text = f"{escape(owner)} has this conversation. {held}.{after}"
    button = _button(shorten(f"Take it over from {owner}", 75), TAKE_FROM_COLLEAGUE, value)
    button["style"] = "danger"
    blocks = [
        _section(text),
        {"type": "actions", "block_id": "carebot_owner", "elements": [button]},
    ]
    return text, blocks


def taken_over(agent: str, previous: str) -> str:
    """The thread's note when a conversation changes hands (``previous`` may be a mention)."""
    return f":arrows_counterclockwise: {escape(agent)} took this conversation over from {previous}."


def transferred(to_team: str, agent: str) -> str:
    """What the old card says once the conversation went to another team's channel."""
    return f"Transferred to {to_team} by {agent}"


def transferred_here(from_team: str, agent: str, note: str) -> str:
    """The new card's first thread post: where it came from, and the note for the team."""
    said = f":twisted_rightwards_arrows: Transferred from {escape(from_team)} by {escape(agent)}."
    return said + (f"\n{quote(note, 2000)}" if note else "")


def target_reminder(team: str, target: str, left: str) -> str:
    """The one reminder before a handoff breaches its team's first-response target."""
    return (
        f":alarm_clock: Nobody has answered yet: {left} of {escape(team)}'s {target} "
        "first-response target left. Send the draft, reply in this thread, or take it over."
    )


def target_breached(team: str, target: str, waiting: str) -> str:
    """The one notice when a handoff breaches its team's first-response target."""
    return (
        f":rotating_light: First-response target breached: waiting {waiting} "
        f"({escape(team)}'s target is {target})"
    )


def transfer_modal(
    conversation_id: int, customer: str, teams: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """Choose the team to transfer to, with an optional note for them."""
    options = [{"text": _plain(shorten(label, 75)), "value": name} for name, label in teams]
    return {
        "type": "modal",
        "callback_id": TRANSFER_VIEW,
        "private_metadata": str(conversation_id),
        "title": _plain("Transfer"),
        "submit": _plain("Transfer"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": TEAM_BLOCK,
                "label": _plain(shorten(f"Move {customer}'s conversation to", 150)),
                "element": {"type": "static_select", "action_id": TEAM_INPUT, "options": options},
            },
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "optional": True,
                "label": _plain("Note for the team (the customer does not see it)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            },
        ],
    }


def reminder(minutes: float) -> str:
    return (
        f":alarm_clock: Nobody has answered for {minutes:g} minutes. Send the draft, reply in "
        "this thread, or take it over."
    )


def window_warning(description: str) -> str:
    return (
        f":hourglass_flowing_sand: {description} After that, replies cannot reach the customer "
        "there until they write again."
    )


def edit_modal(conversation_id: int, customer: str, draft: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": EDIT_VIEW,
        "private_metadata": str(conversation_id),
        "title": _plain("Edit and send"),
        "submit": _plain("Send"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": REPLY_BLOCK,
                "label": _plain(shorten(f"Reply to {customer}", 150)),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REPLY_INPUT,
                    "multiline": True,
                    "initial_value": draft[:3000],
                    "max_length": 3000,
                },
            }
        ],
    }


def _status(data: CardData) -> str:
    case, handoff = data.case, data.handoff
    state = ConversationState(case.state)
    if state is ConversationState.WAITING_FOR_AGENT:
        return "waiting for an agent"
    if state is ConversationState.WITH_AGENT:
        return f"with {case.agent}"
    if state is ConversationState.CLOSED:
        closed = case.closed
        return _lower_first(closed["words"]) if closed else "closed"
    if handoff is not None and handoff.resolution == WITHDRAWN_BY_CUSTOMER:
        return "withdrawn by the customer, back with the bot"
    if handoff is not None and handoff.resolved_by:
        return f"resolved by {handoff.resolved_by}, back with the bot"
    return "with the bot"


def _draft(handoff: Handoff) -> str:
    """The bot's draft: waiting to be sent, or said to be sent already (and when)."""
    draft = quote(handoff.draft or "", 2000)
    sent = handoff.draft_sent_at
    if sent is None:
        return f"*The bot's draft*\n{draft}"
    stamp = when(sent.timestamp(), sent.strftime("%Y-%m-%d %H:%M UTC"))
    return f":white_check_mark: *The bot's draft was sent* ({stamp})\n{draft}"


def _change(data: CardData) -> str:
    """What the waiting customer's latest message changed, while the handoff is open."""
    handoff = data.handoff
    if handoff is None or handoff.resolved_at is not None or not handoff.last_change:
        return ""
    words = describe_change(handoff.last_change)
    at = datetime.fromisoformat(handoff.last_change["at"])
    stamp = when(at.timestamp(), at.strftime("%Y-%m-%d %H:%M UTC"))
    return f":arrow_up: {escape(words)} ({stamp})" if words else ""


def _facts(data: CardData) -> list[dict[str, Any]]:
    case, customer = data.case, data.case.customer
    here = [i for i in customer["identities"] if i["channel"] == case.channel]
    handle = _handle(here[0]) if here else ""
    channels = sorted({i["channel"] for i in customer["identities"]})
    since = datetime.fromisoformat(customer["since"])
    handoff = data.handoff
    cues = list(handoff.emotion_cues or []) if handoff is not None else []
    emotion = f"{data.emotion:.2f} ({_mood(data.emotion)})"
    facts = [
        ("Customer", f"{escape(customer['name'])}\n{escape(handle)}"),
        _channel_fact(case, channels),
        ("Customer since", when(since.timestamp(), since.date().isoformat())),
        ("Past conversations", str(customer["conversations"] - 1)),
        ("Why", _why(handoff) or "-"),
        ("Emotion", emotion + (f"\ncues: {escape(', '.join(cues))}" if cues else "")),
    ]
    if handoff is not None:
        facts.append(("Priority", f"{handoff.priority or 0.0:.1f}"))
    if data.team:
        route = f"\n{escape(handoff.route)}" if handoff is not None and handoff.route else ""
        facts.append(("Team", escape(data.team) + route))
    if case.agent:
        facts.append(("Agent", escape(case.agent)))
    if case.closed:
        at = datetime.fromisoformat(case.closed["at"])
        fallback = at.strftime("%Y-%m-%d %H:%M UTC")
        facts.append(("Closed", when(at.timestamp(), fallback)))
    if case.window:
        closes = datetime.fromisoformat(case.window["closes_at"])
        label = "closed" if case.window["closed"] else "open until"
        fallback = closes.strftime("%Y-%m-%d %H:%M UTC")
        facts.append(("Reply window", f"{label} {when(closes.timestamp(), fallback)}"))
    return [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in facts]


def _channel_fact(case: Case, channels: list[str]) -> tuple[str, str]:
    """The customer's channels, and the language they write in when it is known (one field:
    a card has at most ten)."""
    where = ", ".join(channels) if len(channels) > 1 else case.channel
    if case.language is None:
        return "Channel", where
    return "Channel, language", f"{where}\n{language_name(case.language)}"


def _why(handoff: Handoff | None) -> str:
    """The most important reason in words, then any other that hands off on its own."""
    codes = handoff.reasons.split(",") if handoff is not None and handoff.reasons else []
    shown = codes[:1] + [c for c in codes[1:] if c in HANDOFF_REASONS]
    return "\n".join(escape(describe_reasons([code])) for code in shown)


def _handle(identity: dict[str, Any]) -> str:
    profile = identity.get("profile") or {}
    username = profile.get("username")
    return f"@{username.lstrip('@')}" if username else str(identity["external_user_id"])


def _mood(emotion: float) -> str:
    if emotion >= 0.5:
        return "upset"
    return "tense" if emotion >= 0.25 else "calm"


def _buttons(case: Case) -> list[dict[str, Any]]:
    value = str(case.id)
    buttons = []
    if case.can_send_draft:
        buttons.append(_button("Send draft", SEND_DRAFT, value, style="primary"))
        buttons.append(_button("Edit and send", EDIT_DRAFT, value))
    if case.can_take_over:
        buttons.append(_button("Take over", TAKE_OVER, value))
    if case.can_resolve:
        buttons.append(_button("Resolve", RESOLVE, value))
    buttons.extend(public_card.buttons(case))  # hide or unhide the latest comment
    if case.can_close:
        close = _button("Close", CLOSE, value)
        close["confirm"] = {
            "title": _plain("Close the conversation?"),
            "text": _plain("It ends now; the customer's next message starts a new conversation."),
            "confirm": _plain("Close"),
            "deny": _plain("Cancel"),
        }
        buttons.append(close)
    return buttons


def _emotion_label(message_id: int, marks: list[LabelView]) -> list[dict[str, Any]]:
    """Whether the customer sounds upset, in the agents' words, with buttons to say so."""
    said = " · ".join(escape(mark.words) for mark in marks)
    words = said[:1].upper() + said[1:] if said else "Does the customer sound upset?"
    note = f"{words} (kept for retraining the emotion signal)"
    return [_context(note), _label_buttons(message_id, CARD_LABEL_BLOCK)]


def _label_buttons(message_id: int, block_id: str) -> dict[str, Any]:
    value = str(message_id)
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            _button("Upset", LABEL_UPSET, value),
            _button("Not upset", LABEL_NOT_UPSET, value),
        ],
    }


def _button(label: str, action_id: str, value: str, *, style: str = "") -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(label),
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _line(
    author: str, agent: str | None, channel: str, at: str | datetime, text: str, limit: int
) -> str:
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    who = AUTHORS.get(author, author)
    if agent:
        who += f" {escape(agent)}"
    stamp = when(moment.timestamp(), moment.strftime("%Y-%m-%d %H:%M UTC"))
    head = f"*{who}* · {channel} · {stamp}"
    return f"{head}\n{quote(text, limit)}" if text else head


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten(text, 3000)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(text, 3000)}]}
