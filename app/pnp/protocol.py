"""Cisco PnP wire format: parse what devices send, build what the server sends.

No policy lives here: this module knows the XML of the PnP services
(``urn:cisco:pnp:*``), not the workflow. Parsing is namespace-aware and
lenient (extra elements, any order, one or many ``fileSystem`` or
``resultEntry``), uses defusedxml (no DTDs, no entities), and reads sizes as
Python ints (no 2^31 overflow). Building takes xmltodict-style dicts and
serializes them with ElementTree (C), which escapes text and attributes and
never pads text nodes with whitespace.

Source: docs/protocol.md §2-§11; real device messages in
simulator/messages/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

PNP_NS = "urn:cisco:pnp"
SERVICE_PREFIX = "urn:cisco:pnp:"
ERROR_NS = "urn:cisco:pnp:error"
MAX_BODY_BYTES = 1024 * 1024  # no legitimate PnP message comes close


class PnpParseError(ValueError):
    """The body is not a PnP message; ``str(exc)`` is a one-line reason for a 400."""


# --- value objects ------------------------------------------------------------------


@dataclass(frozen=True)
class Udi:
    """Unique Device Identifier ``PID:<pid>,VID:<vid>,SN:<serial>``.

    Parsed leniently: parts split on ``,`` then on the first ``:``; missing or
    empty keys give "" (access points send no VID; XSD samples an empty one);
    PIDs may contain ``/`` and ``-``. ``raw`` is echoed back unchanged.
    """

    raw: str
    pid: str = ""
    vid: str = ""
    sn: str = ""

    @classmethod
    def parse(cls, raw: str | None) -> Udi:
        """Parse a UDI string; never raises (a missing SN is checked by callers)."""
        raw = (raw or "").strip()
        parts: dict[str, str] = {}
        for chunk in raw.split(","):
            key, sep, value = chunk.partition(":")
            if sep:
                parts[key.strip().upper()] = value.strip()
        return cls(raw=raw, pid=parts.get("PID", ""), vid=parts.get("VID", ""),
                   sn=parts.get("SN", ""))


@dataclass(frozen=True)
class ReloadReason:
    """The ``<reason><reload>`` block IOS-XE adds to the first work-request after a boot."""

    message: str = ""
    code: str = ""
    startup_config_present: bool | None = None


@dataclass(frozen=True)
class WorkRequest:
    """A device's ``POST /pnp/WORK-REQUEST`` (``urn:cisco:pnp:work-info``)."""

    udi: Udi
    correlator: str
    hostname: str = ""
    mac_address: str = ""
    auth_required: bool = False
    reload_reason: ReloadReason | None = None


@dataclass(frozen=True)
class ErrorInfo:
    """``errorInfo`` of a failed service response, or a fault.

    ``code`` is the full text (``PnP Service Error 1825``); ``number`` its last
    token as int when numeric.
    """

    code: str = ""
    message: str = ""
    severity: str = ""

    @property
    def number(self) -> int | None:
        token = self.code.split()[-1] if self.code.split() else ""
        return int(token) if token.isdigit() else None


@dataclass(frozen=True)
class FileSystem:
    """One ``fileSystemList/fileSystem`` of a device-info response; sizes in bytes."""

    name: str
    type: str = ""
    size: int = 0
    freespace: int = 0


@dataclass(frozen=True)
class DeviceInfo:
    """The parts of a device-info response the workflow uses (docs/protocol.md §8.1)."""

    version: str = ""
    image_file: str = ""
    config_reg: str = ""
    config_reg_next: str = ""
    platform: str = ""
    hostname: str = ""
    file_systems: tuple[FileSystem, ...] = ()

    def file_system(self, *names: str) -> FileSystem | None:
        """The first file system whose name is one of ``names``, tried in order."""
        by_name = {fs.name: fs for fs in self.file_systems}
        return next((by_name[n] for n in names if n in by_name), None)

    @property
    def bootflash(self) -> FileSystem | None:
        """bootflash, else flash, else flash0 (never by position; docs/protocol.md pitfall P1)."""
        return self.file_system("bootflash", "flash", "flash0")

    @property
    def boot_mode(self) -> str:
        """``install`` when booted from packages.conf, ``bundle`` for a .bin, else ""."""
        name = strip_fs(self.image_file).lower()
        if name.endswith("packages.conf"):
            return "install"
        if name.endswith(".bin") or name.endswith(".ssa") or "-mz" in name:
            return "bundle"
        return ""


