"""The public part of a Slack card (issue 18, section 3): a comment or mention, not a message.

For a public conversation (:class:`~carebot.store.public_items.PublicView` on the case) the card
says where it was posted ("Public comment on Facebook") with a link to the post and its text,
what the classifier made of the latest comment, its reach when the platform gives one, whether
it was hidden, removed or edited, and what the bot planned: what it posted, what it *would*
have posted in shadow mode, or what kept it from answering in public. Its buttons hide or
unhide the latest comment (never delete it).

Outgoing public actions mirrored into the thread read as such ("carebot replied in public",
"Ann hid the comment (spam or abuse)"), and a public action refused by the personal-data guard
or a platform's rule is said to the agent in plain words (:func:`refused_words`).

Pure functions of what the store says, like :mod:`carebot.desk.slack.card`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from carebot.desk.slack.mrkdwn import escape, quote, shorten, when
from carebot.models import PublicActionKind
from carebot.public.actions import ACTION_WORDS
from carebot.public.rules import ItemFacts, refusal
from carebot.store.public_items import ItemView, PublicView
from carebot.store.queue import Case
from carebot.store.slack_threads import Mirrored

HIDE, UNHIDE = "carebot_public_hide", "carebot_public_unhide"
CATEGORY_WORDS = {
    "care_request": "care request",
    "complaint": "complaint",
    "praise": "praise or thanks",
    "spam": "spam or abuse",
    "chatter": "chatter",
}
WOULD = {
    PublicActionKind.REPLY: "would have replied publicly",
    PublicActionKind.PRIVATE_REPLY: "would have replied privately",
    PublicActionKind.HIDE: "would have hidden the comment",
    PublicActionKind.UNHIDE: "would have unhidden the comment",
}
HIDING = (PublicActionKind.HIDE, PublicActionKind.UNHIDE)
VIA = {"inbox": "from the inbox", "slack-card": "sent from the card"}
POST_TEXT = 300  # characters of the post shown on the card
GUARD_HEAD = "Not posted in public."  # how the personal-data guard's message starts
GUARD_ADVICE = "Reply privately instead, or remove it."  # and ends
PRIVATE_HINT = "start a thread reply with `private:`"
# The rules read neither of these for hiding and unhiding (only for replies).
_NOT_READ = datetime.min.replace(tzinfo=UTC)


def title(view: PublicView) -> str:
    """Where the conversation's latest message was posted: "Public comment on Facebook",
    "Public mention on X"."""
    item = shown_item(view)
    kind = item.kind if item is not None else "comment"
    return f"Public {kind} on {view.platform}"


def shown_item(view: PublicView) -> ItemView | None:
    """The comment the card is about: the latest one not removed, else the latest."""
    return view.latest or (view.items[-1] if view.items else None)


def blocks(case: Case) -> list[dict[str, Any]]:
    """The card's public section; for a private conversation that answers a private reply
    to a comment, the line that says so (none otherwise)."""
    view = case.public
    if view is None:
        if case.from_public is None:
            return []
        origin = (
            f":speech_balloon: This conversation answers a private reply to the customer's "
            f"public comment (conversation #{case.from_public} in the inbox)."
        )
        return [_context(origin)]
    found = [_section(_post(view))]
    item = shown_item(view)
    if item is not None:
        found.append(_context(" · ".join(_facts(item))))
        state = _state(item, view.platform)
        if state:
            found.append(_section(state))
    plan = _plan(view)
    if plan:
        found.append(_section(plan))
    return found


def buttons(case: Case) -> list[dict[str, Any]]:
    """Hide or Unhide for the latest comment, when the platform's rules allow it."""
    view = case.public
    item = view.latest if view is not None else None
    if view is None or item is None:
        return []
    value = json.dumps({"conversation": case.id, "message": item.message_id})
    facts = ItemFacts(
        channel=view.channel,
        kind=item.kind,
        top_level=item.top_level,
        addressed=False,
        hidden=item.hidden,
        removed=item.removed_at is not None,
        sent_at=_NOT_READ,
    )
    if refusal(PublicActionKind.UNHIDE, facts, _NOT_READ) is None:
        return [_button("Unhide comment", UNHIDE, value)]
    if refusal(PublicActionKind.HIDE, facts, _NOT_READ) is not None:
        return []
    hide = _button("Hide comment", HIDE, value)
    hide["confirm"] = {
        "title": _plain("Hide the comment?"),
        "text": _plain(
            f"Only its author and their friends will see it on {view.platform}. It is not "
            "deleted, and can be unhidden."
        ),
        "confirm": _plain("Hide"),
        "deny": _plain("Cancel"),
    }
    return [hide]


def pressed(value: str) -> tuple[int, int]:
    """(conversation id, message id) of a Hide or Unhide button's value."""
    found = json.loads(value)
    return int(found["conversation"]), int(found["message"])


