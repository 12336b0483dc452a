"""``python -m carebot.cli``: the same as the ``carebot`` command."""

import sys

from carebot.cli.main import main

sys.exit(main())
