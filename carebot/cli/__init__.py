"""The ``carebot`` command. Heavy imports (torch, the model) happen inside the commands that
need them, so ``carebot --help``, ``intents check --no-conflicts`` and ``db upgrade`` stay fast.

``main`` builds the parser from the command groups: the service (``serve``, ``chat``, ``inbox``,
``db``: :mod:`carebot.cli.main`), the intents and their evaluation (:mod:`carebot.cli.intents`),
the models (:mod:`carebot.cli.models`) and the routing rules (:mod:`carebot.cli.routes`).
"""

from carebot.cli.main import main

__all__ = ["main"]
