"""The errors carebot raises. Every one derives from :class:`CarebotError`."""

from __future__ import annotations


class CarebotError(Exception):
    """Root of every error carebot raises on purpose."""


class ConfigError(CarebotError):
    """The configuration file is missing, unreadable, or has a wrong key or value."""


class IntentError(CarebotError):
    """An intent file cannot be read or does not have the documented shape."""


class DataError(CarebotError):
    """A labelled data file (``intents import``, ``eval --test``) is unreadable or mis-shaped."""


class ModelError(CarebotError):
    """The sentence-transformers model cannot be found or loaded."""


class StoreError(CarebotError):
    """The database is unreachable, or a stored record is not in the expected state."""


class DeliveryError(CarebotError):
    """A channel could not deliver a reply; the outbox retries it later, unless ``permanent``.

    ``retry_after`` is the platform's own hint in seconds, when it gave one.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent  # the platform refused this reply for good: no retry


class ReplyWindowClosed(StoreError):
    """The channel accepts no reply now: the customer last wrote longer ago than its
    customer-service window (WhatsApp, Messenger, Instagram: 24 hours)."""


class PublicRefused(StoreError):
    """A public action refused before anything was stored or posted: ``reason`` says why in
    words the agent can act on (the personal-data guard, a platform's rule)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not posted in public: {reason}")
        self.reason = reason


class ChannelNotRunning(StoreError):
    """No process of this service delivers on the conversation's channel (it is not enabled in
    config.toml, or it was a ``carebot chat`` conversation): an agent's reply is refused up
    front, with the reason, and nothing is queued."""


class SlackError(CarebotError):
    """A Slack Web API call failed after its retries (Slack down, rate limited, or refused).

    ``error`` is Slack's own error code when it answered (e.g. ``channel_not_found``);
    ``retryable``: Slack was unreachable, rate limiting or failing, rather than refusing.
    """

    def __init__(self, message: str, *, error: str | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.error = error
        self.retryable = retryable


class ShutdownError(CarebotError):
    """One or more steps of the shutdown failed; each was logged with its name and traceback,
    and every other step ran. ``steps`` names them (``"stage: part"``)."""

    def __init__(self, steps: list[str]) -> None:
        super().__init__(
            f"The shutdown did not finish cleanly: {', '.join(steps)} failed (see the log)"
        )
        self.steps = steps
