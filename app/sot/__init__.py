"""Source of truth: inventory, day-0 variables, DHCP reservations and status from NetBox or Nautobot.

* ``mapping``: pure mapping from a source's device JSON to :class:`SotDevice` (field map);
* ``sources``: the sources behind one interface (CSV, NetBox via pynetbox, Nautobot via pynautobot);
* ``sync``: the inventory table follows the source (idempotent, with history);
* ``writeback``: status and journal/note write-back through a queue table;
* ``webhook``: HMAC-verified webhooks that re-sync a device (and push Kea).

docs/source-of-truth.md describes the settings and the status flow.
"""
