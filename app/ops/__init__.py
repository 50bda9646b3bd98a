"""The operator layer: what the dashboard, the JSON API and the CLI do, written once.

* app/ops/lifecycle.py: lifecycle and "stalled", for Python and SQL alike;
* app/ops/queries.py: device lists, one device's story, day-0 previews;
* app/ops/actions.py: resume, retry, reset, claim, delete (under the row lock);
* app/ops/inventory.py: inventory CSV import and listing;
* app/ops/auth.py: operator login and API token (Flask request side).

The names below are the layer's interface (``from app import ops as op``).
"""

from app.ops.actions import accept_source, claim, delete_device, failed_step, reset, resume, retry
from app.ops.errors import ActionError, NotFound
from app.ops.inventory import MAX_CSV_BYTES, ImportResult, import_inventory, list_inventory
from app.ops.lifecycle import DONE, PARKED, Lifecycle, is_stalled, lifecycle_of, progress_of
from app.ops.queries import (
    MAX_PAGE,
    MAX_PER_PAGE,
    SORT_COLUMNS,
    DevicePage,
    DeviceQuery,
    counts_by_state,
    device_summary,
    get_device,
    list_devices,
    preview_day0,
    render_day0,
)
from app.ops.retention import AutoPrune, PruneResult, prune

__all__ = [
    "DONE", "MAX_CSV_BYTES", "AutoPrune", "PruneResult", "accept_source", "prune",
    "MAX_PAGE", "MAX_PER_PAGE", "PARKED", "SORT_COLUMNS", "ActionError", "DevicePage",
    "DeviceQuery", "ImportResult", "Lifecycle", "NotFound", "claim", "counts_by_state", "delete_device",
    "device_summary", "failed_step", "get_device", "import_inventory", "is_stalled", "lifecycle_of",
    "list_devices", "list_inventory", "preview_day0", "progress_of", "render_day0", "reset", "resume",
    "retry",
]
