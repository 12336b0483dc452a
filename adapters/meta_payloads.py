"""Meta's webhook payloads as typed models: WhatsApp Cloud API, Messenger and Instagram.

:func:`parse` turns the raw body of a webhook call into a :class:`WhatsAppPayload`, a
:class:`MessagingPayload` (Messenger, object ``page``; Instagram, object ``instagram``) or an
:class:`OtherPayload` (an object carebot does not read). What the translation in
:mod:`carebot.adapters.meta` reads is required: a message's id, sender and time, the object its
type names (``text`` for a text message, ``image`` for an image...), a status's id, a postback's
title. A payload without one raises :class:`pydantic.ValidationError`; fields Meta adds later
are ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from carebot.adapters.meta_public_payloads import PublicEntry
from carebot.adapters.payloads import Id, Millis, Payload, RawPayload, Seconds, loads

FILE_TYPES = ("image", "audio", "voice", "video", "document", "sticker")
CONTENT_TYPES = ("text", "interactive", "button", "location", *FILE_TYPES)


# WhatsApp: {"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
# "messages", "value": {"metadata", "contacts", "messages", "statuses"}}]}]}


class Text(Payload):
    body: str


class Reply(Payload):
    """A tapped reply button (``button_reply``) or list row (``list_reply``)."""

    id: str
    title: str


class Interactive(Payload):
    type: str
    button_reply: Reply | None = None
    list_reply: Reply | None = None

    @model_validator(mode="after")
    def _has_its_reply(self) -> Interactive:
        if self.type in ("button_reply", "list_reply") and getattr(self, self.type) is None:
            raise ValueError(f"an interactive {self.type} needs its {self.type!r} object")
        return self


class Button(Payload):
    """A tapped quick-reply button of a template."""

    text: str


class Media(Payload):
    id: Id
    caption: str = ""
    filename: str = ""


class Location(Payload):
    latitude: float
    longitude: float
    name: str = ""


class WhatsAppMessage(RawPayload):
    """One message a customer sent; the object its ``type`` names is required for the types
    carebot reads (:data:`CONTENT_TYPES`)."""

    from_: Id = Field(alias="from")
    id: Id
    timestamp: Seconds
    type: str
    text: Text | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    location: Location | None = None
    image: Media | None = None
    audio: Media | None = None
    voice: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None

    @model_validator(mode="after")
    def _has_its_content(self) -> WhatsAppMessage:
        if self.type in CONTENT_TYPES and getattr(self, self.type) is None:
            raise ValueError(f"a {self.type} message needs its {self.type!r} object")
        return self

    def media(self) -> Media | None:
        """The file of an image, audio, voice, video, document or sticker message."""
        found = getattr(self, self.type) if self.type in FILE_TYPES else None
        return found if isinstance(found, Media) else None


class StatusError(Payload):
    code: int
    title: str = ""
    message: str = ""


class WhatsAppStatus(Payload):
    """What became of a message carebot sent: sent, delivered, read or failed."""

    id: Id
    status: str
    timestamp: Seconds
    errors: tuple[StatusError, ...] = ()


class Profile(Payload):
    name: str = ""


class Contact(Payload):
    wa_id: Id
    profile: Profile = Profile()


class Metadata(Payload):
    phone_number_id: Id


class WhatsAppValue(Payload):
    """A ``messages`` change: what arrived for one of the business's numbers."""

    metadata: Metadata
    contacts: tuple[Contact, ...] = ()
    messages: tuple[WhatsAppMessage, ...] = ()
    statuses: tuple[WhatsAppStatus, ...] = ()


class Change(Payload):
    """A change of one of the account's fields; only ``messages`` changes are read, and their
    ``value`` is required (template status updates, account updates... are not read)."""

    field: str
    value: WhatsAppValue | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_messages_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("field") != "messages":
            return {key: value for key, value in data.items() if key == "field"}
        return data

    @model_validator(mode="after")
    def _messages_have_a_value(self) -> Change:
        if self.field == "messages" and self.value is None:
            raise ValueError("a messages change needs its 'value' object")
        return self


class WhatsAppEntry(Payload):
    changes: tuple[Change, ...]


class WhatsAppPayload(Payload):
    object: Literal["whatsapp_business_account"]
    entry: tuple[WhatsAppEntry, ...]


# Messenger and Instagram: {"object": "page" | "instagram", "entry": [{"id": <page or account>,
# "messaging": [{"sender", "recipient", "timestamp", "message" | "postback" | "delivery"}]}]}


class Party(Payload):
    id: Id


class QuickReply(Payload):
    payload: str


class AttachmentPayload(Payload):
    url: str = ""


class MessengerAttachment(Payload):
    type: str
    payload: AttachmentPayload = AttachmentPayload()


class MessengerMessage(Payload):
    mid: Id
    text: str = ""  # absent when the message is only files
    is_echo: bool = False  # the page's own message, sent back
    quick_reply: QuickReply | None = None
    attachments: tuple[MessengerAttachment, ...] = ()


class Postback(Payload):
    """A tapped button of a template (or Get Started)."""

    title: str
    payload: str = ""
    mid: Id | None = None


class Delivery(Payload):
    watermark: Millis
    mids: tuple[Id, ...] = ()


class MessagingItem(RawPayload):
    """One event of a conversation with the page or account: a message, a postback or a
    delivery receipt (reads, reactions and the like are not read)."""

    sender: Party
    timestamp: Millis
    message: MessengerMessage | None = None
    postback: Postback | None = None
    delivery: Delivery | None = None


class MessagingEntry(PublicEntry):  # + time and changes: comments and mentions
    id: Id
    messaging: tuple[MessagingItem, ...] = ()  # absent in entries of other fields (feed...)


class MessagingPayload(Payload):
    object: Literal["page", "instagram"]
    entry: tuple[MessagingEntry, ...]


class OtherPayload(Payload):
    """An object carebot does not read (``user``, ``permissions``...)."""

    object: str


_OBJECT = TypeAdapter(dict[str, Any])
MetaPayload = WhatsAppPayload | MessagingPayload | OtherPayload


def parse(raw: bytes) -> MetaPayload:
    """The webhook call's body as a typed payload; raises ValidationError when it is not JSON,
    not a webhook payload, or lacks a field carebot reads."""
    data = _OBJECT.validate_python(loads(raw))
    kind = data.get("object")
    if kind == "whatsapp_business_account":
        return WhatsAppPayload.model_validate(data)
    if kind in ("page", "instagram"):
        return MessagingPayload.model_validate(data)
    return OtherPayload.model_validate(data)
