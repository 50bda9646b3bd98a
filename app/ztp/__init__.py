"""Juniper ZTP: the ``/ztp_fetch/<mode>/<vci>/<mac>`` route (routes), request parsing and
file choice (juniper), and the history of each fetch in device_state/device_event (service)."""
