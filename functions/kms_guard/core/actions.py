"""The KMS IAM action catalogue and IAM wildcard matching over it.

IAM matches actions case-insensitively, with `*` (any run of characters) and `?` (one character), over the
whole `service:Action` string, service prefix included (`k?s:*` is a valid pattern). Brackets and other glob
syntax mean nothing to IAM, so `fnmatch` (which treats `[` specially) is not used, and neither is a regular
expression: `core/wildcards.py` matches in bounded time whatever the pattern
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html).

Action names are ASCII, so case is folded in ASCII only: `str.lower` would turn a lookalike such as the Kelvin sign
(`kms:DecryptK` with U+212A) into an ASCII letter and match an action AWS never matches. A pattern with a
non-ASCII character matches no action.

The catalogue lists IAM action names, which are not always API names (`kms:ReEncryptFrom`/`kms:ReEncryptTo`
for the ReEncrypt API, `kms:SynchronizeMultiRegionKey`, which has no API). It is kept as data in
`kms_guard/data/kms_actions.json`, with its source and date; `scripts/update_kms_actions.py` regenerates it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from kms_guard.core.wildcards import ascii_lower, compile_glob
from kms_guard.core.wildcards import match as glob_match


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
    if not action.isascii():
        return None
    return _catalogue().get(ascii_lower(action))


def matches(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern matches a concrete action (ASCII case-insensitive, `*` and `?`)."""
    if not pattern.isascii() or not action.isascii():
        return False
    return glob_match(ascii_lower(pattern), ascii_lower(action))


@functools.lru_cache(maxsize=4096)
def covers(pattern: str, wanted: frozenset[str]) -> frozenset[str]:
    """The actions of `wanted` (catalogue spelling) a pattern matches: what the evaluator needs, cheaper than
    expanding the pattern over the whole catalogue."""
    if not pattern.isascii():
        return frozenset()
    glob = compile_glob(ascii_lower(pattern))
    return frozenset(name for name in wanted if glob_match(glob, ascii_lower(name)))


@functools.lru_cache(maxsize=4096)
def expand(pattern: str) -> frozenset[str]:
    """The catalogue actions a pattern matches (empty for another service's actions or a non-ASCII pattern)."""
    if not pattern.isascii():
        return frozenset()
    glob = compile_glob(ascii_lower(pattern))
    return frozenset(name for low, name in _catalogue().items() if glob_match(glob, low))
