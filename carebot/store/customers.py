"""One customer across channels: channel identities, the contact points that link them, merges.

An identity is a customer's account on one channel (a Telegram user, a WhatsApp number, a web
chat visitor). Identities that share a normalised phone number or e-mail address (the
``[customers] link_by`` kinds) belong to one customer: they are linked as soon as the second one
shows it. An agent can also merge two customers by hand. A merge keeps the older customer and
moves the other's identities and conversations to it, so the agent sees one history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.models import ContactDetails
from carebot.store.database import Database
from carebot.store.prepared import Prepared
from carebot.store.rows import insert_row
from carebot.store.tables import ContactPoint, Conversation, Customer, Identity

log = logging.getLogger(__name__)
# What an identity's profile may tell agents about a visitor (all optional, all strings):
# ``name``, ``email``, ``phone`` from the platform, a contact or pre-chat form; ``page_url`` and
# ``page_title``, the page a web chat visitor is on now (http(s), no fragment); ``browser``, e.g.
# "Chrome 131 on Windows". Channels add their own keys (``username``...).
VISITOR_KEYS = ("name", "email", "phone", "page_url", "page_title", "browser")
PROFILE_MAX_CHARS = 200
PAGE_URL_MAX_CHARS = 500
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise(kind: str, value: str) -> str | None:
    """A phone number in E.164 form (``+`` and digits) or a lower-cased e-mail address; None
    when the value is not one (it is then kept in the profile but links nothing)."""
    value = value.strip()
    if kind == "phone":
        digits = _PHONE_PUNCTUATION.sub("", value)
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        return digits if _PHONE.match(digits) else None
    if kind == "email":
        return value.lower() if _EMAIL.match(value) else None
    return None


def visitor_details(identity: Identity) -> dict[str, str]:
    """The :data:`VISITOR_KEYS` the identity's profile holds (the others and empty ones left
    out); ``page_url`` only when it is an http(s) address, safe to show as a link."""
    profile = identity.profile or {}
    found = {key: str(profile[key]) for key in VISITOR_KEYS if str(profile.get(key) or "").strip()}
    if not found.get("page_url", "https://").lower().startswith(("http://", "https://")):
        del found["page_url"]
    return found


def display_label(identity: Identity, display_name: str = "") -> str:
    """How agents see a customer: their display name, else the name, e-mail or phone the
    identity gave, else its channel and user id ("webchat v-3898b49a4c")."""
    if display_name.strip():
        return display_name.strip()
    details = visitor_details(identity)
    for key in ("name", "email", "phone"):
        if key in details:
            return details[key].strip()
    return f"{identity.channel} {identity.external_user_id[:12]}"


CREATED_IDENTITIES = "carebot.created_identities"  # the key of Session.info


# A channel identity by its platform id (per message: prepared once).
_IDENTITY = Prepared(
    select(Identity.id, Identity.customer_id, Identity.profile).where(
        Identity.channel == bindparam("channel"),
        Identity.external_user_id == bindparam("external_user_id"),
    )
)


def has_links(profile: Mapping[str, str], link_by: Sequence[str]) -> bool:
    """Whether ``profile`` shows a phone or e-mail (of ``link_by``) that may link its identity
    to a customer who has it already."""
    return any(normalise(kind, str(profile.get(kind, ""))) for kind in link_by)


async def find_or_create_identity(
    session: AsyncSession,
    channel: str,
    external_user_id: str,
    profile: Mapping[str, str],
    *,
    now: datetime,
    link_by: Sequence[str],
) -> Identity:
    """The channel identity (created with a new customer the first time); a changed profile is
    merged in, and a phone or e-mail it shows links it to the customer who has it already.
    One created here is in :func:`created_identities` of the session; one with nothing to
    change comes back outside the session (for reading: its ids, channel and profile)."""
    found = await _IDENTITY.rows(
        session, {"channel": channel, "external_user_id": external_user_id}
    )
    if found:
        identity_id, customer_id, known = found[0]
        if not profile or {**known, **profile} == known:
            # Nothing to change (nearly every message): the identity as read, outside the
            # session, for its ids; loading it into the session cost more than the query.
            return Identity(
                id=identity_id,
                customer_id=customer_id,
                channel=channel,
                external_user_id=external_user_id,
                profile=known,
            )
        identity = await session.get_one(Identity, identity_id)
        identity.profile = {**identity.profile, **profile}
        customer = await session.get_one(Customer, identity.customer_id)
        if not customer.display_name and profile.get("name"):
            customer.display_name = profile["name"][:200]
    else:
        customer = Customer(display_name=profile.get("name", "")[:200], created_at=now)
        await insert_row(session, customer)
        identity = Identity(
            customer_id=customer.id,
            channel=channel,
            external_user_id=external_user_id,
            profile=dict(profile),
            created_at=now,
        )
        if has_links(profile, link_by):
            session.add(identity)  # in the session: linking may move it to another customer
            await session.flush()
        else:  # nothing to link by: written once, only read afterwards (as a returning one is)
            await insert_row(session, identity)
        created_identities(session).add(identity.id)
    await _link(session, identity, link_by, now)
    return identity


def created_identities(session: AsyncSession) -> set[int]:
    """The ids of the identities created in this session (a new identity has no conversation
    yet: the store need not look for one)."""
    created: set[int] = session.info.setdefault(CREATED_IDENTITIES, set())
    return created


async def _link(
    session: AsyncSession, identity: Identity, link_by: Sequence[str], now: datetime
) -> None:
    for kind in link_by:
        value = normalise(kind, str(identity.profile.get(kind, "")))
        if value is None:
            continue
        known = await session.scalar(
            select(ContactPoint.id).where(
                ContactPoint.identity_id == identity.id,
                ContactPoint.kind == kind,
                ContactPoint.value == value,
            )
        )
        if known is None:
            session.add(
                ContactPoint(identity_id=identity.id, kind=kind, value=value, created_at=now)
            )
            await session.flush()
        others = (
            await session.scalars(
                select(Identity.customer_id)
                .join(ContactPoint, ContactPoint.identity_id == Identity.id)
                .where(
                    ContactPoint.kind == kind,
                    ContactPoint.value == value,
                    Identity.customer_id != identity.customer_id,
                )
            )
        ).all()
        for other in sorted(set(others)):
            keep, gone = sorted((identity.customer_id, other))
            await merge_customers(session, keep, gone, reason=f"same {kind} {value}")


async def merge_customers(session: AsyncSession, keep: int, gone: int, *, reason: str) -> None:
    """Move ``gone``'s identities and conversations to ``keep`` and delete ``gone``."""
    if keep == gone:
        return
    kept = await session.get_one(Customer, keep)
    other = await session.get_one(Customer, gone)
    for identity in (
        await session.scalars(select(Identity).where(Identity.customer_id == gone))
    ).all():
        identity.customer_id = keep
        identity.linked_by = reason[:200]
    for conversation in (
        await session.scalars(select(Conversation).where(Conversation.customer_id == gone))
    ).all():
        conversation.customer_id = keep
    if not kept.display_name:
        kept.display_name = other.display_name
    kept.created_at = min(kept.created_at, other.created_at)
    await session.flush()
    await session.delete(other)
    await session.flush()
    log.info("Merged customer %s into customer %s (%s)", gone, keep, reason)


