"""The ops console's pages' contents: the intents list's rows, a decision as the "try it" box
shows it, the change preview's groups and rows, and a diff's lines with their kinds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carebot.console.preview import Change, Preview
from carebot.insight.report import IntentRow
from carebot.models import Decision

SHOWN_CHANGES = 200  # preview rows per group on the page (the counts cover all)


def intent_row(
    intent: Any, file: str, row: IntentRow | None, thresholds: tuple[float, float]
) -> dict[str, Any]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    return {
        "id": intent.id,
        "title": intent.label,
        "file": file,
        "examples": len(intent.examples),
        "answer": intent.answer,
        "tags": intent.tags,
        "thresholds": f"{thresholds[0]:g} / {thresholds[1]:g}",
        "own_thresholds": intent.answer_threshold is not None or intent.draft_threshold is not None,
        "handoff": intent.handoff,
        "conversations": row.conversations.count if row else 0,
        "automation": pct(row.automation.value) if row else "-",
        "handoffs": row.handoffs.count if row else 0,
    }


def decision_view(decision: Decision) -> dict[str, Any]:
    return {
        "kind": decision.kind.value,
        "intent": decision.intent,
        "score": round(decision.score, 4),
        "margin": round(decision.margin, 4),
        "emotion": round(decision.emotion, 4),
        "reasons": [r.value for r in decision.reasons],
        "reply": decision.reply,
        "explain": decision.explain(),
    }


def preview_view(preview: Preview, title: Callable[[str], str]) -> dict[str, Any]:
    groups = preview.by_group()
    return {
        "messages": preview.messages,
        "reencoded": preview.reencoded,
        "seconds": f"{preview.seconds:.2f}",
        "total": len(preview.changes),
        "counts": [(g, n) for g, n in preview.counts().items()],
        "groups": [
            (
                group,
                len(changes),
                change_rows(changes, title)[:SHOWN_CHANGES],
            )
            for group, changes in groups.items()
            if changes
        ],
    }


def change_rows(changes: list[Change], title: Callable[[str], str]) -> list[dict[str, Any]]:
    """The changes of a group as rows, the same message text changing the same way once with
    how many times (customers ask alike), newest first."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in changes:
        old, new = outcome_words(c.old, title), outcome_words(c.new, title)
        key = (" ".join(c.text.casefold().split()), old, new)
        if key in rows:
            rows[key]["times"] += 1
            continue
        rows[key] = {
            "id": c.message_id,
            "conversation": c.conversation_id,
            "at": c.at.strftime("%Y-%m-%d %H:%M"),
            "text": c.text,
            "old": old,
            "new": new,
            "times": 1,
        }
    return list(rows.values())


def outcome_words(outcome: Any, title: Callable[[str], str]) -> str:
    intent = f" {title(outcome.intent)}" if outcome.intent else ""
    return f"{outcome.kind.value}{intent} ({outcome.score:.2f})"


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its kind, for colouring."""
    kinds = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kinds.append(("file", line))
        elif line.startswith("@@"):
            kinds.append(("hunk", line))
        elif line.startswith("+"):
            kinds.append(("add", line))
        elif line.startswith("-"):
            kinds.append(("del", line))
        else:
            kinds.append(("same", line))
    return kinds
