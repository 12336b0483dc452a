"""The public side of the Graph API stand-in (tests/graph_standin.py): Facebook Page and
Instagram posts and comments, what can be done to them, the look-ups of mentions, and the
webhook changes Meta POSTs about them.

* ``POST /{comment-id}/comments`` (Facebook) and ``/{comment-id}/replies`` (Instagram, top-level
  comments only) with ``message``: a public reply, answered ``{"id"}``;
* ``POST /{page-or-account}/messages`` with ``recipient.comment_id``: a private reply, one per
  comment within 7 days (else error 10900), answered ``{"recipient_id", "message_id"}``;
* ``POST /{comment-id}`` with ``is_hidden`` (Facebook) or ``hide`` (Instagram);
* ``GET /{post-or-comment-id}?fields=...`` (Facebook) and ``GET /{ig-user-id}?fields=
  mentioned_comment.comment_id(ID){...}`` or ``mentioned_media.media_id(ID){...}`` (Instagram).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Json = dict[str, Any]
Platform = Literal["facebook", "instagram"]
WEEK = 7 * 24 * 3600
_seq = itertools.count(1)
MENTIONED = r"mentioned_(comment|media)\.(?:comment|media)_id\(([^)]+)\)\{(.*)\}"


class PublicError(Exception):
    """Refused: the stand-in answers ``status`` with Meta's error ``code``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Comment:
    """A comment (or a post's caption mention) the stand-in knows."""

    id: str
    platform: Platform
    account: str  # the page or Instagram account it is under, or mentions
    post_id: str
    author_id: str
    author_name: str
    text: str
    created: int = field(default_factory=lambda: int(time.time()))
    parent_id: str | None = None
    hidden: bool = False
    private_replies: int = 0


@dataclass
class Post:
    id: str
    text: str
    permalink: str
    author: str = ""  # who posted it: a name (Facebook) or username (Instagram)
    author_id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True)
class Reply:
    """A public reply the stand-in accepted: under which comment, by which edge."""

    target: str
    edge: str
    message: str
    id: str


class PublicGraph:
    """Posts, comments and what was done to them."""

    def __init__(self) -> None:
        self.comments: dict[str, Comment] = {}
        self.posts: dict[str, Post] = {}
        self.replies: list[Reply] = []
        self.private_replies: list[Json] = []
        self.psids: dict[str, str] = {}  # commenter id -> the id their private messages have

    def add_comment(self, comment: Comment) -> Comment:
        self.comments[comment.id] = comment
        return comment

    def add_post(self, post: Post) -> Post:
        self.posts[post.id] = post
        return post

    def knows(self, node: str) -> bool:
        return node in self.comments or node in self.posts

    def reply(self, node: str, edge: str, body: Json) -> Json:
        comment = self._comment(node)
        if (comment.platform == "facebook") != (edge == "comments"):
            raise PublicError(400, 100, f"(#100) Unsupported post request to /{node}/{edge}")
        if edge == "replies" and comment.parent_id is not None:
            raise PublicError(400, 100, "(#100) Replies can only be made to top-level comments")
        if not str(body.get("message", "")).strip():
            raise PublicError(400, 100, "(#100) The parameter message is required")
        reply = Reply(node, edge, str(body["message"]), f"{comment.post_id}_{next(_seq)}")
        self.replies.append(reply)
        return {"id": reply.id}

    def mention_reply(self, account: str, body: Json) -> Json:
        """``POST /{ig-user-id}/mentions``: a reply to a comment (``comment_id``) or caption
        (``media_id`` alone) that mentions the account, on another account's media."""
        target = str(body.get("comment_id") or body.get("media_id") or "")
        if not target or not self.knows(target) or not body.get("media_id"):
            raise PublicError(400, 100, "(#100) media_id (and comment_id) of a mention required")
        if not str(body.get("message", "")).strip():
            raise PublicError(400, 100, "(#100) The parameter message is required")
        reply = Reply(target, "mentions", str(body["message"]), f"{account}_{next(_seq)}")
        self.replies.append(reply)
        return {"id": reply.id}

    def set_hidden(self, node: str, body: Json) -> Json:
        comment = self._comment(node)
        key = "is_hidden" if comment.platform == "facebook" else "hide"
        if not isinstance(body.get(key), bool):
            raise PublicError(400, 100, f"(#100) The parameter {key} is required")
        comment.hidden = body[key]
        return {"success": True}

    def private_reply(self, node: str, body: Json) -> Json:
        comment = self._comment(str(body["recipient"]["comment_id"]))
        if comment.account != node:
            raise PublicError(400, 100, "(#100) The comment is not under this page or account")
        if comment.private_replies:
            raise PublicError(400, 10900, "(#10900) Activity already replied to")
        if time.time() - comment.created > WEEK:
            raise PublicError(400, 10900, "(#10900) The comment is older than 7 days")
        comment.private_replies += 1
        self.private_replies.append(body)
        psid = self.psids.get(comment.author_id, comment.author_id)
        return {"recipient_id": psid, "message_id": f"m_{next(_seq):06d}"}

    def look_up(self, node: str, fields: str) -> Json:
        found = re.fullmatch(MENTIONED, fields)
        if found is not None:
            kind, target, wanted = found.groups()
            what = self._comment(target) if kind == "comment" else self._post(target)
            return {"id": node, f"mentioned_{kind}": _only(_ig_mentioned(what), wanted)}
        if node in self.comments:
            comment = self.comments[node]
            facts = {"message": comment.text, "created_time": _iso(comment.created)}
            facts["permalink_url"] = f"https://www.facebook.com/{comment.post_id}?c={node}"
            return {"id": node} | _only(facts, fields)
        post = self._post(node)
        facts = {"message": post.text, "permalink_url": post.permalink}
        return {"id": node} | _only(facts | {"created_time": _iso(post.created)}, fields)

    def _comment(self, node: str) -> Comment:
        if node not in self.comments:
            raise PublicError(400, 100, f"(#100) Object with ID '{node}' does not exist")
        return self.comments[node]

    def _post(self, node: str) -> Post:
        if node not in self.posts:
            raise PublicError(400, 100, f"(#100) Object with ID '{node}' does not exist")
        return self.posts[node]


