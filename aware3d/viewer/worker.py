"""The viewer's render thread: the latest settings first as a quick preview, then in full once they settle.

The browser sends camera updates many times a second while the user drags; rendering each in full would queue
seconds of work on a CPU. The worker keeps only the latest submitted state: it renders it at once as a preview,
and renders it in full when no newer state has arrived for ``settle`` seconds (a debounce). A state submitted
while a frame renders replaces any waiting one, so the display never lags behind by more than one frame.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, Hashable


def next_job(latest: Hashable | None, since: float, shown: tuple[Hashable, bool] | None, now: float, settle: float,
             previews: bool) -> tuple[tuple[Hashable, bool] | None, float | None]:
    """What the worker does next: ((state, preview?) to render, or None; seconds to wait before asking again,
    or None to wait for a new state).

    Args:
        latest: the latest submitted state (None before the first).
        since: when it was submitted (monotonic seconds).
        shown: (state, preview?) of the last frame rendered, or None.
        now: the current monotonic time.
        settle: seconds without a new state before the full render.
        previews: whether previews are rendered at all (False: every state is rendered in full at once).
    """
    if latest is None or shown == (latest, False):
        return None, None
    quiet = now - since
    if not previews or quiet >= settle:
        return (latest, False), None
    if shown == (latest, True):
        return None, settle - quiet
    return (latest, True), None


class RenderWorker:
    """A daemon thread calling ``render(state, preview)`` then ``publish(result)`` for the states :meth:`submit`
    hands it (see the module docstring); an exception in either goes to ``on_error(exception, traceback)`` and
    the thread carries on with the next state."""

    def __init__(self, render: Callable[[Any, bool], Any], publish: Callable[[Any], None], *, settle: float = 0.3,
                 previews: bool = True, on_error: Callable[[BaseException, str], None] | None = None):
        self._render, self._publish, self._on_error = render, publish, on_error
        self.settle, self.previews = settle, previews
        self._cond = threading.Condition()
        self._latest: Hashable | None = None
        self._since = 0.0
        self._shown: tuple[Hashable, bool] | None = None
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="aware3d-view-render", daemon=True)
        self._thread.start()

    def submit(self, state: Hashable) -> None:
        """Make ``state`` the one to show (a preview now, in full once it settles)."""
        with self._cond:
            if state != self._latest:
                self._latest, self._since = state, time.monotonic()
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until the latest state has been rendered in full (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or (self._latest is not None and self._shown != (self._latest, False)):
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after the frame it is rendering."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> tuple[Hashable, bool] | None:
        """Wait for the next job (None once stopped)."""
        with self._cond:
            while not self._stopped:
                job, wait = next_job(self._latest, self._since, self._shown, time.monotonic(), self.settle,
                                     self.previews)
                if job is not None:
                    self._busy = True
                    return job
                self._cond.wait(wait)
        return None

    def _loop(self) -> None:
        while (job := self._take()) is not None:
            state, preview = job
            try:
                self._publish(self._render(state, preview))
            except Exception as e:  # a bad setting must not kill the viewer: report it and go on
                if self._on_error is not None:
                    self._on_error(e, traceback.format_exc())
            with self._cond:
                self._shown, self._busy = job, False
                self._cond.notify_all()


__all__ = ["RenderWorker", "next_job"]