@dataclass(frozen=True)
class ResultEntry:
    """One ``resultEntry`` of a cli-config response: ``outcome`` is success/failure/invalid/notExecuted."""

    line: int
    cli: str
    outcome: str
    error_code: str = ""
    text: str = ""


@dataclass(frozen=True)
class WorkResponse:
    """A device's ``POST /pnp/WORK-RESPONSE``.

    ``service`` is the namespace suffix (``device-info``, ``cli-exec``,
    ``fault``...). ``correlator`` is None for faults. ``success`` is None when
    the attribute is absent.
    """

    udi: Udi
    service: str
    correlator: str | None
    success: bool | None
    error: ErrorInfo | None = None
    device_info: DeviceInfo | None = None
    exec_output: str = ""
    result_entries: tuple[ResultEntry, ...] = ()
    service_log: str = ""

    @property
    def is_fault(self) -> bool:
        return self.service == "fault"

    @property
    def failed_entries(self) -> tuple[ResultEntry, ...]:
        """cli-config lines the device rejected (``success="1"`` may hide them; P9)."""
        return tuple(e for e in self.result_entries if e.outcome in ("failure", "invalid"))


# --- parsing ---------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _child(elem: Element | None, name: str) -> Element | None:
    """First child with local name ``name`` in any namespace."""
    if elem is None:
        return None
    return next((c for c in elem if _local(c.tag) == name), None)


def _children(elem: Element | None, name: str) -> list[Element]:
    return [] if elem is None else [c for c in elem if _local(c.tag) == name]


def _text(elem: Element | None, *path: str) -> str:
    for name in path:
        elem = _child(elem, name)
    return (elem.text or "").strip() if elem is not None else ""


def _int(value: str | None) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    value = value.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    return None


def parse_envelope(body: bytes | str) -> tuple[Udi, Element]:
    """Parse the ``<pnp>`` envelope and return its UDI and its single child.

    Raises PnpParseError when the body is empty, too large, not well-formed,
    uses DTDs or entities, is not in ``urn:cisco:pnp``, or has no child.
    """
    if not body:
        raise PnpParseError("empty body: expected a <pnp> XML message")
    if len(body) > MAX_BODY_BYTES:
        raise PnpParseError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise PnpParseError(f"forbidden XML construct: {type(exc).__name__}") from exc
    except LookupError as exc:  # <?xml encoding="no-such-codec"?>
        raise PnpParseError(f"unknown XML encoding: {exc}") from exc
    except (ParseError, ValueError, TypeError) as exc:
        raise PnpParseError(f"malformed XML: {exc}") from exc
    if _local(root.tag) != "pnp" or _ns(root.tag) != PNP_NS:
        raise PnpParseError(f"root element is {root.tag!r}, expected <pnp xmlns=\"{PNP_NS}\">")
    udi = Udi.parse(root.get("udi"))
    child = next(iter(root), None)
    if child is None:
        raise PnpParseError("<pnp> has no info/request/response child")
    return udi, child


# Longest values stored (device_state columns); real ones are far shorter (SN: 11 chars).
MAX_UDI_CHARS, MAX_SN_CHARS, MAX_PID_CHARS, MAX_VID_CHARS, MAX_CORRELATOR_CHARS = 255, 64, 64, 16, 255


