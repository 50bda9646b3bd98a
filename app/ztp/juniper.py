"""Juniper ZTP request parsing and file selection (no Flask, no database).

What a factory-default Junos device asks for (docs/protocol.md §16.4):
``GET /ztp_fetch/<mode>/<vci>/<mac>[.conf|.img]`` where ``<vci>`` is its
option 60 ``Juniper-<model>[-<serial>]`` and ``<mac>`` the chaddr of the ZTP
interface, as the DHCP helper writes it into sub-option 1
(``aa-bb-cc-dd-ee-ff``). This module turns those strings into a
:class:`FetchRequest` and chooses the file:

* image: per **model**, from the catalogue ``JUNIPER_MODELS`` (model ->
  official Juniper file name in ``images/``, docs/protocol.md §16.6);
* config: per **MAC**: the static file ``configs/juniper/<aa-bb-cc-dd-ee-ff>.conf``,
  else the Jinja2 template named by the device's inventory row
  (``configs/juniper/<template>``, ``StrictUndefined``) rendered with the
  row's variables. Junos curly-brace text and ``#!`` scripts are served alike.

The inventory is any callable ``mac -> dict | None`` (:data:`InventoryLookup`);
:func:`csv_inventory` reads ``configs/juniper/inventory.csv``. A database
inventory only needs another such callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from app.common.inventory_csv import parse_inventory_csv
from app.common.mac import mac_dashed, normalize_mac
from app.common.paths import resolve_inside
from app.common.templating import template_environment
from app.config import check_model

__all__ = [
    "ConfigChoice",
    "FetchRequest",
    "InventoryLookup",
    "ZtpError",
    "check_model",
    "choose_config",
    "choose_image",
    "csv_inventory",
    "mac_dashed",
    "parse_mac",
    "parse_request",
    "parse_vci",
    "read_inventory_csv",
]

#: ``mac -> variables`` (``mac`` as ``aa:bb:cc:dd:ee:ff``); None = not in the inventory.
InventoryLookup = Callable[[str], "Mapping[str, str] | None"]

MODES = ("conf", "image")
_SUFFIXES = (".conf", ".img")
_VCI_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._]*$")
_VCI_PREFIX = "juniper-"


class ZtpError(ValueError):
    """A request that cannot be served; ``status`` is the HTTP status (400 or 404), the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchRequest:
    """A parsed ``/ztp_fetch`` request.

    ``mode`` conf|image; ``vci`` option 60 as sent; ``model`` lower-case
    (``ex4300-48p``); ``serial`` the serial hint from the VCI or None;
    ``mac`` ``aa:bb:cc:dd:ee:ff``; ``name`` the optional last path segment
    after the MAC (image mode: the official image file name).
    """

    mode: str
    vci: str
    model: str
    serial: str | None
    mac: str
    name: str | None = None

    @property
    def mac_dashed(self) -> str:
        """``aa-bb-cc-dd-ee-ff``: the form of file names and of sub-option 1."""
        return mac_dashed(self.mac)


@dataclass(frozen=True)
class ConfigChoice:
    """The config chosen for a MAC.

    ``path`` is the static file (None for a rendered template), ``body`` the
    bytes to send (None for a static file, which is streamed), ``source`` a
    label for the history (``configs/juniper/<file>`` or ``template <name>``),
    ``script`` true when the content starts with ``#!``, ``variables`` the
    inventory row used (empty for a static file).
    """

    path: Path | None
    body: bytes | None
    source: str
    script: bool
    variables: Mapping[str, str] = field(default_factory=dict)


def parse_mac(text: str) -> str:
    """Normalise a MAC from the URL to ``aa:bb:cc:dd:ee:ff`` (app/common/mac.py: every form).

    An optional ``.conf`` or ``.img`` suffix is dropped. Raises ZtpError(400) otherwise.
    """
    value = text.strip()
    for suffix in _SUFFIXES:
        if value.lower().endswith(suffix):
            value = value[: -len(suffix)]
            break
    try:
        return normalize_mac(value)
    except ValueError as exc:
        raise ZtpError(400, f"{exc} (optionally followed by .conf or .img)") from None


