from __future__ import annotations

from pathlib import Path

import pytest

from carebot.config import Settings, load_settings
from carebot.exceptions import ConfigError
from carebot.models import Reason

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_loads_and_matches_the_defaults() -> None:
    shipped = load_settings(ROOT / "config.toml")
    assert shipped.source == ROOT / "config.toml"
    assert shipped.matcher.model == Settings().matcher.model
    assert shipped.placeholders["support_email"]
    assert shipped.conversations == Settings().conversations  # documented with its defaults
    # documented with its defaults; the shipped config adds the widget's texts in de, fr, es
    untranslated = {"texts": {"languages"}}
    assert shipped.webchat.model_dump(exclude=untranslated) == Settings().webchat.model_dump(
        exclude=untranslated
    )
    for section in ("waiting", "priority", "languages"):
        assert getattr(shipped, section) == getattr(Settings(), section)
    waiting_keys = ("answer_while_waiting", "not_answered_while_waiting", "withdraw_phrases")
    for key in (*waiting_keys, "withdraw_max_words"):
        assert getattr(shipped.triage, key) == getattr(Settings().triage, key)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.matcher.answer_threshold = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[matcher]\nanswer_treshold = 0.8\n",
            ["config.toml:2", "unknown key [matcher] 'answer_treshold'", "answer_threshold"],
        ),
        (
            "[matcher]\nanswer_threshold = 1.5\n",
            ["config.toml:2", "[matcher] 'answer_threshold'", "less than or equal to 1", "1.5"],
        ),
        ("[storage]\nurl = 'x'\n", ["unknown key 'storage'", "Allowed here: store, matcher"]),
        ("[business_hours]\ntimezone = 'Mars/Olympus'\n", ["unknown time zone 'Mars/Olympus'"]),
        ("[business_hours]\nmonday = '9-5'\n", ["config.toml:2", "'monday'", "09:00-18:00"]),
        ("[matcher\nmodel = 'x'\n", ["not valid TOML"]),
        ("[whatsapp]\nenabled = true\n", ["'whatsapp'", "account_id is required"]),
        ("[telegram]\nmode = 'push'\n", ["config.toml:2", "'polling' or 'webhook'"]),
        ("[server]\npublic_url = 'care.example'\n", ["config.toml:2", "public_url"]),
        (
            "[conversations]\nidle_close_hours = -1\n",
            ["config.toml:2", "[conversations] 'idle_close_hours'", "greater than or equal to 0"],
        ),
        (
            "[conversations]\nsweep_seconds = 0\n",
            ["config.toml:2", "[conversations] 'sweep_seconds'", "greater than or equal to 1"],
        ),
        (
            "[conversations]\nidle_close_hour = 12\n",
            ["unknown key [conversations] 'idle_close_hour'", "idle_close_hours"],
        ),
        (
            "[webchat.texts]\noffline = 'Back {when}'\n",
            ["config.toml:2", "[webchat.texts] 'offline'", "{when}", "allowed here: {next_open}"],
        ),
        (
            "[webchat.texts]\nretry = 'Retry {agent}'\n",
            ["config.toml:2", "[webchat.texts] 'retry'", "{agent}", "allowed here: none"],
        ),
        ("[webchat.texts]\nonline = ''\n", ["[webchat.texts] 'online'", "at least 1 character"]),
        (
            "[webchat.texts]\nofline = 'x'\n",
            ["unknown key [webchat.texts] 'ofline'", "Allowed here: title, online, offline"],
        ),
        (
            "[languages.thresholds.de]\nanswer_treshold = 0.5\n",
            [
                "config.toml:2",
                "unknown key [languages.thresholds.de] 'answer_treshold'",
                "Allowed here: answer_threshold, draft_threshold",
            ],
        ),
        (
            "[messages]\nwaiting_ack = 'Back in {minutes} minutes'\n",
            [
                "config.toml:2",
                "[messages] 'waiting_ack'",
                "unknown placeholder {minutes}",
                "{wait}",
            ],
        ),
        (
            "[messages]\nwaiting_ack_closed = 'Back {next_open'\n",
            ["config.toml:2", "[messages] 'waiting_ack_closed'", "literal brace"],
        ),
        (
            "[priority]\nupset = 3\n",
            ["unknown key [priority] 'upset'", "emotional", "emotion_weight"],
        ),
        (
            "[priority]\nemotion_weight = -1\n",
            ["config.toml:2", "[priority] 'emotion_weight'", "greater than or equal to 0"],
        ),
        (
            "[waiting]\nack_repeat_minutes = 0\n",
            ["config.toml:2", "[waiting] 'ack_repeat_minutes'", "greater than 0"],
        ),
    ],
)
def test_a_wrong_key_or_value_names_key_file_and_what_is_allowed(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    for fragment in expected:
        assert fragment in str(error.value)


def test_every_triage_reason_has_a_priority_weight() -> None:
    weights = Settings().priority
    assert {r.value for r in Reason} | {"emotion_weight"} == set(type(weights).model_fields)
    assert weights.weight("agent_initiated") == 0.0  # an agent's own take-over: nobody waits


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Cannot read config file .*nope\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_database_url_comes_from_the_named_environment_variable(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[store]\nurl_env = 'MY_DB'\n"))
    assert settings.database_url({"MY_DB": "postgresql+asyncpg://u@h/db"}) == (
        "postgresql+asyncpg://u@h/db"
    )
    # Without it, the relative SQLite path is resolved against the config file's folder.
    assert settings.database_url({}) == f"sqlite+aiosqlite:///{tmp_path / '.carebot/carebot.db'}"


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[matcher]\nintents_dir = 'faq'\n"))
    assert settings.path(settings.matcher.intents_dir) == tmp_path / "faq"


def test_an_empty_customer_message_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[messages\] 'handoff'"):
        load_settings(write(tmp_path, '[messages]\nhandoff = ""\n'))


def test_a_change_of_hands_notice_may_be_empty_and_names_its_one_placeholder(
    tmp_path: Path,
) -> None:
    settings = load_settings(write(tmp_path, '[messages]\nagent_joined = ""\nresolved = ""\n'))
    assert (settings.messages.agent_joined, settings.messages.resolved) == ("", "")
    assert "{agent}" in settings.messages.agent_transferred  # the others keep their default
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, "[messages]\nresolved = '{name} is done'\n"))
    fragments = ["config.toml:2", "[messages] 'resolved'", "unknown placeholder {name}", "{agent}"]
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[telegram]\nenabled = true\n", {}, ["TELEGRAM_BOT_TOKEN", "[telegram] token_env"]),
        (
            "[telegram]\nenabled = true\nmode = 'webhook'\n",
            {"TELEGRAM_BOT_TOKEN": "1:x"},
            ["[server] public_url"],
        ),
        (
            "[server]\npublic_url = 'https://care.example'\n"
            "[telegram]\nenabled = true\nmode = 'webhook'\n",
            {"TELEGRAM_BOT_TOKEN": "1:x"},
            ["TELEGRAM_WEBHOOK_SECRET"],
        ),
        (
            "[whatsapp]\nenabled = true\naccount_id = '1'\n",
            {"WHATSAPP_TOKEN": "t", "META_VERIFY_TOKEN": "v"},
            ["META_APP_SECRET", "[meta] app_secret_env"],
        ),
        ("[webhook]\nenabled = true\n", {"CAREBOT_WEBHOOK_SECRET": "s"}, ["reply_url"]),
    ],
)
def test_an_enabled_channel_without_its_secret_or_address_is_a_clear_error(
    tmp_path: Path, text: str, env: dict[str, str], expected: list[str]
) -> None:
    from carebot.platforms import build_platforms

    settings = load_settings(write(tmp_path, text))
    with pytest.raises(ConfigError) as error:
        build_platforms(settings, b"secret", env)
    for fragment in [*expected, str(tmp_path / "config.toml")]:
        assert fragment in str(error.value)