def mirror_text(message: Mirrored, case: Case | None = None) -> str:
    """An outgoing public action as a thread post: "*carebot replied in public*", "*Ann hid
    the comment* (spam or abuse)"."""
    kind = PublicActionKind(message.public or PublicActionKind.REPLY)
    who = "carebot" if message.author == "bot" else (message.agent or "An agent")
    stamp = when(message.created_at.timestamp(), message.created_at.strftime("%Y-%m-%d %H:%M UTC"))
    head = f"*{escape(who)} {ACTION_WORDS[kind]}* · {message.channel} · {stamp}"
    if kind in HIDING:
        why = _hidden_why(message, kind, case)
        return f":see_no_evil: {head}" + (f" ({escape(why)})" if why else "")
    via = f" ({VIA[message.via]})" if message.via in VIA else ""
    return f"{head}{via}\n{quote(message.text, 2500)}"


def refused_words(reason: str, *, private: bool = False) -> str:
    """A public action the guard or a platform's rule refused, in words for the agent: what
    was found or which rule, and what to do instead. Nothing reached the customer."""
    said = reason.strip().removeprefix(GUARD_HEAD).strip()
    guarded = said.endswith(GUARD_ADVICE)
    said = said.removesuffix(GUARD_ADVICE).strip().rstrip(".")
    if said.startswith(("The ", "It ")):  # the guard's sentence; a platform's name stays
        said = said[:1].lower() + said[1:]
    said = escape(said)
    if private:
        return f"Not sent privately: {said}. Nothing reached the customer."
    if guarded:
        advice = f"Reply privately instead ({PRIVATE_HINT}), or remove it."
    elif "privately" in said:
        advice = f"To reply privately, {PRIVATE_HINT}."
    else:
        advice = "Nothing reached the customer."
    return f"Not posted in public: {said}. {advice}"


def _post(view: PublicView) -> str:
    head = f":speech_balloon: *{escape(title(view))}*"
    if view.post_url:
        head += f" · <{_link(view.post_url)}|open the post>"
    if not view.post_text:
        return head
    return f"{head}\n{quote(view.post_text, POST_TEXT)}"


def _facts(item: ItemView) -> list[str]:
    category = CATEGORY_WORDS.get(item.category or "", item.category or "not classified yet")
    facts = [f"Classified as *{escape(category)}*"]
    if item.reach is not None:
        facts.append(f"Reach {item.reach:,}")
    facts.append("top-level" if item.top_level else "a reply in the thread")
    return facts


def _state(item: ItemView, platform: str) -> str:
    """Hidden, removed, edited, answered privately: what happened to the comment."""
    lines = []
    if item.removed_at is not None:
        lines.append(f":wastebasket: Removed on {platform} {_at(item.removed_at)}")
    if item.hidden:
        by = f" by {escape(item.hidden_by)}" if item.hidden_by else ""
        why = f" ({escape(item.hidden_reason)})" if item.hidden_reason else ""
        lines.append(f":see_no_evil: Hidden on {platform}{by}{why}")
    if item.edits:
        times = "once" if len(item.edits) == 1 else f"{len(item.edits)} times"
        before = str(item.edits[-1].get("text") or "")
        lines.append(f":pencil2: Edited {times}; before:\n{quote(before, 300)}")
    if item.private_reply_at is not None:
        by = f" by {escape(item.private_reply_by)}" if item.private_reply_by else ""
        lines.append(f":envelope: Answered privately{by} {_at(item.private_reply_at)}")
    return "\n".join(lines)


def _plan(view: PublicView) -> str:
    """The bot's plan for the latest comment it decided on, in words."""
    plan = next((item.plan for item in reversed(view.items) if item.plan), None)
    if not plan:
        return ""
    lines = []
    for step in plan.get("shadowed") or ():
        kind = PublicActionKind(step["kind"])
        lines.append(f":crystal_ball: Shadow mode: carebot {WOULD[kind]}{_step(step)}")
    for step in plan.get("steps") or ():
        kind = PublicActionKind(step["kind"])
        lines.append(f":robot_face: carebot {ACTION_WORDS[kind]}{_step(step)}")
    if plan.get("blocked"):
        lines.append(f":no_entry_sign: Not answered in public: {escape(str(plan['blocked']))}")
    return "\n".join(lines)


def _step(step: dict[str, Any]) -> str:
    text, why = str(step.get("text") or ""), str(step.get("why") or "")
    if text:
        return f":\n{quote(text, 800)}"
    return f" ({escape(why)})" if why else ""


def _hidden_why(message: Mirrored, kind: PublicActionKind, case: Case | None) -> str:
    """Why it was hidden: the audit trail's line of this action (same time, same actor)."""
    if case is None or kind is not PublicActionKind.HIDE:
        return ""
    actor = "carebot" if message.author == "bot" else message.agent
    lines = [e for e in case.trail if e["kind"] == "hidden" and e["actor"] == actor]
    same = [e for e in lines if datetime.fromisoformat(e["at"]) == message.created_at]
    found = (same or lines)[-1:] if lines else []
    return str(found[0]["detail"].get("reason") or "") if found else ""


def _at(moment: datetime) -> str:
    return when(moment.timestamp(), moment.strftime("%Y-%m-%d %H:%M UTC"))


def _link(url: str) -> str:
    """A URL inside a Slack link (``<url|label>``): its control characters escaped."""
    return escape(url).replace("|", "%7C")


def _button(label: str, action_id: str, value: str) -> dict[str, Any]:
    return {"type": "button", "text": _plain(label), "action_id": action_id, "value": value}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten(text, 3000)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(text, 3000)}]}
