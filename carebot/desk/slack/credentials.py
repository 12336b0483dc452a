"""The Slack desk's secrets, read from the environment variables named in ``[slack]``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from carebot.config import Settings
from carebot.exceptions import ConfigError


@dataclass(frozen=True, slots=True)
class SlackCredentials:
    bot_token: str
    signing_secret: str | None  # events over HTTP at /slack/events
    app_token: str | None  # events over Socket Mode

    @classmethod
    def from_env(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> SlackCredentials | None:
        """The credentials, or None when Slack is not configured (the bot token is not set)."""
        env = os.environ if env is None else env
        slack = settings.slack
        where = settings.source or "config.toml"
        bot_token = env.get(slack.bot_token_env, "").strip()
        if not bot_token:
            return None
        if not bot_token.startswith("xoxb-"):
            raise ConfigError(
                f"{slack.bot_token_env} must hold the Slack bot token (it starts with 'xoxb-'; "
                "Slack app settings -> OAuth & Permissions -> Bot User OAuth Token)."
            )
        if not slack.channel:
            raise ConfigError(
                f"{where}: [slack] 'channel' is empty, but {slack.bot_token_env} is set. Give the "
                "care channel's id (Slack: channel details -> About -> Channel ID, e.g. "
                "C0123456789)."
            )
        signing_secret = env.get(slack.signing_secret_env, "").strip() or None
        app_token = env.get(slack.app_token_env, "").strip() or None
        if app_token is not None and not app_token.startswith("xapp-"):
            raise ConfigError(
                f"{slack.app_token_env} must hold an app-level token (it starts with 'xapp-'; "
                "Slack app settings -> Basic Information -> App-Level Tokens)."
            )
        if signing_secret is None and app_token is None:
            raise ConfigError(
                f"{slack.bot_token_env} is set, but neither {slack.signing_secret_env} (events "
                f"over HTTP at /slack/events) nor {slack.app_token_env} (Socket Mode) is: set "
                "at least one."
            )
        return cls(bot_token, signing_secret, app_token)
