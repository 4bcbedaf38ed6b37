"""Being stopped from outside: Ctrl-C (SIGINT) and `kill` (SIGTERM) end a command-line run the same
way, in one line and with the shell's exit status. Standard library only: the backend's command
line and the extension's batch share it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM: stopped as by Ctrl-C (not an Exception, so that no error handler swallows it on
    its way out)."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated in the block (in the main thread only, where Python runs signal
    handlers; elsewhere nothing changes); the earlier handler is put back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
