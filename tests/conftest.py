"""Test-wide settings.

Hypothesis: locally every run explores new examples; under CI (`CI=true`) the examples are derived from each test's
name, so a landing run is reproducible and a red CI can be replayed exactly. Slow generation on a loaded machine is
not a failure (the too_slow health check is off); a failing example always prints its reproduction blob.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "local", suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True
)
settings.register_profile("ci", parent=settings.get_profile("local"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "local")
