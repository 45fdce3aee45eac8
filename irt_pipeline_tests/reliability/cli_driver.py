"""`irt-pipeline` for the fault tests: the real CLI, optionally with a slower EM.

    python -m irt_pipeline_tests.reliability.cli_driver [--slow-em SECONDS] calibrate --bank ...

``--slow-em`` sleeps that long after every EM iteration (the engine itself runs unchanged), so a
test can SIGKILL the process while it is certainly inside the calibration, on a bank small
enough to load in a moment.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    slow = 0.0
    if argv[:1] == ["--slow-em"]:
        slow, argv = float(argv[1]), argv[2:]
    if slow:
        from irt_pipeline.defs.calibration import assets

        engine = assets.calibrate_3pl

        def slow_engine(*args, progress=None, **kwargs):
            def tick(iteration: int, change: float, log_likelihood: float) -> None:
                if progress is not None:
                    progress(iteration, change, log_likelihood)
                time.sleep(slow)

            return engine(*args, progress=tick, **kwargs)

        assets.calibrate_3pl = slow_engine
    from irt_pipeline import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
