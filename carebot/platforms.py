"""The social channels a deployment runs, built from ``config.toml`` and the environment.

Each channel is enabled in its own section (``[telegram]``, ``[whatsapp]``, ``[messenger]``,
``[instagram]``, ``[webhook]``, ``[x]``) and takes its secrets from the environment variables the
section names. A channel that is enabled without its secrets stops the start with the variable
and the key that names it. Adapters are imported only when enabled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from aiohttp import web

from carebot.channel import Channel, Deliver
from carebot.config import MetaChannelSettings, Settings
from carebot.exceptions import ConfigError
from carebot.pacing import Pacer
from carebot.signing import Signer


class Mountable(Protocol):
    def mount(self, app: web.Application) -> None: ...


Mount = Callable[[web.Application, Deliver], None]  # adds a channel's routes to the web app


@dataclass
class Platforms:
    """The enabled channels and the web routes they receive on."""

    channels: list[Channel] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)

    def mount(self, app: web.Application, deliver: Deliver) -> None:
        for mount in self.mounts:
            mount(app, deliver)


def build_platforms(
    settings: Settings,
    secret: bytes,
    env: Mapping[str, str] | None = None,
) -> Platforms:
    """Every enabled channel; raises ConfigError naming what is missing. (X's monthly call
    cap is counted by the outbox: :mod:`carebot.public.delivery`.)"""
    env = os.environ if env is None else env
    platforms = Platforms()
    if settings.telegram.enabled:
        _telegram(settings, secret, env, platforms)
    _meta(settings, secret, env, platforms)
    if settings.webhook.enabled:
        _webhook(settings, env, platforms)
    if settings.x.enabled:
        _x(settings, env, platforms)
    return platforms


def _secret(env: Mapping[str, str], settings: Settings, section: str, key: str) -> str:
    name = getattr(getattr(settings, section), key)
    value = env.get(name, "").strip()
    if not value:
        where = _where(settings)
        raise ConfigError(
            f"The environment variable {name} is not set ([{section}] {key} in {where} names "
            "it), and an enabled channel needs it. Set it, or disable the channel."
        )
    return value


def _where(settings: Settings) -> str:
    return str(settings.source or "the default settings")


def _public_url(settings: Settings, section: str, why: str) -> str:
    url = settings.server.public_url
    if not url:
        raise ConfigError(
            f"[{section}] needs [server] public_url in {_where(settings)} ({why}): the HTTPS "
            "address where the platform reaches this service, e.g. https://care.example.com"
        )
    return url


def _telegram(
    settings: Settings, secret: bytes, env: Mapping[str, str], platforms: Platforms
) -> None:
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from carebot.adapters.telegram import TelegramChannel

    cfg = settings.telegram
    token = _secret(env, settings, "telegram", "token_env")
    webhook_secret = None
    if cfg.mode == "webhook":
        _public_url(settings, "telegram", 'mode = "webhook" registers it with Telegram')
        webhook_secret = _secret(env, settings, "telegram", "webhook_secret_env")
    bot = Bot(
        token,
        base_url=cfg.api_url,
        base_file_url=cfg.file_url,
        request=HTTPXRequest(connection_pool_size=32, read_timeout=15.0),
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=15.0),
    )
    channel = TelegramChannel(
        bot=bot,
        settings=cfg,
        links=Signer(secret, "telegram-file"),
        public_url=settings.server.public_url,
        webhook_secret=webhook_secret,
        pacer=Pacer(
            cfg.per_chat_per_second,
            overall_per_second=cfg.overall_per_second,
            workers=settings.server.total_workers,
        ),
    )
    platforms.channels.append(channel)
    platforms.mounts.append(partial(_mount, channel))


def _meta(settings: Settings, secret: bytes, env: Mapping[str, str], platforms: Platforms) -> None:
    sections: dict[str, MetaChannelSettings] = {
        "whatsapp": settings.whatsapp,
        "messenger": settings.messenger,
        "instagram": settings.instagram,
    }
    enabled = {name: cfg for name, cfg in sections.items() if cfg.enabled}
    if not enabled:
        return
    from carebot.adapters.graph import GraphApi
    from carebot.adapters.meta import MessengerChannel, MetaWebhook, WhatsAppChannel

    meta = settings.meta
    channels: list[WhatsAppChannel | MessengerChannel] = []
    for name, cfg in enabled.items():
        api = GraphApi(
            base_url=meta.graph_url,
            version=meta.api_version,
            token=_secret(env, settings, name, "token_env"),
        )
        pacer = Pacer(
            meta.per_recipient_per_second,
            overall_per_second=meta.overall_per_second,
            workers=settings.server.total_workers,
        )
        if name == "whatsapp":
            whatsapp = WhatsAppChannel(
                api=api,
                account_id=cfg.account_id,
                pacer=pacer,
                links=Signer(secret, "wa-media"),
                public_url=settings.server.public_url,
            )
            platforms.mounts.append(partial(_mount, whatsapp))
            channels.append(whatsapp)
        else:
            channels.append(
                MessengerChannel(name=name, api=api, account_id=cfg.account_id, pacer=pacer)
            )
    webhook = MetaWebhook(
        app_secret=_secret(env, settings, "meta", "app_secret_env"),
        verify_token=_secret(env, settings, "meta", "verify_token_env"),
        channels=list(channels),
    )
    platforms.channels.extend(channels)
    platforms.mounts.append(webhook.mount)


def _mount(channel: Mountable, app: web.Application, _deliver: Deliver) -> None:
    channel.mount(app)


def _webhook(settings: Settings, env: Mapping[str, str], platforms: Platforms) -> None:
    from carebot.adapters.webhook import WebhookChannel

    cfg = settings.webhook
    if not cfg.reply_url:
        raise ConfigError(
            f"[webhook] is enabled, but reply_url is empty in {_where(settings)}: set the URL "
            "carebot POSTs replies to."
        )
    channel = WebhookChannel(
        secret=_secret(env, settings, "webhook", "secret_env"),
        reply_url=cfg.reply_url,
        tolerance=cfg.tolerance_seconds,
    )
    platforms.channels.append(channel)
    platforms.mounts.append(partial(_mount, channel))


def _x(
    settings: Settings,
    env: Mapping[str, str],
    platforms: Platforms,
) -> None:
    from carebot.adapters.x import WEBHOOK_PATH, XChannel
    from carebot.adapters.x_api import XApi

    cfg = settings.x
    _public_url(settings, "x", f"X's Account Activity API delivers to {WEBHOOK_PATH} there")
    api = XApi(
        base_url=cfg.api_url,
        token=_secret(env, settings, "x", "token_env"),
    )
    channel = XChannel(
        api=api,
        user_id=cfg.user_id,
        consumer_secret=_secret(env, settings, "x", "consumer_secret_env"),
        pacer=Pacer(
            cfg.per_recipient_per_second,
            overall_per_second=cfg.overall_per_second,
            workers=settings.server.total_workers,
        ),
    )
    platforms.channels.append(channel)
    platforms.mounts.append(partial(_mount, channel))
