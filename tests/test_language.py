"""Language detection (carebot/nlu/language.py) and its settings ([languages])."""

from __future__ import annotations

from pathlib import Path

import pytest

from carebot.config import LanguageSettings, load_settings
from carebot.exceptions import ConfigError
from carebot.nlu.language import LanguageDetector


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(LanguageSettings(default="en", detect=("en", "de", "fr", "es")))


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Wo ist meine Bestellung?", "de"),
        ("Mein Paket ist nie angekommen, was kann ich tun?", "de"),
        ("Je voudrais annuler ma commande", "fr"),
        ("Bonjour, mon colis est arrivé abîmé", "fr"),
        ("¿Puedo devolver un producto?", "es"),
        ("Mi pedido no ha llegado todavía", "es"),
        ("where is my order?", "en"),
        ("my parcel never arrived", "en"),
        ("Das ist jetzt das dritte Mal, ich bin wütend!!!", "de"),
        # short: under min_confidence, but 1.5 times as likely as the next language (min_lead)
        ("can I cancel my order", "en"),
        ("where is my parcel", "en"),
    ],
)
def test_a_message_is_placed_in_its_language(
    detector: LanguageDetector, text: str, language: str
) -> None:
    assert detector.detect(text) == language


@pytest.mark.parametrize(
    "text", ["ok", "Danke!", "thx", "Hallo", "👍", "12345 67890 1234", "我的订单在哪里"]
)
def test_a_message_too_short_or_in_none_of_the_languages_is_placed_nowhere(
    detector: LanguageDetector, text: str
) -> None:
    assert detector.detect(text) is None


def test_with_fewer_than_two_languages_nothing_is_told_apart() -> None:
    for detect in [(), ("de",)]:
        single = LanguageDetector(LanguageSettings(default="de", detect=detect))
        assert not single.active
        assert single.detect("Where is my order? It has been two weeks.") is None


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[languages]\ndetect = ['en', 'xx']\n", ["[languages] 'detect'", "'xx'", "de, "]),
        ("[languages]\ndefault = 'german'\n", ["[languages] 'default'", "'german'"]),
        ("[languages]\ndetect = ['en', 'de', 'EN']\n", ["listed twice"]),
        ("[languages]\ndefault = 'fr'\ndetect = ['en', 'de']\n", ["default 'fr'", "['en', 'de']"]),
    ],
)
def test_a_wrong_language_setting_names_the_key_and_the_file(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    for fragment in [*fragments, str(path)]:
        assert fragment in str(error.value)


def test_codes_are_read_without_case_or_spaces(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[languages]\ndefault = ' DE '\ndetect = ['De', 'en']\n")
    languages = load_settings(path).languages
    assert (languages.default, languages.detect) == ("de", ("de", "en"))
