"""What the command modules share: the subcommand collection type and command groups."""

from __future__ import annotations

import argparse
from typing import TypeAlias

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def group(commands: Commands, name: str, help: str) -> Commands:
    """A command that only groups subcommands; alone, it prints its help."""
    parser = commands.add_parser(name, help=help)
    parser.set_defaults(command=lambda _args: parser.print_help())
    return parser.add_subparsers(title=f"{name} commands", metavar="COMMAND")
