"""The operator layer: what the dashboard, the JSON API and the CLI do, written once.

* app/ops/lifecycle.py: lifecycle and "stalled", for Python and SQL alike;
* app/ops/queries.py: device lists, one device's story, day-0 previews;
* app/ops/actions.py: resume, retry, reset, claim, delete (under the row lock);
* app/ops/inventory.py: inventory CSV import and listing;
* app/ops/accounts.py: users, roles, password hashes, server-side sessions, API tokens;
* app/ops/ratelimit.py: shared rate-limit counters (database, redis or memory);
* app/ops/audit.py: the audit log;
* app/ops/bulk.py: actions by name on one or many devices, audited;
* app/ops/auth.py: the Flask request side (Flask-Login, bearer tokens, roles).

The names below are the layer's interface (``from app import ops as op``).
"""

from app.ops.actions import accept_source, claim, delete_device, failed_step, reset, resume, retry
from app.ops.audit import list_audit, record, to_csv
from app.ops.bulk import BULK_ACTIONS, Actor, BulkResult, act, bulk
from app.ops.errors import ActionError, Conflict, NotFound
from app.ops.inventory import (
    MAX_CSV_BYTES,
    ImportResult,
    delete_item,
    get_item,
    import_inventory,
    inventory_counts,
    list_inventory,
    update_item,
)
from app.ops.lifecycle import DONE, PARKED, Lifecycle, is_stalled, lifecycle_of, progress_of
from app.ops.queries import (
    EXPORT_COLUMNS,
    FILTERS,
    HISTORY_COLUMNS,
    MAX_PAGE,
    MAX_PER_PAGE,
    SORT_COLUMNS,
    DevicePage,
    DeviceQuery,
    counts_by_state,
    device_history,
    device_summary,
    filter_choices,
    get_device,
    iter_devices,
    list_devices,
    preview_day0,
    render_day0,
)
from app.ops.retention import AutoPrune, PruneResult, prune

__all__ = [
    "BULK_ACTIONS", "HISTORY_COLUMNS", "Actor", "BulkResult", "act", "bulk", "device_history",
    "list_audit", "record", "to_csv", "EXPORT_COLUMNS", "FILTERS", "filter_choices", "iter_devices",
    "delete_item", "get_item", "inventory_counts", "update_item",
    "DONE", "MAX_CSV_BYTES", "AutoPrune", "PruneResult", "accept_source", "prune",
    "MAX_PAGE", "MAX_PER_PAGE", "PARKED", "SORT_COLUMNS", "ActionError", "Conflict", "DevicePage",
    "DeviceQuery", "ImportResult", "Lifecycle", "NotFound", "claim", "counts_by_state", "delete_device",
    "device_summary", "failed_step", "get_device", "import_inventory", "is_stalled", "lifecycle_of",
    "list_devices", "list_inventory", "preview_day0", "progress_of", "render_day0", "reset", "resume",
    "retry",
]
