"""Stopping cleanly on SIGTERM (a preempted TPU VM or spot instance) or Ctrl-C, at an agreed step.

One process: a signal sets a flag that the loop reads after each step. Several processes: JAX's
preemption sync point (the coordination service sees the SIGTERM of any process and every process
answers True at the same step), so all of them save the same step together; Ctrl-C (SIGINT) on any
process is passed to it as a SIGTERM of that process, so it is agreed the same way.
"""

from __future__ import annotations

import os
import signal
import threading

import jax
from jax.experimental import multihost_utils


class StopRequest:
    """Context manager: `requested(step)` is True once the run should checkpoint and return."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            # With several processes JAX's own SIGTERM handler feeds the sync point: leave it in
            # place.
            signals = (
                (signal.SIGINT,) if jax.process_count() > 1 else (signal.SIGTERM, signal.SIGINT)
            )
            for sig in signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum
        if (
            jax.process_count() > 1
        ):  # Ctrl-C on one process: tell the coordination service, as SIGTERM does
            os.kill(os.getpid(), signal.SIGTERM)

    def requested(self, step: int) -> bool:
        """Whether to checkpoint and stop after `step`; with several processes, the same answer in
        all."""
        if jax.process_count() > 1:
            if not multihost_utils.reached_preemption_sync_point(step):
                return False
            self.signal = self.signal or signal.SIGTERM
        return self.signal is not None

    @property
    def signal_name(self) -> str:
        """The signal's name (SIGTERM, SIGINT), for the stop message."""
        return signal.Signals(self.signal).name if self.signal is not None else "none"

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
