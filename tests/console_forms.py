"""Driving the ops console's intent form as a browser does, for tests of what it writes: the
form of an intent as the file holds it, and a posted form saved back into its file."""

from __future__ import annotations

from pathlib import Path

from carebot.config import LanguageSettings
from carebot.console.intent_files import IntentFiles
from carebot.console.intent_form import IntentForm
from carebot.nlu.intents import ParsedFiles

# the languages the console shows: the default and those told apart
LANGUAGES = LanguageSettings(default="en", detect=("en", "de", "fr"))
PLACEHOLDERS = {"tracking_url": "U"}


def form_of(intents_dir: Path, intent_id: str, file: str = "shop.yaml") -> IntentForm:
    """The form the console opens for ``intent_id`` (as ``file`` holds it, unresolved)."""
    raw = next(i for i in ParsedFiles().read(intents_dir / file).intents if i.id == intent_id)
    return IntentForm.of(raw, file=file, stamp="", languages=LANGUAGES)


def saved(
    intents_dir: Path, intent_id: str, fields: dict[str, str], file: str = "shop.yaml"
) -> str:
    """``fields`` posted as the form of ``intent_id`` and saved over it; the file's text after."""
    files = IntentFiles(directory=intents_dir, placeholders=PLACEHOLDERS, languages=LANGUAGES)
    posted = IntentForm.posted({"id": intent_id, "original_id": intent_id, "file": file, **fields})
    intent = posted.intent(LANGUAGES.default)
    assert intent is not None, posted.errors
    files.save(files.read(file), intent, replaces=intent_id)
    return (intents_dir / file).read_text(encoding="utf-8")
