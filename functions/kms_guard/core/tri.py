"""Three-valued (Kleene) logic for policy evaluation.

The guard evaluates a key policy for a principal it only partly knows: it knows the vendor's account,
but not the source IP, VPC or encryption context of the vendor's calls. A condition on those is neither
true nor false offline: it is UNKNOWN, and must never be rounded to "harmless".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Tri(enum.Enum):
    FALSE = 0
    UNKNOWN = 1
    TRUE = 2

    def __and__(self, other: Tri) -> Tri:
        return Tri(min(self.value, other.value))

    def __or__(self, other: Tri) -> Tri:
        return Tri(max(self.value, other.value))

    def __invert__(self) -> Tri:
        return Tri(2 - self.value)

    @staticmethod
    def of(value: bool) -> Tri:
        return Tri.TRUE if value else Tri.FALSE


def all_of(values: Iterable[Tri]) -> Tri:
    result = Tri.TRUE
    for value in values:
        result &= value
        if result is Tri.FALSE:
            break
    return result


def any_of(values: Iterable[Tri]) -> Tri:
    result = Tri.FALSE
    for value in values:
        result |= value
        if result is Tri.TRUE:
            break
    return result
