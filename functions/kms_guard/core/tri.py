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

    # Identity comparisons, not `.value` arithmetic: these run for every statement of every policy evaluated.
    def __and__(self, other: Tri) -> Tri:
        if self is FALSE or other is FALSE:
            return FALSE
        return UNKNOWN if self is UNKNOWN or other is UNKNOWN else TRUE

    def __or__(self, other: Tri) -> Tri:
        if self is TRUE or other is TRUE:
            return TRUE
        return UNKNOWN if self is UNKNOWN or other is UNKNOWN else FALSE

    def __invert__(self) -> Tri:
        return FALSE if self is TRUE else TRUE if self is FALSE else UNKNOWN

    @staticmethod
    def of(value: bool) -> Tri:
        return TRUE if value else FALSE


FALSE, UNKNOWN, TRUE = Tri.FALSE, Tri.UNKNOWN, Tri.TRUE


def all_of(values: Iterable[Tri]) -> Tri:
    result = TRUE
    for value in values:
        if value is FALSE:
            return FALSE
        if value is UNKNOWN:
            result = UNKNOWN
    return result


def any_of(values: Iterable[Tri]) -> Tri:
    result = FALSE
    for value in values:
        if value is TRUE:
            return TRUE
        if value is UNKNOWN:
            result = UNKNOWN
    return result
