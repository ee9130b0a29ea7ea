"""Campaign schedules: when a scheduled campaign is due, as pure functions (no I/O, no clock).

A campaign's ``schedule`` (:class:`sluice.contracts.campaign.CampaignSchedule`) is a
five-field cron expression in UTC. The orchestrator calls :func:`due` on each tick with
the scheduled time of the campaign's last run (``None`` if it never ran: times count from
the campaign's creation) and the current time. The scheduled times in ``(last, now]`` are
due; the lower end is exclusive, the upper end inclusive (a tick at exactly 06:00 runs the
06:00 time).

Missed-run policy, for when several times are due at once (the orchestrator was down):

* ``run_once`` (the default): one run for all of them, under the latest of those times;
  the earlier ones are folded into it.
* ``skip``: the latest time runs only if it is at most :data:`GRACE` old (a tick that is
  merely late, not an outage); otherwise nothing runs now and the campaign waits for its
  next time. The caller records the missed times as skipped (:func:`missed_times` lists
  them) and moves its cursor to the latest, so they are not reported again.

A run started for a scheduled time is named by :func:`scheduled_run_id`, so a time is run
at most once however often the orchestrator restarts: starting the same run id twice is
refused downstream.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter

from sluice.runids import check_run_id

GRACE = timedelta(minutes=5)
"""Under ``skip``, how late a scheduled time may still be run (a late tick, not an outage)."""

MAX_MISSED = 1000
"""At most this many missed times are listed by :func:`missed_times` (the latest ones)."""

_MINUTE = timedelta(minutes=1)


def _utc(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name}: an aware datetime is needed, got naive {when.isoformat()}")
    return when.astimezone(UTC)


def next_time(cron: str, after: datetime) -> datetime:
    """The first scheduled time strictly after ``after`` (aware; the answer is in UTC)."""
    start = _utc(after, "after")
    found: datetime = croniter(cron, start).get_next(datetime)
    return found.astimezone(UTC)


def _latest(cron: str, start: datetime, now: datetime) -> datetime | None:
    """The latest scheduled time in ``(start, now]``, or None."""
    # Cron has minute resolution: from the start of the minute after ``now``, the previous
    # time is the latest one at or before ``now``.
    ceiling = now.replace(second=0, microsecond=0) + _MINUTE
    found: datetime = croniter(cron, ceiling).get_prev(datetime)
    found = found.astimezone(UTC)
    return found if start < found <= now else None


def _start(last: datetime | None, created: datetime) -> datetime:
    return _utc(last, "last") if last is not None else _utc(created, "created")


def missed_times(
    cron: str, last: datetime | None, now: datetime, created: datetime
) -> list[datetime]:
    """Every scheduled time in ``(last, now]`` (from ``created`` when ``last`` is None),
    oldest first, in UTC; only the latest :data:`MAX_MISSED` when there are more.

    This includes the time :func:`due` returns, if any: under ``run_once`` the others are
    the times folded into that run; under ``skip`` they were skipped (all of them when
    :func:`due` returns None)."""
    start, now = _start(last, created), _utc(now, "now")
    latest = _latest(cron, start, now)
    if latest is None:
        return []
    times = [latest]
    back = croniter(cron, latest)
    while len(times) < MAX_MISSED:
        earlier: datetime = back.get_prev(datetime)
        earlier = earlier.astimezone(UTC)
        if earlier <= start:
            break
        times.append(earlier)
    times.reverse()
    return times


def due(
    cron: str, missed: str, last: datetime | None, now: datetime, created: datetime
) -> datetime | None:
    """The scheduled time to run now, or None (see the module's missed-run policy).

    ``last``: the scheduled time of the last run started (None if it never ran: times
    count from ``created``); ``missed``: ``run_once`` or ``skip``. All aware datetimes;
    the answer is in UTC."""
    if missed not in ("run_once", "skip"):
        raise ValueError(f"missed: {missed!r} is not a missed-run policy (run_once or skip)")
    start, now = _start(last, created), _utc(now, "now")
    latest = _latest(cron, start, now)
    if latest is None:
        return None
    if missed == "skip" and now - latest > GRACE:
        return None
    return latest


def scheduled_run_id(campaign_id: str, at: datetime) -> str:
    """The run id of the campaign's run for the scheduled time ``at``: the same for the
    same time, whoever asks (``spring-boots-20260302T0600Z``)."""
    return check_run_id(f"{campaign_id}-{_utc(at, 'at'):%Y%m%dT%H%MZ}")
