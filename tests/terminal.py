"""Running a command of ours as a person would, on a terminal, or as a script does, on
a pipe: what it printed and its exit code."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Mapping, Sequence


def run_shown(command: Sequence[str], env: Mapping[str, str], on_terminal: bool) -> tuple[int, str]:
    """``command``'s exit code and standard output: on a pseudo-terminal when
    ``on_terminal`` (where progress bars show), else on a pipe."""
    if not on_terminal:
        done = subprocess.run(command, capture_output=True, env=env, timeout=60)
        return done.returncode, done.stdout.decode()
    main_end, terminal = pty.openpty()
    try:
        process = subprocess.Popen(command, stdout=terminal, stderr=subprocess.DEVNULL, env=env)
        os.close(terminal)
        shown = b""
        while True:
            try:
                piece = os.read(main_end, 65536)
            except OSError:  # the terminal closed: the process has ended
                break
            if not piece:
                break
            shown += piece
        return process.wait(timeout=60), shown.decode(errors="replace")
    finally:
        os.close(main_end)