#: What a serial number may contain: Cisco SNs are 11 letters and digits (``FGL2548L0AW``),
#: virtual ones similar (``99CWJ5DOLWQ``). Anything else (``/``, ``%``, ``:``, spaces, non-ASCII)
#: could not be managed by URL from the console or the API, and ``:`` would let a Cisco serial
#: take the key of a Juniper device (keyed by its MAC ``aa:bb:cc:dd:ee:ff``).
SERIAL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _require_serial(udi: Udi, where: str) -> None:
    """Raise PnpParseError when the UDI has no SN, a part longer than the database keeps, or
    an SN outside :data:`SERIAL_PATTERN` (refused at first contact, with the reason)."""
    if not udi.sn:
        raise PnpParseError(f"{where}: UDI {udi.raw[:80]!r} has no SN")
    for value, limit, label in ((udi.raw, MAX_UDI_CHARS, "UDI"), (udi.sn, MAX_SN_CHARS, "SN"),
                                (udi.pid, MAX_PID_CHARS, "PID"), (udi.vid, MAX_VID_CHARS, "VID")):
        if len(value) > limit:
            raise PnpParseError(f"{where}: {label} of {len(value)} characters exceeds {limit}")
    if not SERIAL_PATTERN.fullmatch(udi.sn):
        raise PnpParseError(f"{where}: SN {udi.sn[:64]!r} is not a serial number: only ASCII letters, "
                            "digits, '.', '_' and '-' (starting with a letter or digit)")


def _check_correlator(correlator: str | None, where: str) -> None:
    if correlator and len(correlator) > MAX_CORRELATOR_CHARS:
        raise PnpParseError(f"{where}: correlator of {len(correlator)} characters exceeds "
                            f"{MAX_CORRELATOR_CHARS}")


def parse_work_request(body: bytes | str) -> WorkRequest:
    """Parse a WORK-REQUEST body (``<info xmlns="urn:cisco:pnp:work-info">``).

    The UDI comes from ``pnp@udi``, else from ``deviceId/udi``. Raises
    PnpParseError when it is not a work-info message or carries no serial.
    """
    udi, info = parse_envelope(body)
    if _local(info.tag) != "info" or _ns(info.tag) != SERVICE_PREFIX + "work-info":
        raise PnpParseError("WORK-REQUEST must carry <info xmlns=\"urn:cisco:pnp:work-info\">")
    device_id = _child(info, "deviceId")
    if not udi.sn:
        udi = Udi.parse(_text(device_id, "udi"))
    _require_serial(udi, "WORK-REQUEST")
    reload_elem = _child(_child(info, "reason"), "reload")
    reason = None
    if reload_elem is not None:
        reason = ReloadReason(
            message=_text(reload_elem, "message"), code=_text(reload_elem, "code"),
            startup_config_present=_bool(_text(reload_elem, "startupConfigPresent") or None))
    correlator = (info.get("correlator") or "").strip()
    _check_correlator(correlator, "WORK-REQUEST")
    return WorkRequest(
        udi=udi, correlator=correlator,
        hostname=_text(device_id, "hostname"), mac_address=_text(device_id, "macAddress"),
        auth_required=bool(_bool(_text(device_id, "authRequired") or None)),
        reload_reason=reason)


def _error_info(resp: Element) -> ErrorInfo | None:
    """``errorInfo`` anywhere below the response (top level, execLog, dialogueLog)."""
    for elem in resp.iter():
        if _local(elem.tag) == "errorInfo":
            return ErrorInfo(code=_text(elem, "errorCode"), message=_text(elem, "errorMessage"),
                             severity=_text(elem, "errorSeverity"))
    return None


def _fault(resp: Element) -> ErrorInfo:
    fault = _child(resp, "fault")
    details = [(e.text or "").strip() for e in resp.iter()
               if _ns(e.tag) == ERROR_NS and (e.text or "").strip()]
    message = _text(fault, "faultstring")
    if details:
        message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return ErrorInfo(code=_text(fault, "faultcode") or "fault", message=message,
                     severity="FAULT")


