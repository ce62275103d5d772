"""Lambda entry points: thin switchboards around the Guard (parse, call, log, emit metrics).

Cold start. In a Lambda execution environment the cyclic garbage collector is off while the process initialises:
the imports, the settings and the AWS clients the first invocation creates are all objects that live as long as the
process, and the collector's repeated passes over them as they were allocated cost about an eighth of a cold start
(`make bench`, `cold_start_ratio`). When the first invocation ends, `end_of_initialisation` freezes what exists then
(moved out of the collector's sight for good: it is not garbage) and turns the collector back on for the garbage
invocations make. Outside Lambda (tests, the CLI, the demo) nothing changes.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

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


def ends_initialisation(handler: Callable[P, R]) -> Callable[P, R]:
    """Every Lambda entry point ends the initialisation when its invocation ends, however it ends (a function whose
    first invocation fails must not run on without a garbage collector)."""

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        finally:
            end_of_initialisation()

    wrapper.ends_initialisation = True  # type: ignore[attr-defined]  # what a test of every entry point looks for
    return wrapper
