"""`wildcards.intersects_template` (bit-parallel) against a plain set simulation and against brute force.

The guard decides "no key ARN could match this Resource" offline with it, so a wrong "no" would make a Deny look
harmless. The reference below is the straightforward automaton simulation it replaced (one Python set of states per
character); brute force enumerates short texts of the template's shape and must never find a match it denies.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from kms_guard.core.wildcards import RUN, intersects_prefix, intersects_template, match

ALPHABET = "arnkmsey/:x*?"
FILL = "ax/"  # characters a RUN field may be made of in the brute force (never ':')


def reference(pattern: str, template: tuple[str | None, ...]) -> bool:
    while "**" in pattern:
        pattern = pattern.replace("**", "*")
    n = len(pattern)
    next_colon = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        next_colon[i] = i if pattern[i] == ":" else next_colon[i + 1]

    def close(states: set[int]) -> set[int]:
        out = set(states)
        for s in states:
            i = s
            while i < n and pattern[i] == "*":
                i += 1
                out.add(i)
        return out

    states = close({0})
    for piece in template:
        if piece is None:
            reach: set[int] = set()
            for s in states:
                if s >= n or pattern[s] == ":":
                    continue
                first = s if pattern[s] == "*" else s + 1
                last = next_colon[first] if first < n else n
                reach.update(range(first, last + 1))
            states = close(reach)
        else:
            for ch in piece:
                step = {s if pattern[s] == "*" else s + 1 for s in states if s < n and pattern[s] in ("*", "?", ch)}
                states = close(step)
        if not states:
            return False
    return any(s == n or pattern[s:].strip("*") == "" for s in states)


def brute_force(pattern: str, template: tuple[str | None, ...], longest_run: int = 2) -> bool:
    runs = [i for i, piece in enumerate(template) if piece is None]
    fillers = ["".join(p) for size in range(1, longest_run + 1) for p in itertools.product(FILL, repeat=size)]
    for choice in itertools.product(fillers, repeat=len(runs)):
        pieces = list(template)
        for index, text in zip(runs, choice, strict=True):
            pieces[index] = text
        if match(pattern, "".join(p for p in pieces if p is not None)):
            return True
    return False


patterns = st.text(alphabet=ALPHABET, max_size=14)
templates = st.lists(st.one_of(st.none(), st.text(alphabet="arnkmsey/:x", min_size=1, max_size=4)), max_size=4).map(
    tuple
)


@settings(max_examples=1000)
@given(patterns, templates)
def test_agrees_with_the_set_simulation(pattern: str, template: tuple[str | None, ...]) -> None:
    assert intersects_template(pattern, template) is reference(pattern, template)


@given(st.text(alphabet=ALPHABET, max_size=10), templates.filter(lambda t: sum(p is None for p in t) <= 2))
def test_never_denies_a_text_that_matches(pattern: str, template: tuple[str | None, ...]) -> None:
    if brute_force(pattern, template):
        assert intersects_template(pattern, template)


def test_star_then_literal_agrees() -> None:
    assert intersects_template("*a", ("a",)) is reference("*a", ("a",)) is True
    assert intersects_template("a*", (RUN,)) is reference("a*", (RUN,)) is True
    assert intersects_template("?:", (RUN, ":")) is reference("?:", (RUN, ":")) is True


def test_key_arn_shapes() -> None:
    key = ("arn:", RUN, ":kms:", RUN, ":", RUN, ":key/", RUN)
    assert intersects_template("arn:*", key)
    assert intersects_template("arn:aws:kms:*:*:key/*", key)
    assert intersects_template("arn:*?*?*?:key/x", key)
    assert not intersects_template("arn:*?*?*?:x:y:z1:key/x", key)  # five literal colons in the wrong places
    assert not intersects_template("arn:aws:s3:::bucket/*", key)
    assert not intersects_template("arn:aws:kms:*:*:alias/*", key)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab*?", max_size=6),
    st.text(alphabet="ab", max_size=4),
    st.booleans(),
)
def test_intersects_prefix_agrees_with_brute_force(pattern: str, prefix: str, rest_may_be_empty: bool) -> None:
    """(some, every) over the texts `prefix + x`: x up to a length past the pattern's, over the pattern's alphabet
    plus one character it never names (so a literal cannot stand in for "any character"). `some` is exact."""
    rests = ["".join(p) for size in range(len(pattern) + 2) for p in itertools.product("abc", repeat=size)]
    rests = [r for r in rests if r or rest_may_be_empty]
    outcomes = [match(pattern, prefix + r) for r in rests]
    some, every = intersects_prefix(pattern, prefix, rest_may_be_empty=rest_may_be_empty)
    assert some == any(outcomes)
    # `every` may stay False where it holds (`?*` after the prefix: UNKNOWN, never a wrong TRUE); never the reverse
    assert not every or all(outcomes)
    if "?" not in pattern:
        assert every == all(outcomes)