def _device_info(resp: Element) -> DeviceInfo:
    image = _child(resp, "imageInfo")
    hardware = _child(resp, "hardwareInfo")
    file_systems = tuple(
        FileSystem(name=fs.get("name", ""), type=fs.get("type", ""),
                   size=_int(fs.get("size")), freespace=_int(fs.get("freespace")))
        for fs in _children(_child(resp, "fileSystemList"), "fileSystem"))
    return DeviceInfo(
        version=_text(image, "versionString"), image_file=_text(image, "imageFile"),
        config_reg=_text(image, "configReg"), config_reg_next=_text(image, "configRegNext"),
        platform=_text(hardware, "platformName"), hostname=_text(hardware, "hostname"),
        file_systems=file_systems)


def _exec_output(resp: Element) -> str:
    """Concatenated ``execLog/dialogueLog/received/text`` (one or many dialogueLog)."""
    texts = []
    for log in resp.iter():
        if _local(log.tag) == "dialogueLog":
            received = _child(log, "received")
            text = _child(received, "text")
            if text is not None and text.text:
                texts.append(text.text)
    return "\n".join(texts)


def _result_entries(resp: Element) -> tuple[ResultEntry, ...]:
    entries = []
    for entry in resp.iter():
        if _local(entry.tag) != "resultEntry":
            continue
        outcome, code = "", ""
        for child in entry:
            name = _local(child.tag)
            if name in ("success", "failure", "invalid", "notExecuted"):
                outcome, code = name, child.get("errorCode", "")
        entries.append(ResultEntry(line=_int(entry.get("lineNumber")),
                                   cli=entry.get("cliString", ""), outcome=outcome,
                                   error_code=code, text=_text(entry, "text")))
    return tuple(entries)


def parse_work_response(body: bytes | str) -> WorkResponse:
    """Parse a WORK-RESPONSE body (``<response xmlns="urn:cisco:pnp:<service>">``).

    Dispatches on the namespace first (docs/protocol.md pitfall P4): a fault has no correlator
    and no ``success``. Raises PnpParseError for anything that is not a
    PnP response or has no serial.
    """
    udi, resp = parse_envelope(body)
    ns = _ns(resp.tag)
    if _local(resp.tag) != "response" or not ns.startswith(SERVICE_PREFIX):
        raise PnpParseError("WORK-RESPONSE must carry <response xmlns=\"urn:cisco:pnp:<service>\">")
    _require_serial(udi, "WORK-RESPONSE")
    service = ns[len(SERVICE_PREFIX):]
    if service == "fault":
        return WorkResponse(udi=udi, service=service, correlator=None, success=False,
                            error=_fault(resp))
    success = _bool(resp.get("success"))
    _check_correlator(resp.get("correlator"), "WORK-RESPONSE")
    return WorkResponse(
        udi=udi, service=service, correlator=(resp.get("correlator") or "").strip() or None,
        success=success,
        error=_error_info(resp) if success is not True else None,
        device_info=_device_info(resp) if service == "device-info" and success else None,
        exec_output=_exec_output(resp) if service == "cli-exec" else "",
        result_entries=_result_entries(resp) if service == "cli-config" else (),
        service_log=_text(resp, "serviceLog"))


# --- building -------------------------------------------------------------------------------


def strip_fs(path: str) -> str:
    """``bootflash:/x.bin`` or ``bootflash:x.bin`` → ``x.bin`` (docs/protocol.md pitfall P2)."""
    _, sep, rest = (path or "").partition(":")
    return (rest if sep else path or "").lstrip("/")


def _fill(elem: Element, value) -> None:
    """Put an xmltodict-style ``value`` into ``elem``: a dict's ``@name`` keys are attributes,
    ``#text`` its text and the other keys child elements (a list repeats the element, None
    leaves it empty); anything else is the text."""
    if value is None:
        return
    if not isinstance(value, dict):
        elem.text = value if isinstance(value, str) else str(value)
        return
    for key, item in value.items():
        if key[0] == "@":
            elem.set(key[1:], item if isinstance(item, str) else str(item))
        elif key == "#text":
            elem.text = item if isinstance(item, str) else str(item)
        else:
            for one in item if isinstance(item, list) else (item,):
                _fill(SubElement(elem, key), one)


