"""The lifecycle of a device and what "stalled" means: one definition for Python and SQL.

Lifecycle (Catalyst Center's words), derived from the workflow state, first
rule that matches wins (``RULES``):

* **Error**: ERROR or BOOTFLASH_NO_SPACE, or a Juniper ZTP error (parked);
* **Provisioned**: FINISHED (Juniper: ZTP_DONE, config and image, if it has one, fetched completely);
* **Unclaimed**: seen, serial not in the inventory;
* **Onboarding**: claimed and somewhere between step 1 and 12;
* **Planned**: in the inventory, never seen (no device row at all).

A device is *stalled* when it is parked or, not finished, has been silent for
longer than ``STALLED_AFTER`` seconds. ``lifecycle_of``/``is_stalled`` answer
for one row in Python; ``lifecycle_sql``/``stalled_sql`` build the same rules
as SQL expressions for lists and counts (tests/ops/test_lifecycle.py checks
that both agree).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, case, literal, not_, or_

from app.config import Config
from app.pnp import workflow as wf
from app.ztp import service as ztp


class Lifecycle(StrEnum):
    """Catalyst Center-like lifecycle of a device."""

    PLANNED = "Planned"
    UNCLAIMED = "Unclaimed"
    ONBOARDING = "Onboarding"
    PROVISIONED = "Provisioned"
    ERROR = "Error"


#: Parked states (Cisco workflow and Juniper ZTP): lifecycle Error, marked stalled.
PARKED = tuple(s.value for s in wf.PARKED) + (ztp.ZTP_ERROR,)
#: Done: the Cisco workflow finished, or a Juniper device fetched its config and (if any) image completely.
DONE = (wf.State.FINISHED.value, ztp.DONE)
#: Juniper ZTP progress: one of image/config fetched (1 of 2), both (2 of 2).
ZTP_PROGRESS = {ztp.FETCHING: 0, ztp.IMAGE_FETCHED: 1, ztp.CONFIG_FETCHED: 1, ztp.DONE: 2, ztp.ZTP_ERROR: 0}
#: ``(lifecycle, states or None, in the inventory or None)``: the first matching rule wins,
#: else Onboarding. None means "any".
RULES = ((Lifecycle.ERROR, PARKED, None),
         (Lifecycle.PROVISIONED, DONE, None),
         (Lifecycle.UNCLAIMED, None, False))


def lifecycle_of(state: str, in_inventory: bool) -> Lifecycle:
    """The lifecycle of a seen device (see ``RULES``)."""
    for lifecycle, states, inventory in RULES:
        if (states is None or state in states) and (inventory is None or in_inventory == inventory):
            return lifecycle
    return Lifecycle.ONBOARDING


def lifecycle_sql(state, in_inventory):
    """``RULES`` as an SQL CASE over a state column and a boolean "in the inventory" expression."""
    whens = []
    for lifecycle, states, inventory in RULES:
        conditions = []
        if states is not None:
            conditions.append(state.in_(states))
        if inventory is not None:
            conditions.append(in_inventory if inventory else not_(in_inventory))
        whens.append((and_(*conditions), literal(lifecycle.value)))
    return case(*whens, else_=literal(Lifecycle.ONBOARDING.value))


def silent_since(config: Config, now: datetime) -> datetime:
    """The last-contact time before which a device that is not done counts as stalled."""
    return now - timedelta(seconds=config.stalled_after)


def is_stalled(state: str, last_contact: datetime | None, config: Config, now: datetime) -> bool:
    """Parked, or not finished and silent longer than STALLED_AFTER seconds."""
    if state in PARKED:
        return True
    if state in DONE or last_contact is None:
        return False
    return last_contact < silent_since(config, now)


def stalled_sql(state, last_contact, config: Config, now: datetime):
    """``is_stalled`` as an SQL condition over a state and a last-contact column."""
    return or_(state.in_(PARKED),
               and_(state.not_in(DONE), last_contact < silent_since(config, now)))


def progress_of(state: str, failed_state: str | None = None) -> tuple[int, int]:
    """``(n, 13)`` for "step n of 13" (the step number comes from the workflow's table).

    An ERROR row counts the step that failed (``failed_state``, written by the
    workflow when it parks the device), not 0. Juniper ZTP rows count two
    steps: image and config fetched (either order).
    """
    if state in ZTP_PROGRESS:
        return ZTP_PROGRESS[state], 2
    if state == wf.State.ERROR.value and failed_state:
        state = failed_state
    try:
        return wf.STEP_NUMBER[wf.State(state)], wf.TOTAL_STEPS
    except ValueError:
        return 0, wf.TOTAL_STEPS
