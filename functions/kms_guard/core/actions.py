"""The KMS IAM action catalogue and IAM wildcard matching over it.

IAM matches actions case-insensitively, with `*` (any run of characters) and `?` (one character), over the
whole `service:Action` string, service prefix included (`k?s:*` is a valid pattern). Brackets and other glob
syntax mean nothing to IAM, so `fnmatch` (which treats `[` specially) is not used.

The catalogue lists IAM action names, which are not always API names (`kms:ReEncryptFrom`/`kms:ReEncryptTo`
for the ReEncrypt API, `kms:SynchronizeMultiRegionKey`, which has no API). It is kept as data in
`kms_guard/data/kms_actions.json`, with its source and date; `scripts/update_kms_actions.py` regenerates it.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources


@functools.cache
def _catalogue() -> dict[str, str]:
    raw = resources.files("kms_guard").joinpath("data/kms_actions.json").read_text(encoding="utf-8")
    return {name.lower(): name for name in json.loads(raw)["actions"]}


def all_actions() -> tuple[str, ...]:
    """Every KMS IAM action, canonical case (`kms:Decrypt`)."""
    return tuple(sorted(_catalogue().values()))


def catalogue_source() -> str:
    raw = resources.files("kms_guard").joinpath("data/kms_actions.json").read_text(encoding="utf-8")
    doc = json.loads(raw)
    return f"{doc['source']} (retrieved {doc['retrieved']})"


def canonical(action: str) -> str | None:
    """The catalogue's spelling of a concrete action, or None if it is not a KMS action."""
    return _catalogue().get(action.lower())


@functools.lru_cache(maxsize=4096)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())
    return re.compile(body, re.DOTALL)


def matches(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern matches a concrete action (case-insensitive, `*` and `?`)."""
    return _pattern_regex(pattern).fullmatch(action.lower()) is not None


@functools.lru_cache(maxsize=4096)
def expand(pattern: str) -> frozenset[str]:
    """The catalogue actions a pattern matches (empty for another service's actions)."""
    regex = _pattern_regex(pattern)
    return frozenset(name for low, name in _catalogue().items() if regex.fullmatch(low))
