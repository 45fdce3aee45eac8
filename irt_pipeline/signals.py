"""Undo an inherited SIG_IGN of SIGINT/SIGTERM before Dagster runs anything.

A process started in the background by a non-interactive shell (cron, `cmd &`, nohup) inherits
SIGINT ignored. Dagster maps SIGTERM to SIGINT's handler (dagster._utils.interrupts), so SIGTERM
becomes ignored too, and every child inherits that: the `tail -F` processes that capture a
run's compute logs then survive Dagster's terminate(), which waits 30 s and raises
TimeoutExpired, failing a calibration that had finished. Python's default handlers restore the
usual behaviour (Ctrl-C and SIGTERM stop the process and its children).
"""

from __future__ import annotations

import signal
import threading


def restore_default_interrupts() -> None:
    """SIGINT to Python's default handler and SIGTERM to the default action, where they were
    inherited as ignored. Only the main thread may set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