class CustomerStore:
    def __init__(self, db: Database, *, clock: Clock, link_by: Sequence[str]) -> None:
        self._db = db
        self._clock = clock
        self._link_by = tuple(link_by)

    async def update_contact(self, details: ContactDetails) -> int:
        """Keep contact details a customer gave; returns their customer id (after any link)."""
        profile = {
            k: str(v)[: PAGE_URL_MAX_CHARS if k == "page_url" else PROFILE_MAX_CHARS]
            for k, v in details.profile.items()
            if str(v).strip() or k == "page_title"  # a page without a title: none shown
        }
        async with self._db.transaction() as session:
            identity = await find_or_create_identity(
                session,
                details.channel,
                details.external_user_id,
                profile,
                now=self._clock(),
                link_by=self._link_by,
            )
            return identity.customer_id

    async def merge(self, conversation_id: int, query: str, *, agent: str) -> int:
        """An agent says the customer of ``conversation_id`` is the one ``query`` names: a
        customer number (``12`` or ``#12``), a phone number, an e-mail address or
        ``channel:user id``. Returns the customer id both are now."""
        async with self._db.transaction() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise StoreError(f"No conversation with id {conversation_id}")
            other = await self._find(session, query.strip())
            if other is None:
                raise StoreError(
                    f"No customer matches {query.strip()!r}. Give a customer number (#12), a "
                    "phone number, an e-mail address, or channel:user id (telegram:12345)."
                )
            if other == conversation.customer_id:
                raise StoreError(f"{query.strip()!r} is this customer already")
            keep, gone = sorted((conversation.customer_id, other))
            await merge_customers(session, keep, gone, reason=f"merged by {agent}")
            return keep

    async def _find(self, session: AsyncSession, query: str) -> int | None:
        number = query.removeprefix("#")
        if number.isdigit() and len(number) < 7:
            found = await session.get(Customer, int(number))
            return found.id if found else None
        for kind in ("email", "phone"):
            value = normalise(kind, query)
            if value is not None:
                return await session.scalar(
                    select(Identity.customer_id)
                    .join(ContactPoint, ContactPoint.identity_id == Identity.id)
                    .where(ContactPoint.kind == kind, ContactPoint.value == value)
                    .limit(1)
                )
        channel, _, user = query.partition(":")
        return await session.scalar(
            select(Identity.customer_id).where(
                Identity.channel == channel.strip(), Identity.external_user_id == user.strip()
            )
        )