def parse_vci(vci: str, models: Iterable[str] = ()) -> tuple[str, str | None]:
    """Split option 60 ``Juniper-<model>[-<serial>]`` into ``(model, serial or None)``.

    Models contain dashes (``Juniper-ex4300-48p``), so "last token = serial" is
    wrong (docs/protocol.md §16.3). The **longest known model** (from
    ``models``, the catalogue) that the VCI equals or continues with ``-`` wins;
    what follows is the serial hint when it has no lower-case letter (Juniper
    serials are upper case; ``Juniper-qfx5100-96s-8q`` with only ``qfx5100``
    known gives model ``qfx5100``, no serial; a last upper-case token is still
    taken: ``Juniper-qfx5100-96s-8q-WS3718`` -> serial ``WS3718``). For a model not in the catalogue the
    lower-case tokens are the model and a trailing token with an upper-case
    letter (Juniper serials: ``PE3714AB0001``, ``DD576``) is the serial.
    The ``Juniper-`` prefix is matched case-insensitively. Raises ZtpError(400)
    for anything else.
    """
    if not isinstance(vci, str) or len(vci) > 128 or not vci.lower().startswith(_VCI_PREFIX):
        raise ZtpError(400, f"invalid vendor class {vci!r}: expected Juniper-<model>[-<serial>]")
    rest = vci[len(_VCI_PREFIX):]
    tokens = rest.split("-")
    if not rest or not all(_VCI_TOKEN.match(t) for t in tokens):
        raise ZtpError(400, f"invalid vendor class {vci!r}: expected Juniper-<model>[-<serial>] "
                            "with letters, digits, '.' and '_' between the dashes")
    lowered = rest.lower()
    for model in sorted(set(models), key=len, reverse=True):
        if lowered == model:
            return model, None
        if lowered.startswith(model + "-"):
            hint = rest[len(model) + 1:]
            # Juniper serials are upper case (PE3714AB0001, DD576); a lower-case rest is a longer,
            # uncatalogued model (qfx5100-96s-8q under qfx5100): no serial then.
            if hint == hint.upper():
                return model, hint
            last = hint.rsplit("-", 1)[-1]
            return model, last if "-" in hint and last == last.upper() and not last.isdigit() else None
    if len(tokens) > 1 and any(c.isupper() for c in tokens[-1]):
        return "-".join(tokens[:-1]).lower(), tokens[-1]
    return lowered, None


def parse_request(mode: str, vci: str, mac: str, models: Iterable[str] = (), name: str | None = None) -> FetchRequest:
    """Parse the path segments of ``/ztp_fetch/<mode>/<vci>/<mac>[/<name>]``; ZtpError(400/404) if bad."""
    if mode not in MODES:
        raise ZtpError(404, f"unknown ZTP fetch mode {mode!r}: use conf or image")
    model, serial = parse_vci(vci, models)
    return FetchRequest(mode=mode, vci=vci, model=model, serial=serial, mac=parse_mac(mac), name=name)


def choose_image(req: FetchRequest, models: Mapping[str, str], images_dir: Path,
                 override: str | None = None) -> Path:
    """The official image for the request's model (``models``: model -> file name in ``images_dir``).

    ``override`` is the device's own image (the ``image`` column of its
    inventory row), which wins over the model's. Raises ZtpError(404) when
    there is no image for the device, the file is missing, or ``req.name`` is
    given and is not that image's name.
    """
    image = override or models.get(req.model) or ""
    if not image:
        raise ZtpError(404, f"no image for Juniper model {req.model!r} (VCI {req.vci}): "
                            "add it to JUNIPER_MODELS in settings.py")
    if req.name is not None and req.name != image:
        raise ZtpError(404, f"image {req.name!r} is not the image of model {req.model} ({image})")
    path = resolve_inside(images_dir, image) if "/" not in image else None
    if path is None:
        raise ZtpError(404, f"image {image} for model {req.model} is missing from images/")
    return path


