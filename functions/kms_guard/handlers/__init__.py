"""Lambda entry points: thin switchboards around the Guard (parse, call, log, emit metrics).

Cold start. In a Lambda execution environment the cyclic garbage collector is off while the process initialises:
the imports, the settings and the AWS clients the first invocation creates are all objects that live as long as the
process, and the collector's repeated passes over them as they were allocated cost about an eighth of a cold start
(`make bench`, `cold_start_ratio`). When the first invocation ends, `end_of_initialisation` freezes what exists then
(moved out of the collector's sight for good: it is not garbage) and turns the collector back on for the garbage
invocations make. Outside Lambda (tests, the CLI, the demo) nothing changes.
"""

from __future__ import annotations

import gc
import os

_initialising = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and gc.isenabled()
if _initialising:
    gc.disable()


def end_of_initialisation() -> None:
    """Called when an invocation ends, however it ends; acts once."""
    global _initialising  # noqa: PLW0603 - one flag for the process, as gc's own state is
    if _initialising:
        _initialising = False
        gc.freeze()
        gc.enable()
