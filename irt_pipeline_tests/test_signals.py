"""A process started with SIGINT ignored (cron, `cmd &`) gets the default interrupts back, so the
compute-log `tail` children Dagster starts stop on SIGTERM (irt_pipeline/signals.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

CHILD = """
import signal, subprocess
from irt_pipeline.signals import restore_default_interrupts
before = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
restore_default_interrupts()
signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))   # what Dagster does
child = subprocess.Popen(["sleep", "30"])
child.terminate()
print(before, child.wait(timeout=5))
"""


def test_an_inherited_ignored_sigint_is_undone():
    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    out = subprocess.run([sys.executable, "-c", CHILD], preexec_fn=ignore_sigint, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == ["True", str(-signal.SIGTERM)]  # it was ignored; the child now dies of SIGTERM
