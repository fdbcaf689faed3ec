"""The training progress bar of ``python -m training``: step N/total, elapsed, ETA, tokens/s and loss.

A ``TrainerCallback``: only the main process draws it. It turns on the Trainer's count of non-padding
input tokens (``include_num_input_tokens_seen``), gathered over every process, for tokens/s. On a
terminal the bar redraws in place (at most every ``interval`` seconds); elsewhere (a log file, CI) it
writes one plain line every ``interval`` seconds and at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from transformers import TrainerCallback


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def progress_line(step: int, total: int, elapsed: float, tokens: int, loss: float | None, width: int = 24) -> str:
    """``[#####-----] 40/100 40% 00:12<00:18 1,234 tok/s loss 2.345``: ETA from the mean step time so far."""
    total = max(total, 1)
    done = min(step, total) / total
    filled = int(width * done)
    eta = elapsed / step * (total - step) if step else None
    rate = tokens / elapsed if elapsed > 0 else 0.0
    parts = [
        f"[{'#' * filled}{'-' * (width - filled)}] {step}/{total} {done:4.0%}",
        f"{_clock(elapsed)}<{_clock(eta) if eta is not None else '?'}",
        f"{rate:,.0f} tok/s",
    ]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    return " ".join(parts)


class ProgressBar(TrainerCallback):
    """Draws ``progress_line`` on ``stream`` (stderr) while the Trainer runs."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 30.0)
        self.start = 0.0
        self.first_step = 0
        self.first_tokens = 0
        self.last_drawn = 0.0
        self.loss: float | None = None
        self.lines: list[str] = []  # what was drawn (tests read it)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if getattr(args, "include_num_input_tokens_seen", "no") in ("no", False):
            args.include_num_input_tokens_seen = "non_padding"
        self.start = self.last_drawn = time.perf_counter()
        self.first_step = state.global_step  # a resumed run: ETA and rate from this session's steps
        self.first_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.perf_counter()
        if now - self.last_drawn >= self.interval:
            self.draw(state, final=False)
            self.last_drawn = now

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.draw(state, final=True)

    def draw(self, state: Any, final: bool) -> None:
        if not getattr(state, "is_world_process_zero", True):
            return
        elapsed = time.perf_counter() - self.start
        steps = state.global_step - self.first_step
        total = max(int(state.max_steps or 0) - self.first_step, steps)
        tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0) - self.first_tokens
        line = progress_line(steps, total, elapsed, tokens, self.loss)
        if self.first_step:
            line += f" (resumed at step {self.first_step})"
        self.lines.append(line)
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
