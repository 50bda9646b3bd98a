"""Day-0 configs: static ``configs/<SN>.cfg``, Jinja2 templates from the inventory, ``default.cfg``.

Which config a device gets, first match wins:

1. ``configs/<SN>.cfg``: a static file written by the operator;
2. the config the source of truth rendered for the row (NetBox render-config,
   Nautobot render-jinja-template; app/sot/sync.py stores it at sync time),
   served from ``/configs/rendered/<SN>.cfg`` as is;
3. the inventory row's ``template`` (a Jinja2 file under ``configs/``),
   rendered with ``StrictUndefined`` from the row's variables plus ``serial``,
   ``hostname`` and ``pid``; the device downloads it from
   ``/configs/rendered/<SN>.cfg``, rendered again on request;
4. ``configs/default.cfg``.

A template that is missing, broken or uses an undefined variable raises
``Day0Error`` (a ValueError): the workflow parks the device in ERROR with the
reason, and never sends a half-rendered config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import jinja2

from app.common.paths import resolve_inside
from app.common.templating import template_environment
from app.config import Config

RENDERED_PREFIX = "rendered"


class Day0Error(ValueError):
    """The day-0 config cannot be produced; the message says why, in one line."""


@dataclass(frozen=True)
class InventoryView:
    """A plain snapshot of an inventory row (no database object crosses into the workflow)."""

    serial_number: str
    hostname: str | None = None
    pid: str = ""
    template: str | None = None
    variables: dict = field(default_factory=dict)
    rendered: str | None = None  # the day-0 config the source of truth rendered (None = not used)
    source: str = "csv"  # where the row comes from: csv, netbox, nautobot

    @classmethod
    def from_row(cls, row) -> InventoryView | None:
        """Copy an InventoryItem row; None stays None."""
        if row is None:
            return None
        return cls(row.serial_number, row.hostname, row.pid or "", row.template,
                   dict(row.variables or {}), getattr(row, "rendered_config", None),
                   getattr(row, "source", None) or "csv")


@dataclass(frozen=True)
class Day0:
    """A resolved day-0 config: ``name`` is the path under /configs/, ``source`` one of
    static, netbox/nautobot (rendered by the source of truth), template, default;
    ``text`` the config itself."""

    name: str
    source: str
    text: str

    @property
    def md5(self) -> str:
        """MD5 of the config text (32 lower-case hex digits), as config-upgrade checks it."""
        return hashlib.md5(self.text.encode(), usedforsecurity=False).hexdigest()


def render_template(config: Config, item: InventoryView) -> str:
    """Render ``item.template`` from ``configs/`` with the item's variables.

    Raises Day0Error for a missing template, a syntax error or an undefined variable.
    """
    values = {**item.variables, "serial": item.serial_number,
              "hostname": item.hostname or item.variables.get("hostname", ""),
              "pid": item.pid}
    try:
        template = template_environment(config.configs_dir).get_template(item.template)
        return template.render(**values)
    except jinja2.TemplateNotFound as exc:
        raise Day0Error(f"template {exc.name!r} not found in configs/") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise Day0Error(f"template {item.template} line {exc.lineno}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise Day0Error(f"template {item.template}: {exc.message} "
                        f"(add it as a column of the inventory CSV)") from exc
    except jinja2.TemplateError as exc:
        raise Day0Error(f"template {item.template}: {exc}") from exc


def resolve(config: Config, serial: str, item: InventoryView | None) -> Day0:
    """The day-0 config of ``serial`` (static file, template, default). Raises Day0Error."""
    static = resolve_inside(config.configs_dir, f"{serial}.cfg") if "/" not in serial else None
    if static is not None:  # inside configs/, not hidden, not over-long (app/files/serving.py)
        return Day0(f"{serial}.cfg", "static", static.read_text(errors="replace"))
    if item is not None and item.rendered is not None:
        return Day0(f"{RENDERED_PREFIX}/{serial}.cfg", item.source, item.rendered)
    if item is not None and item.template:
        return Day0(f"{RENDERED_PREFIX}/{serial}.cfg", "template", render_template(config, item))
    default = config.configs_dir / "default.cfg"
    if default.is_file():
        return Day0("default.cfg", "default", default.read_text(errors="replace"))
    raise Day0Error(f"neither configs/{serial}.cfg nor configs/default.cfg exists")


def day0_lookup(config: Config, item: InventoryView | None) -> Callable[[str], tuple[str, str]]:
    """``serial → (name under /configs/, md5)`` for the workflow's Context.day0.

    Raises Day0Error (a ValueError) with the reason, which parks the device in ERROR.
    """
    def lookup(serial: str) -> tuple[str, str]:
        day0 = resolve(config, serial, item)
        return day0.name, day0.md5
    return lookup
