"""Start-up work that overlaps other start-up work: :func:`in_background`.

The relevance stage runs in its own process (iNNvestigate needs graph mode); while it works
the job builds and traces the stylizer. A thread waits on the child process (the GIL is free
while it waits), and :meth:`Background.result` hands back its value or re-raises its error in
the caller's thread, so errors stay one line (``cli.entry_point``).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable


class Background:
    """One call running in a daemon thread (a Ctrl-C of the job does not wait for it)."""

    def __init__(self, fn: Callable[[], Any], name: str):
        self._value: Any = None
        self._error: BaseException | None = None
        self.started = time.perf_counter()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc
        finally:
            self.finished = time.perf_counter()

    def result(self) -> Any:
        """The call's return value, after waiting for it; its exception is raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def in_background(fn: Callable[[], Any], name: str = "background") -> Background:
    """Start ``fn()`` in a thread now; ``.result()`` waits for it."""
    return Background(fn, name)
