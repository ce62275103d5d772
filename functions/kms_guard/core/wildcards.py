"""IAM wildcards (`*` any run of characters, `?` exactly one) without backtracking regular expressions.

IAM matches `*` and `?` in actions, resources and the `...Like` condition operators
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html). In `Resource`
they match across `:` (`arn:*` matches every ARN); for the `Arn*` condition operators the evaluator also globs each
ARN component apart (`evaluate.arn_like`). No other character is special.

A hostile policy can hold a pattern such as `kms:**********x`. Translated into a regular expression (`.*.*.*...x`)
and run by Python's backtracking engine, that takes exponential time on a text that does not match. Here a pattern is
split at its stars into star-free segments; the first segment is anchored at the start, the last at the end and the
middle ones are placed leftmost, one after the other (the leftmost placement of a fixed-length segment is never worse
than a later one, so no step is ever undone). Each segment search is `str.find`, or, when the segment holds `?`, a
scan over a fixed-length window: the whole match costs O(len(pattern) * len(text)) at worst, and a pattern with more
literal characters than the text is rejected before any search.

`intersects_prefix` answers "could this pattern match some text that starts with this prefix": the guard uses it for
values it only partly knows (the vendor's principal ARN, a key ARN offline).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_FOLD = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())


def ascii_lower(text: str) -> str:
    """Lower-case A-Z only. `str.lower` also folds non-ASCII lookalikes (the Kelvin sign `K` becomes `k`)."""
    return text.translate(_ASCII_FOLD)


@dataclass(frozen=True)
class Glob:
    """A compiled wildcard pattern: the star-free segments between its stars."""

    segments: tuple[str, ...]
    """The pattern split at `*` (runs of stars collapsed). One segment: no star at all."""
    literal_length: int
    """How many characters a matching text needs at least (every non-star character stands for exactly one)."""

    @property
    def has_star(self) -> bool:
        return len(self.segments) > 1


@functools.lru_cache(maxsize=8192)
def compile_glob(pattern: str) -> Glob:
    segments = tuple(pattern.split("*"))
    # Runs of stars leave empty middle segments: drop them (keep the first and last, which anchor the ends).
    if len(segments) > 2:
        segments = (segments[0], *(s for s in segments[1:-1] if s), segments[-1])
    return Glob(segments, sum(len(s) for s in segments))


def _segment_at(segment: str, text: str, at: int) -> bool:
    """Whether a star-free segment matches `text` exactly at position `at`."""
    if at < 0 or at + len(segment) > len(text):
        return False
    if "?" not in segment:
        return text.startswith(segment, at)
    return all(p == "?" or p == text[at + i] for i, p in enumerate(segment))


def _find(segment: str, text: str, start: int, end: int) -> int:
    """The leftmost position >= start where `segment` fits entirely before `end`, or -1."""
    if "?" not in segment:
        return text.find(segment, start, end)
    # Anchor the search on the longest literal run of the segment, then verify the window around it.
    pieces = segment.split("?")
    longest = max(range(len(pieces)), key=lambda i: len(pieces[i]))
    anchor = pieces[longest]
    offset = sum(len(p) + 1 for p in pieces[:longest])
    last_start = end - len(segment)
    if not anchor:
        return start if start <= last_start else -1  # all `?`: any window fits
    at = start
    while at <= last_start:
        hit = text.find(anchor, at + offset, last_start + offset + len(anchor))
        if hit < 0:
            return -1
        candidate = hit - offset
        if _segment_at(segment, text, candidate):
            return candidate
        at = candidate + 1
    return -1


def match(pattern: str | Glob, text: str) -> bool:
    """Whether `text` matches the wildcard pattern (case-sensitive; fold both sides first for case-insensitive)."""
    glob = compile_glob(pattern) if isinstance(pattern, str) else pattern
    if glob.literal_length > len(text):
        return False
    segments = glob.segments
    if len(segments) == 1:
        return len(text) == glob.literal_length and _segment_at(segments[0], text, 0)
    first, last = segments[0], segments[-1]
    if not _segment_at(first, text, 0) or not _segment_at(last, text, len(text) - len(last)):
        return False
    at, end = len(first), len(text) - len(last)
    for segment in segments[1:-1]:
        found = _find(segment, text, at, end)
        if found < 0:
            return False
        at = found + len(segment)
    return True


def _collapse(pattern: str) -> str:
    """Runs of stars as one star (the same language; keeps the set simulations linear in the pattern)."""
    return "*".join(compile_glob(pattern).segments) if "**" in pattern else pattern


def is_universal(pattern: str) -> bool:
    """Whether the pattern matches every text (it is made of stars only)."""
    return bool(pattern) and pattern.strip("*") == ""


def intersects_prefix(pattern: str, prefix: str, *, rest_may_be_empty: bool = True) -> tuple[bool, bool]:
    """For the texts `prefix + x` (any x): (some of them match the pattern, all of them do).

    A set simulation of the pattern's automaton over the known prefix; the pattern then needs only to accept some
    (or every) continuation. Cost O(len(prefix) * len(pattern)) at worst: the prefixes are the guard's own (an IAM
    ARN head, an organization path), short; a pattern is a condition value, bounded only by the policy's size.
    """
    glob_chars = _collapse(pattern)
    n = len(glob_chars)

    def close(states: set[int]) -> set[int]:
        out = set(states)
        for s in states:
            i = s
            while i < n and glob_chars[i] == "*":
                i += 1
                out.add(i)
        return out

    states = close({0})
    for ch in prefix:
        step: set[int] = set()
        for s in states:
            if s < n:
                p = glob_chars[s]
                if p == "*":
                    step.add(s)
                elif p in ("?", ch):
                    step.add(s + 1)
        if not step:
            return False, False
        states = close(step)
    # Any remaining pattern accepts some continuation (choose the characters it names); the empty one only if the
    # pattern is at its end.
    some = any(s < n or rest_may_be_empty for s in states) if states else False
    stars_only_from = len(glob_chars.rstrip("*"))  # from this position on only stars remain
    every = any(stars_only_from <= s < n for s in states)
    return some, every


RUN = None
"""In a template: one or more characters other than `:` (an ARN field the caller does not know)."""


@dataclass(frozen=True)
class _Automaton:
    """A collapsed pattern's positions as bits of an int (bit i: "matched the pattern up to position i")."""

    n: int
    stars: int
    """Bits of the positions holding `*`."""
    any_char: int
    """Bits of the positions holding `?`."""
    by_char: dict[str, int]
    """Bits of the positions holding each literal character."""
    colon_fill: tuple[int, ...]
    """For a position i: the bits i..next literal ':' (or n), the positions a run of non-colon text can reach."""
    non_colon: int
    """Bits of the positions holding a literal other than ':'."""


