"""The training progress bar: by steps, or by time when a time budget (``--minutes``) bounds the session.

With ``--minutes`` the step total is often a placeholder (the demo asks for 10**9 steps and stops on time), so
the bar then fills with the session's training time and reads ``elapsed/budget``, the step count beside it.
"""

from __future__ import annotations

import sys
from typing import IO

from tqdm import tqdm


def _clock(seconds: float) -> str:
    return tqdm.format_interval(max(seconds, 0.0))


class RunProgress:
    """One bar for one session: ``update`` after every step with the step reached and the session's time so far."""

    def __init__(self, total_steps: int, start_step: int, minutes: float | None, enabled: bool,
                 file: IO[str] | None = None):
        self.total_steps = total_steps
        self.budget_s = None if minutes is None else minutes * 60.0
        self.step = start_step
        if self.budget_s is None:
            self.bar = tqdm(total=total_steps, initial=start_step, disable=not enabled, desc="train",
                            dynamic_ncols=True, file=file or sys.stderr)
        else:
            self.bar = tqdm(total=self.budget_s, initial=0.0, disable=not enabled, desc="train", dynamic_ncols=True,
                            file=file or sys.stderr, bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")
            self.bar.set_postfix_str(self._time_text(0.0, {}), refresh=False)

    def _time_text(self, elapsed_s: float, losses: dict[str, str]) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in losses.items())
        text = f"{_clock(elapsed_s)}/{_clock(self.budget_s)} train time, step {self.step}"
        return f"{text}, {shown}" if shown else text

    def update(self, step: int, session_s: float, losses: dict[str, str]) -> None:
        """After a step: ``step`` completed steps, ``session_s`` seconds of this session, ``losses`` to show."""
        advanced, self.step = step - self.step, step
        if self.budget_s is None:
            self.bar.update(advanced)
            self.bar.set_postfix(losses)
            return
        self.bar.n = min(session_s, self.budget_s)
        self.bar.set_postfix_str(self._time_text(session_s, losses))

    def close(self) -> None:
        self.bar.close()


__all__ = ["RunProgress"]
