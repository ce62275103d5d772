"""The deploy tests share one deployment per module (a real deploy costs tens of seconds). A test that tears it down
is marked `destroys` and runs after every other test of its module, wherever it is written, so a test added below it,
or a plugin that reorders, never meets a destroyed deployment."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "destroys: tears down its module's deployment; runs last in its module")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Called with the whole session's items: a no-op unless some test is marked."""
    if not any(item.get_closest_marker("destroys") for item in items):
        return
    modules: dict[object, int] = {}
    for item in items:
        modules.setdefault(getattr(item, "module", None), len(modules))
    # stable: the modules keep their order (one deployment each), and so do the other tests within each module
    items.sort(key=lambda item: (modules[getattr(item, "module", None)], bool(item.get_closest_marker("destroys"))))
