"""The scheduled check's schedule, read at synth: how long it can go between runs, and the heartbeat alarm for it.

EventBridge schedule expressions: `rate(N minute[s]|hour[s]|day[s])` and `cron(Minutes Hours Day-of-month Month
Day-of-week Year)` (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html). A cron is
read as the longest gap between two consecutive runs over a week, for the forms that repeat daily or weekly: any
Minutes and Hours (`*`, `n`, `a-b`, `a/n`, `*/n`, `a-b/n` and lists of them), Day-of-month `*` or `?`, Month `*`,
Day-of-week `*`, `?` or days (1-7 or SUN-SAT, ranges and lists), Year `*`. Anything else (a day of month, a month, `L`,
`W`, `#`) is a schedule the heartbeat cannot watch, and the app says so at synth.

CloudWatch limits (PutMetricAlarm): a period of 10, 20, 30 s or a multiple of 60 s; period x evaluation periods at most
one day for periods under an hour, at most seven days otherwise.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")
_UNIT_MINUTES = {"minute": 1, "hour": 60, "day": 1440}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
WEEK = 7 * 1440
DAY = 1440
MAX_PERIOD = DAY
"""The longest alarm period used: one day."""


class ScheduleError(ValueError):
    """A schedule expression that is malformed, or that the heartbeat alarm cannot watch."""


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat alarm for a schedule: `evaluation_periods` periods of `period_minutes` span two schedule
    intervals, so a fresh deploy, and any run arriving a little late, always has a run inside the window."""

    interval_minutes: int
    period_minutes: int
    evaluation_periods: int
    datapoints_to_alarm: int

    @property
    def window_minutes(self) -> int:
        return self.period_minutes * self.evaluation_periods


def interval_minutes(expression: str) -> int:
    """The longest time, in minutes, the schedule can go between two runs."""
    if rate := _RATE.match(expression):
        count = int(rate.group(1))
        if count < 1:
            raise ScheduleError("the rate must be at least 1")
        return count * _UNIT_MINUTES[rate.group(2).removesuffix("s")]
    cron = _CRON.match(expression)
    if not cron:
        raise ScheduleError(
            f"not an EventBridge schedule expression: {expression[:60]!r} "
            "(e.g. 'rate(15 minutes)' or 'cron(0/15 * * * ? *)')"
        )
    minutes, hours, day_of_month, month, day_of_week, year = cron.groups()
    if "?" not in (day_of_month, day_of_week):
        raise ScheduleError(f"in {expression!r} one of day-of-month and day-of-week must be '?' (EventBridge)")
    if day_of_month not in ("*", "?") or month != "*" or year != "*":
        raise ScheduleError(
            f"the heartbeat alarm cannot watch {expression!r}: give a schedule that runs daily or weekly "
            "(day-of-month '*' or '?', month '*', year '*')"
        )
    runs = sorted(
        day * DAY + hour * 60 + minute
        for day in _field(day_of_week, 1, 7, expression, names=_DAYS, every={"*", "?"})
        for hour in _field(hours, 0, 23, expression)
        for minute in _field(minutes, 0, 59, expression)
    )
    if not runs:
        raise ScheduleError(f"{expression!r} never runs")
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    return max([*gaps, runs[0] + WEEK - runs[-1]])


def heartbeat(expression: str) -> Heartbeat:
    """The heartbeat alarm's shape for `expression`, or `ScheduleError` if CloudWatch cannot watch it."""
    interval = interval_minutes(expression)
    period = min(interval, MAX_PERIOD)
    periods = math.ceil(2 * interval / period)
    limit = DAY if period < 60 else WEEK
    if period * periods > limit:
        raise ScheduleError(
            f"the heartbeat alarm cannot watch {expression!r}: it can go {_duration(interval)} between runs, and "
            f"CloudWatch watches at most {_duration(limit)}, so the check must run at least every "
            f"{_duration(limit // 2)}"
        )
    return Heartbeat(interval, period, periods, datapoints_to_alarm=2)


def _field(
    text: str,
    low: int,
    high: int,
    expression: str,
    *,
    names: dict[str, int] | None = None,
    every: frozenset[str] | set[str] = frozenset({"*"}),
) -> list[int]:
    if text in every:
        values = set(range(low, high + 1))
    else:
        values = set()
        for part in text.split(","):
            values |= _part(part, low, high, expression, names or {})
    # Day-of-week 1-7 (SUN-SAT) becomes a day offset 0-6; minutes and hours stay as they are.
    return sorted(v - 1 for v in values) if names else sorted(values)


def _part(part: str, low: int, high: int, expression: str, names: dict[str, int]) -> set[int]:
    def number(token: str) -> int:
        value = names.get(token.upper()) if names else None
        if value is None:
            if not token.isdigit():
                raise ScheduleError(f"the heartbeat alarm cannot watch {expression!r}: {token!r} is not supported")
            value = int(token)
        if not low <= value <= high:
            raise ScheduleError(f"in {expression!r} {value} is outside {low}-{high}")
        return value

    base, _, step_text = part.partition("/")
    step = number(step_text) if step_text and step_text.isdigit() and int(step_text) > 0 else None
    if step_text and step is None:
        raise ScheduleError(f"in {expression!r} the step {step_text!r} is not a positive number")
    if base == "*":
        start, end = low, high
    elif "-" in base:
        first, last = base.split("-", 1)
        start, end = number(first), number(last)
    else:
        start = number(base)
        end = high if step else start
    return set(range(start, end + 1, step or 1))


def _duration(minutes: int) -> str:
    days, rest = divmod(minutes, DAY)
    hours, mins = divmod(rest, 60)
    parts = [
        f"{days} day{'s' * (days != 1)}" if days else "",
        f"{hours} h" if hours else "",
        f"{mins} min" if mins else "",
    ]
    return " ".join(p for p in parts if p) or "0 min"
