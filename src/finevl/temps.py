"""The temporaries this process has made and not yet put in place: removed on exit, after a
command's error and on Ctrl-C (the output policy, docs/cli.md). `finevl.data.files` writes
through it; the CLI clears it after each command."""

from __future__ import annotations

import atexit
import shutil
from pathlib import Path

live: set[Path] = set()


@atexit.register
def remove_live_temps() -> None:
    """Remove the temporaries this process made and did not put in place (Ctrl-C, error)."""
    for tmp in list(live):
        shutil.rmtree(tmp, ignore_errors=True)
    live.clear()