@functools.lru_cache(maxsize=4096)
def _automaton(pattern: str) -> _Automaton:
    pattern = _collapse(pattern)
    n = len(pattern)
    stars = any_char = 0
    by_char: dict[str, int] = {}
    for i, p in enumerate(pattern):
        if p == "*":
            stars |= 1 << i
        elif p == "?":
            any_char |= 1 << i
        else:
            by_char[p] = by_char.get(p, 0) | (1 << i)
    fill = [0] * (n + 1)
    fill[n] = 1 << n
    for i in range(n - 1, -1, -1):
        fill[i] = (1 << i) if pattern[i] == ":" else (1 << i) | fill[i + 1]
    non_colon = sum(bits for ch, bits in by_char.items() if ch != ":")
    return _Automaton(n, stars, any_char, by_char, tuple(fill), non_colon)


def intersects_template(pattern: str, template: tuple[str | None, ...]) -> bool:
    """Whether some text of the template's shape (literal pieces and `RUN` fields) matches the pattern.

    The pattern's automaton run on all its states at once, as the bits of an int (shift-and): a literal character
    advances every state whose position holds it or `?` and keeps every `*`; a `RUN` field (one or more characters
    other than `:`, chosen freely) takes each state as far as the pattern's next literal `:`. A few integer operations
    per character, so a policy full of such patterns stays cheap; exact for that template, so "no key ARN could
    match" is decided, never guessed.
    """
    auto = _automaton(pattern)
    n, stars = auto.n, auto.stars
    accept_all = (1 << (n + 1)) - 1

    def close(states: int) -> int:
        return states | ((states & stars) << 1)  # skip a star (runs of stars are collapsed: one shift is enough)

    states = close(1)
    for piece in template:
        if piece is None:
            # one character first: a `*` keeps its place, `?` or a literal other than ':' moves one on
            first = (states & stars) | ((states & ~stars & (auto.any_char | auto.non_colon)) << 1)
            reach = 0
            while first:
                low = first & -first
                reach |= auto.colon_fill[low.bit_length() - 1]
                first ^= low
            states = close(reach & accept_all)
        else:
            for ch in piece:
                states = close(((states & (auto.by_char.get(ch, 0) | auto.any_char)) << 1) | (states & stars))
                if not states:
                    return False
        if not states:
            return False
    tail_stars = 0  # states from which only stars remain: they accept the empty rest
    position = n
    tail_stars |= 1 << position
    while position > 0 and (stars >> (position - 1)) & 1:
        position -= 1
        tail_stars |= 1 << position
    return bool(states & tail_stars)
