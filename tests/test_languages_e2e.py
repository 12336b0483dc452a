"""Customers in German, French and Spanish end to end, on the real multilingual encoders (USE
multilingual v3, and the same distilled from MiniLM): the
shipped intents (English examples, answers in four languages) and the shipped messages per
language, through the web chat and Telegram (python-telegram-bot against the Bot API stand-in),
on SQLite and PostgreSQL. An upset German customer is handed over in German."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.config import Settings
from carebot.nlu.use_encoder import UseEncoder, use_encoder
from carebot.server import Service
from tests.conftest import Clock  # a Wednesday at 10:00 UTC: business hours, whenever run
from tests.service import Visitor, running_service, service_settings
from tests.telegram_standin import TelegramStandIn, text_update

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
SECRET = "hook-secret_123"

# (language, a customer's question, the first words of the delivery_times answer in it)
QUESTIONS = [
    ("de", "Wie lange dauert die Lieferung nach Österreich?", "Bestellungen verlassen"),
    ("fr", "Combien de temps prend la livraison ?", "Les commandes quittent"),
    ("es", "¿Cuánto tarda el envío a Francia?", "Los pedidos salen"),
]
UPSET_GERMAN = (
    "Das ist eine absolute Frechheit!!! Seit drei Wochen warte ich auf mein Paket und "
    "niemand antwortet mir. Ich bin stinksauer!"
)


@dataclass(frozen=True)
class Served:
    """A multilingual model by its [matcher] name, loaded once."""

    model: str
    encoder: UseEncoder


@pytest.fixture(scope="module", params=["use-multilingual", "use-multilingual-distilled"])
def served(request: pytest.FixtureRequest) -> Served:
    return Served(request.param, use_encoder(request.param))


def languages_settings(tmp_path: Path, model: str, **sections: dict[str, Any]) -> Settings:
    return service_settings(
        tmp_path,
        matcher={
            "model": model,
            "method": "classifier",
            "intents_dir": str(ROOT / "intents"),
            "answer_threshold": SHIPPED["matcher"]["answer_threshold"],
            "draft_threshold": SHIPPED["matcher"]["draft_threshold"],
            "min_similarity": SHIPPED["matcher"]["min_similarity"],
        },
        placeholders=SHIPPED["placeholders"],
        languages={"default": "en", "detect": ["en", "de", "fr", "es"]},
        messages={code: SHIPPED["messages"][code] for code in ("de", "fr", "es")},
        emotion={"head": True},  # the packaged head of the model
        bot={"name": SHIPPED["bot"]["name"]},
        **sections,
    )


def expected_answer(language: str) -> str:
    """The delivery_times answer in ``language``, as the shipped intents file writes it."""
    from carebot.nlu.intents import load_intents

    intents = load_intents(ROOT / "intents", SHIPPED["placeholders"])
    return intents["delivery_times"].render_answer(SHIPPED["placeholders"], language)


@asynccontextmanager
async def chat(server: TestServer, language: str | None = None) -> AsyncIterator[Visitor]:
    """A web chat customer whose widget speaks ``language`` (its browser's)."""
    async with aiohttp.ClientSession() as http:
        visitor = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await visitor.hello(language=language)
        yield visitor


def without_intro(text: str, language: str) -> str:
    """The reply without the bot's introduction before its first message."""
    intro = SHIPPED["messages"][language]["bot_intro"].format(bot_name=SHIPPED["bot"]["name"])
    assert text.startswith(intro), text
    return text[len(intro) :].lstrip("\n")


async def asked_on_the_web_chat(
    tmp_path: Path, database_url: str, served: Served, language: str, texts: list[str]
) -> list[str]:
    """The replies to ``texts`` from a customer whose widget speaks ``language``."""
    settings = languages_settings(tmp_path, served.model)
    replies = []
    async with (
        running_service(settings, database_url, Clock(), encoder=served.encoder) as (_, server),
        chat(server, language) as customer,
    ):
        for text in texts:
            await customer.say(text)
            replies.append(str((await customer.next_of("message"))["text"]))
    return replies


async def asked_on_telegram(
    tmp_path: Path, database_url: str, served: Served, language: str, texts: list[str]
) -> list[str]:
    """The replies to ``texts`` from a customer whose Telegram app speaks ``language``."""
    async with TelegramStandIn() as tg:
        settings = languages_settings(
            tmp_path,
            served.model,
            telegram={"enabled": True, "api_url": f"{tg.url}/bot", "poll_timeout": 5},
        )
        env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_WEBHOOK_SECRET": SECRET}
        async with running_service(
            settings, database_url, Clock(), env=env, encoder=served.encoder
        ):
            for n, text in enumerate(texts, start=1):
                update = text_update(4242, text, first_name="Kim")
                update["message"]["from"]["language_code"] = language
                tg.push(update)
                await tg.next_sent(n)
            return [str(reply["text"]) for reply in tg.sent]


@pytest.mark.parametrize(
    "ask", [asked_on_the_web_chat, asked_on_telegram], ids=["webchat", "telegram"]
)
@pytest.mark.parametrize(("language", "question", "start"), QUESTIONS)
async def test_each_channel_answers_in_the_customers_language(
    tmp_path: Path,
    database_url: str,
    served: Served,
    ask: Callable[[Path, str, Served, str, list[str]], Awaitable[list[str]]],
    language: str,
    question: str,
    start: str,
) -> None:
    # A first "Hallo" is too short to place: the bot speaks the widget's or the app's language.
    greeted, answer = await ask(tmp_path, database_url, served, language, ["Hallo", question])
    without_intro(greeted, language)
    assert answer == expected_answer(language) and answer.startswith(start)


async def test_an_upset_german_customer_is_handed_over_in_german(
    tmp_path: Path, database_url: str, served: Served
) -> None:
    settings = languages_settings(tmp_path, served.model)
    service: Service
    async with running_service(settings, database_url, Clock(), encoder=served.encoder) as (
        service,
        server,
    ):
        async with chat(server) as customer:
            await customer.say(UPSET_GERMAN)
            reply = await customer.next_of("message")
        waiting, _ = await service.runtime.queue.rows()
        [row] = waiting
        case = await service.runtime.queue.case(row.id)
    handoff = SHIPPED["messages"]["de"]["handoff"]
    assert without_intro(reply["text"], "de") == handoff, reply["text"]
    assert row.reasons[0] == "emotional" and case.language == "de"