def _ig_mentioned(what: Comment | Post) -> Json:
    if isinstance(what, Post):
        return {"id": what.id, "caption": what.text, "timestamp": _iso(what.created)} | {
            "permalink": what.permalink,
            "username": what.author,
        }
    author = {"id": what.author_id, "username": what.author_name}
    return {"id": what.id, "text": what.text, "timestamp": _iso(what.created), "from": author} | {
        "media": {"id": what.post_id}
    }


def _only(facts: Json, fields: str) -> Json:
    wanted = {name.strip() for name in fields.strip("{}").split(",")}
    return {key: value for key, value in facts.items() if key in wanted or key == "id"}


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def usage(percent: float, regain_minutes: float = 0, business: str = "1234") -> str:
    """An ``X-Business-Use-Case-Usage`` header value: one use case at ``percent``."""
    case = {"type": "pages", "call_count": percent, "total_cputime": 1, "total_time": 1}
    case["estimated_time_to_regain_access"] = regain_minutes
    return json.dumps({business: [case]})


# Webhook changes, shaped as Meta POSTs them.


def _changes(kind: str, account: str, field_name: str, value: Json) -> Json:
    entry = {
        "id": account,
        "time": int(time.time()),
        "changes": [{"field": field_name, "value": value}],
    }
    return {"object": kind, "entry": [entry]}


def fb_comment(comment: Comment, verb: str = "add", *, post: Post | None = None) -> Json:
    """A ``feed`` change about ``comment`` (add, edited, remove)."""
    value: Json = {"item": "comment", "verb": verb, "comment_id": comment.id}
    value |= {"post_id": comment.post_id, "parent_id": comment.parent_id or comment.post_id}
    value |= {"from": {"id": comment.author_id, "name": comment.author_name}}
    value |= {"created_time": comment.created}
    if verb != "remove":
        value["message"] = comment.text
    if post is not None:
        value["post"] = {"id": post.id, "message": post.text, "permalink_url": post.permalink}
        value["post"] |= {"status_type": "added_photos", "is_published": True}
    return _changes("page", comment.account, "feed", value)


def fb_feed(page: str, item: str, verb: str, **value: Any) -> Json:
    """Any other ``feed`` change (a status, a reaction, a hidden comment...)."""
    return _changes("page", page, "feed", {"item": item, "verb": verb} | value)


def fb_mention(what: Comment | Post, page: str) -> Json:
    """A ``mention`` change: ``what`` (a post, or a comment) @mentions ``page``."""
    if isinstance(what, Post):
        value = {"item": "post", "post_id": what.id}
        value |= {"sender_id": what.author_id, "sender_name": what.author}
    else:
        value = {"item": "comment", "post_id": what.post_id, "comment_id": what.id}
        value |= {"sender_id": what.author_id, "sender_name": what.author_name}
    return _changes("page", page, "mention", value | {"verb": "add"})


def ig_comment(comment: Comment) -> Json:
    """A ``comments`` change about ``comment``."""
    value: Json = {"id": comment.id, "text": comment.text}
    value |= {"from": {"id": comment.author_id, "username": comment.author_name}}
    value |= {"media": {"id": comment.post_id, "media_product_type": "FEED"}}
    if comment.parent_id:
        value["parent_id"] = comment.parent_id
    return _changes("instagram", comment.account, "comments", value)


def ig_mention(account: str, media_id: str, comment_id: str | None = None) -> Json:
    """A ``mentions`` change: ids only."""
    value = {"media_id": media_id} | ({"comment_id": comment_id} if comment_id else {})
    return _changes("instagram", account, "mentions", value)