def _is_script(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"#!")


def choose_config(req: FetchRequest, folder: Path, inventory: InventoryLookup | None) -> ConfigChoice:
    """The config for the request's MAC from ``folder`` (``configs/juniper``).

    Order: the static file ``<aa-bb-cc-dd-ee-ff>.conf``; else the inventory row
    of the MAC with its ``template`` column (a file name in ``folder``, default
    ``default.conf.j2`` when that exists), rendered with Jinja2
    ``StrictUndefined``. Template variables: every non-blank column of the row
    (a blank cell is undefined, so the template fails instead of rendering ""), plus
    ``mac`` (``aa:bb:cc:dd:ee:ff``), ``mac_dashed``, ``vci``, ``model`` and
    ``serial`` (from the VCI, unless the row has a non-empty ``serial``).
    Raises ZtpError(404) when neither exists or when the template is
    missing or fails to render (an undefined variable, a syntax error).
    """
    static = resolve_inside(folder, f"{req.mac_dashed}.conf")  # a symlink out of the folder: not served
    if static is not None:
        with static.open("rb") as fh:
            script = _is_script(fh.read(64))
        return ConfigChoice(path=static, body=None, source=f"configs/juniper/{static.name}", script=script)
    row = dict(inventory(req.mac) or {}) if inventory is not None else {}
    template = (row.get("template") or "").strip()
    if not row or (not template and not (folder / "default.conf.j2").is_file()):
        raise ZtpError(404, f"no config for MAC {req.mac_dashed}: put configs/juniper/{req.mac_dashed}.conf "
                            f"or give the MAC a template in {'the inventory' if not row else 'its inventory row'}")
    template = template or "default.conf.j2"
    variables = {k: v for k, v in row.items() if k and v not in (None, "")}  # blank cell = undefined
    variables.update(mac=req.mac, mac_dashed=req.mac_dashed, vci=req.vci, model=req.model)
    if not variables.get("serial"):
        variables["serial"] = req.serial or ""
    try:
        text = template_environment(folder).get_template(template).render(**variables)
    except jinja2.TemplateNotFound:
        raise ZtpError(404, f"template {template!r} of MAC {req.mac_dashed} is missing from configs/juniper") from None
    except jinja2.TemplateError as exc:
        raise ZtpError(404, f"template {template!r} for MAC {req.mac_dashed} cannot be rendered: "
                            f"{exc.__class__.__name__}: {exc}") from None
    body = text.encode()
    return ConfigChoice(path=None, body=body, source=f"template {template}", script=_is_script(body[:64]),
                        variables=variables)


def read_inventory_csv(path: Path) -> list[dict[str, str]]:
    """Rows of an inventory CSV file as flat dicts (known columns and variables side by side).

    Parsed by app/common/inventory_csv.py keyed by ``mac`` (every MAC form; a
    row without a MAC is kept but matches nothing). A missing file gives [].
    Raises ValueError naming the file and line for a bad row or a MAC listed twice.
    """
    if not path.is_file():
        return []
    rows, errors = parse_inventory_csv(path.read_text(encoding="utf-8-sig"), key="mac")
    if errors:
        raise ValueError(f"{path} {errors[0]}")
    return [{**row["variables"], **{k: v for k, v in row.items() if k not in ("line", "variables")}}
            for row in rows]


def csv_inventory(path: Path) -> InventoryLookup:
    """An :data:`InventoryLookup` reading ``path`` (re-read at each call: edits apply at once)."""

    def lookup(mac: str) -> Mapping[str, str] | None:
        return next((r for r in read_inventory_csv(path) if r.get("mac") == mac), None)

    return lookup