def _envelope(udi: str, child_name: str, service: str, correlator: str, body: dict) -> str:
    """The ``<pnp>`` document around one ``<request>``/``<info>``: the bytes xmltodict.unparse
    wrote (``<bye/>``, ``&#9;``), built by ElementTree's C serializer, which escapes text and
    attributes (2-3x faster here, BENCHMARKS.md "Per-message cost")."""
    root = Element("pnp", {"xmlns": PNP_NS, "version": "1.0", "udi": udi})
    _fill(SubElement(root, child_name), {"@xmlns": SERVICE_PREFIX + service,
                                         "@correlator": correlator, **body})
    xml = tostring(root, encoding="unicode", short_empty_elements=True)
    # ElementTree writes "<a />" and a tab in an attribute as "&#09;"; "&" of any value is
    # "&amp;" and ">" in attributes "&gt;", so both forms occur only where ElementTree put them
    return xml.replace(" />", "/>").replace("&#09;", "&#9;")


def build_request(udi: str, correlator: str, service: str, body: dict) -> str:
    """A server ``<request>`` for ``service`` with an xmltodict-style ``body``."""
    return _envelope(udi, "request", service, correlator, body)


def build_bye(udi: str, correlator: str) -> str:
    """``<info><workInfo><bye/></workInfo></info>``, echoing the correlator (docs/protocol.md §8.8)."""
    return _envelope(udi, "info", "work-info", correlator or "", {"workInfo": {"bye": None}})


def build_backoff(udi: str, correlator: str, seconds: int, reason: str) -> str:
    """A one-time ``callbackAfter`` backoff of ``seconds`` (capped at 47 h 59 m 59 s; docs/protocol.md §8.7)."""
    seconds = max(1, min(int(seconds), 47 * 3600 + 59 * 60 + 59))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return build_request(udi, correlator, "backoff", {"backoff": {
        "reason": reason,
        "callbackAfter": {"hours": str(hours), "minutes": str(minutes), "seconds": str(secs)}}})


def device_info_body(kind: str = "all") -> dict:
    """device-info request body; ``kind`` is image|hardware|filesystem|udi|profile|all."""
    return {"deviceInfo": {"@type": kind}}


def cli_config_body(commands: list[str], action_on_fail: str = "stop") -> dict:
    """cli-config ``configApply``; ``stop`` so a rejected line fails the job (P9)."""
    return {"configApply": {"@details": "all", "@action-on-fail": action_on_fail,
                            "config-data": {"cli-config-data": {"cmd": list(commands)}}}}


def cli_exec_body(command: str, max_wait_seconds: int = 60) -> dict:
    """cli-exec ``execCLI`` with one command and ``maxWait`` sized for it (docs/protocol.md §8.3)."""
    return {"execCLI": {"@maxWait": f"PT{int(max_wait_seconds)}S", "@xsd": "false",
                        "cmd": command}}


def image_install_body(url: str, md5: str, destination: str,
                       reload_delay: int = 30) -> dict:
    """image-install with the md5 checksum and an explicit ``<reload>`` (docs/protocol.md §8.5)."""
    return {"image": {"copy": {"source": {"location": url, "checksum": md5},
                               "destination": {"location": destination}}},
            "reload": {"reason": "pnp image install", "delayIn": str(reload_delay),
                       "user": "pnp", "saveConfig": "true"}}


def file_transfer_body(url: str, destination: str) -> dict:
    """file-transfer of one file to ``destination`` (no checksum in this service; docs/protocol.md §8.6)."""
    return {"fileTransfer": {"copy": {"source": {"location": url},
                                      "destination": {"location": destination}}}}


def config_upgrade_body(url: str, md5: str = "") -> dict:
    """config-upgrade merging into running-config, with ``<noReload/>`` (docs/protocol.md §8.4)."""
    source: dict = {"location": url}
    if md5:
        source["checksum"] = md5
    return {"config": {"@details": "all", "copy": {"source": source}}, "noReload": None}
