"""The argument parser of seg's own subcommands (synth, batch, report, ...): a refusal is one `seg: error:` line."""

from __future__ import annotations

import argparse
from typing import NoReturn

from typing_extensions import override


class CommandParser(argparse.ArgumentParser):
    """argparse whose refusals are one `seg: error:` line naming the subcommand, with exit status 2 (not a usage
    block followed by `<prog>: error:`)."""

    @override
    def error(self, message: str) -> NoReturn:
        """Print the refusal in seg's form and exit with status 2."""
        self.exit(2, f"seg: error: {self.prog}: {message} ({self.prog} --help)\n")
