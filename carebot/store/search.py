"""Finding conversations for agents: by the customer's name, a contact detail (a phone number
or e-mail address the customer gave on any channel, or a channel's user id), the conversation's
number ("#12" or "12"), or words in its messages.

Words in messages use PostgreSQL's full-text search where the database is PostgreSQL
(``to_tsvector('simple', text) @@ plainto_tsquery('simple', words)``: every word must occur,
in any order, whole words, no stemming so names and order numbers match as typed), and a plain
case-insensitive match on SQLite (every word inside the text, in any order). Names, contact
details and user ids are substring matches on both."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Select, and_, false, func, literal_column, or_, select, union

from carebot.store.customers import normalise
from carebot.store.tables import ContactPoint, Conversation, Customer, Identity, Message

MAX_WORDS = 200  # characters of a search
_NUMBER = re.compile(r"^#?\s*(\d{1,9})$")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/+]")
_MIN_PHONE_DIGITS = 5  # fewer digits than this are not looked for inside phone numbers


def like_pattern(words: str) -> str:
    """``%words%`` in lower case, with LIKE's wildcards taken literally (escape ``\\``)."""
    escaped = words.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matching_conversations(words: str, *, postgresql: bool) -> Select[int] | None:
    """The ids of the conversations ``words`` finds (a query to use as a subquery); None for
    no words."""
    words = words.strip()[:MAX_WORDS]
    if not words:
        return None
    like = like_pattern(words)
    customers = select(Identity.customer_id).where(_identity_matches(words, like))
    named = select(Customer.id).where(func.lower(Customer.display_name).like(like, escape="\\"))
    by_customer = select(Conversation.id).where(
        or_(Conversation.customer_id.in_(customers), Conversation.customer_id.in_(named))
    )
    number = _NUMBER.match(words)
    by_number = select(Conversation.id).where(
        Conversation.id == int(number.group(1)) if number else false()
    )
    if postgresql:
        text_matches: ColumnElement[bool] = func.to_tsvector(
            literal_column("'simple'::regconfig"), Message.text
        ).op("@@")(func.plainto_tsquery(literal_column("'simple'::regconfig"), words))
    else:
        text_matches = and_(  # every word, anywhere, in any order
            *(func.lower(Message.text).like(like_pattern(w), escape="\\") for w in words.split())
        )
    by_text = select(Message.conversation_id).where(text_matches)
    found = union(by_customer, by_number, by_text).subquery()
    return select(found.c[0])


def _identity_matches(words: str, like: str) -> ColumnElement[bool]:
    """A channel identity whose user id or a contact detail matches: the e-mail or phone as
    typed or normalised ("+49 30 123456", "0049-30-123456"), or digits inside a phone number."""
    contacts: list[ColumnElement[bool]] = [func.lower(ContactPoint.value).like(like, escape="\\")]
    for kind in ("phone", "email"):
        exact = normalise(kind, words)
        if exact is not None:
            contacts.append(ContactPoint.value == exact)
    digits = _PHONE_PUNCTUATION.sub("", words)
    if digits.isdigit() and len(digits) >= _MIN_PHONE_DIGITS:
        contacts.append(ContactPoint.value.like(f"%{digits.lstrip('0') or digits}%"))
    with_contact = select(ContactPoint.identity_id).where(or_(*contacts))
    return or_(
        func.lower(Identity.external_user_id).like(like, escape="\\"),
        Identity.id.in_(with_contact),
    )
