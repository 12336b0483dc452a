"""What the command modules share: the subcommand collection type, command groups, and the
check of the intents that comes before the model loads."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from carebot.config import Settings

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def group(commands: Commands, name: str, help: str) -> Commands:
    """A command that only groups subcommands; alone, it prints its help."""
    parser = commands.add_parser(name, help=help)
    parser.set_defaults(command=lambda _args: parser.print_help())
    return parser.add_subparsers(title=f"{name} commands", metavar="COMMAND")


def check_intents_first(settings: Settings) -> None:
    """Raise IntentError listing every error in the ``[matcher] intents_dir`` before the model
    is loaded or exported: a typo in a YAML file, or a missing folder, is reported in a second,
    not after the model's first export. The parsed files are kept where the runtime reads
    them (``cache_dir``), so it does not parse them again."""
    from carebot.nlu.intents import ParsedFiles, load_intents

    parsed = ParsedFiles(settings.path(settings.matcher.cache_dir) / "parsed")
    load_intents(
        settings.path(settings.matcher.intents_dir),
        settings.placeholders,
        parsed,
        language=settings.languages.default,
        served=settings.languages.detect,
    )