TEAM_AGENT = "[[inbox.agents]]\nname = 'ann'\nslack_user_id = 'UANN'\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[[teams]]\nname = 'billing'\n[[teams]]\nname = 'billing'\n",
            "teams and routing: [[teams]] name 'billing' is used twice; names must differ",
        ),
        (
            "[[teams]]\nname = 'billing'\nmembers = ['bob']\n",
            "teams and routing: team 'billing': member 'bob' is not an agent (add them to "
            "[[inbox.agents]])",
        ),
        (
            TEAM_AGENT.replace("'UANN'\n", "'UANN'\nteams = ['legal']\n")
            + "[[teams]]\nname = 'billing'\n",
            "teams and routing: agent 'ann': no team is named 'legal'",
        ),
        (
            "[[teams]]\nname = 'billing'\n[routing]\ndefault_team = 'care'\n",
            "teams and routing: [routing] default_team: no team is named 'care'",
        ),
        (
            "[[routing.rules]]\nteam = 'billing'\nwords = ['invoice']\n",
            "teams and routing: [[routing.rules]] rule 1: no team is named 'billing'",
        ),
        ("[[teams]]\nname = 'Billing Team'\n", "'name': String should match pattern"),
        ("[[teams]]\nname = 'billing'\nslack_channel = '#billing'\n", "(got '#billing')"),
    ],
)
def test_teams_that_do_not_fit_together_are_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, TEAM_AGENT + text))
    assert expected in str(refused.value)


def test_without_teams_one_default_team_is_todays_care_channel(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, TEAM_AGENT + "[slack]\nchannel = 'CCARE'\n[business_hours]\nfriday = ''\n")
    )
    (team,) = settings.teams_in_effect()
    assert (team.name, team.label) == ("care", "Care team")
    assert settings.default_team() == team
    assert settings.team("gone") == team  # a handoff routed before the config changed
    assert settings.team_members("care") == frozenset()
    assert settings.slack_channel(None) == "CCARE"
    assert settings.hours_of("care") == settings.business_hours


def test_teams_have_their_own_channels_members_and_hours(tmp_path: Path) -> None:
    text = (
        TEAM_AGENT.replace("'UANN'\n", "'UANN'\nteams = ['billing']\n")
        + "[[inbox.agents]]\nname = 'bob'\nslack_user_id = 'UBOB'\n"
        + "[slack]\nchannel = 'CCARE'\n"
        + "[[teams]]\nname = 'care'\n"
        + "[[teams]]\nname = 'billing'\ndisplay_name = 'Billing'\nslack_channel = 'CBILL'\n"
        + "members = ['bob']\n[teams.business_hours]\ntimezone = 'Europe/Berlin'\n"
        + "[routing]\ndefault_team = 'billing'\n"
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.default_team().name == "billing"
    assert settings.team_members("billing") == {"ann", "bob"}
    assert settings.slack_channel("billing") == "CBILL"
    assert settings.slack_channel("care") == "CCARE"  # no channel of its own: [slack] channel
    assert settings.hours_of("billing").timezone == "Europe/Berlin"
    assert settings.hours_of("care") == settings.business_hours
