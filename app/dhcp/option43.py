"""Cisco PnP option-43 string: builder and validator.

The string is sent raw (ASCII, no TLV) in DHCP option 43 to clients whose
option 60 is ``ciscopnp``. Grammar (docs/protocol.md §1.3): header ``5A1N``
(``5`` = PnP, ``A`` = active, ``1`` = format version, ``N``/``D`` = debug
off/on; ``5A`` alone is accepted), then ``;``-separated tokens in any order:
``B1|B2|B3`` address type (hostname/IPv4/IPv6), ``I<addr>``, ``J<port>``,
``K4|K5`` (HTTP/HTTPS), ``T<trustpool url>``, ``Z<ntp ip>``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["MAX_OPTION_LEN", "parse_option43", "pnp_option43"]

#: A DHCPv4 option carries at most 255 bytes of data.
MAX_OPTION_LEN = 255



class PnpServer(Protocol):
    """What :func:`pnp_option43` reads of a PnP server (app/dhcp/model.py's PnpServer)."""

    ip: str | None
    port: int
    https: bool
    https_port: int
    trustpool_url: str | None
    ntp: str | None
    hostname: str | None
    debug: bool


def check_port(what: str, port: int) -> int:
    """``port`` when it is an integer in 1-65535; ValueError naming ``what`` otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{what} must be an integer in 1-65535, got {port!r}")
    return port


_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def is_hostname(value: str) -> bool:
    """True for an RFC 1123 host name (labels of letters, digits, '-'), not an IP literal."""
    if not isinstance(value, str) or not value or len(value.rstrip(".")) > 253:
        return False
    labels = value.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        return False
    return not labels[-1].isdigit()  # "192.0.2.10" is an address, not a name


_HEADERS = {"5A": False, "5A1N": False, "5A1D": True}
_KNOWN = "BIJKTZ"


def _address_type(addr: str) -> str:
    """``"2"`` for IPv4, ``"3"`` for IPv6, ``"1"`` for a host name; ValueError otherwise."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        if is_hostname(addr):
            return "1"
        raise ValueError(f"I{addr}: not an IPv4/IPv6 address nor a valid host name") from None
    return "2" if ip.version == 4 else "3"


def _check_value(token: str, value: str) -> None:
    for ch in value:
        if not ("!" <= ch <= "~") or ch in ";\"'\\,":
            raise ValueError(f"option 43 token {token}: character {ch!r} is not allowed in {value!r}")


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"T{url}: the trustpool URL must be an http:// or https:// URL with a host")


def parse_option43(text: str) -> dict[str, str]:
    """Validate a Cisco PnP option-43 string and return its tokens.

    Returns ``{"header": "5A1N", "B": "2", "I": "192.0.2.10", "J": "80", "K": "4", ...}``
    with the defaults filled in (``B2``, ``K4``, ``J80``/``J443``). Raises
    ValueError with a clear message when the string breaks the builder rules of
    docs/protocol.md §1.3: unknown or duplicate token, ``I`` missing, port not in
    1-65535, ``K`` other than 4/5 (K1-K3 are obsolete XMPP), ``K5`` without
    ``T`` and ``Z``, ``T`` without ``Z``, ``B`` not matching ``I``, non-ASCII or
    characters that break DHCP server syntax (``"``, ``'``, ``\\``, ``,``,
    spaces), or more than 255 bytes.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("option 43 string is empty")
    if len(text.encode("ascii", errors="replace")) > MAX_OPTION_LEN:
        raise ValueError(f"option 43 string is {len(text)} bytes, a DHCP option holds at most {MAX_OPTION_LEN}")
    if not text.isascii():
        raise ValueError("option 43 string must be ASCII")
    parts = text.split(";")
    if parts[-1] == "":  # trailing ';' is optional
        parts.pop()
    header, tokens = parts[0], parts[1:]
    if header not in _HEADERS:
        if header.startswith("5P"):
            raise ValueError(f"header {header!r}: passive mode (P) is not supported, use 5A1N")
        raise ValueError(f"header {header!r}: option 43 must start with 5A1N (or 5A1D / 5A)")
    out: dict[str, str] = {"header": header}
    for tok in tokens:
        if not tok:
            raise ValueError(f"empty token (';;') in {text!r}")
        key, value = tok[0], tok[1:]
        if key not in _KNOWN:
            raise ValueError(f"unknown option 43 token {tok!r} (known: B, I, J, K, T, Z)")
        if key in out:
            raise ValueError(f"option 43 token {key} appears twice")
        if not value:
            raise ValueError(f"option 43 token {key} has no value")
        _check_value(key, value)
        out[key] = value
    if "I" not in out:
        raise ValueError("option 43 needs I<server address>")
    out.setdefault("K", "4")
    if out["K"] not in ("4", "5"):
        raise ValueError(f"K{out['K']}: use K4 (HTTP) or K5 (HTTPS); K1-K3 are obsolete XMPP")
    out.setdefault("J", "80" if out["K"] == "4" else "443")
    if not out["J"].isdigit() or not 1 <= int(out["J"]) <= 65535:
        raise ValueError(f"J{out['J']}: port must be 1-65535")
    if out["J"] != str(int(out["J"])):
        raise ValueError(f"J{out['J']}: port must be written without leading zeros")
    actual = _address_type(out["I"])
    out.setdefault("B", actual)
    if out["B"] not in ("1", "2", "3"):
        raise ValueError(f"B{out['B']}: address type must be B1 (hostname), B2 (IPv4) or B3 (IPv6)")
    if out["B"] != actual:
        kinds = {"1": "a host name", "2": "an IPv4 address", "3": "an IPv6 address"}
        raise ValueError(f"B{out['B']} says {kinds[out['B']]} but I{out['I']} is {kinds[actual]}")
    if out["K"] == "5" and ("T" not in out or "Z" not in out):
        raise ValueError("K5 (HTTPS) needs T<trustpool url> and Z<ntp server>")
    if "T" in out:
        if "Z" not in out:
            raise ValueError("T<trustpool url> needs Z<ntp server> (certificate dates)")
        _check_url(out["T"])
    if "Z" in out:
        try:
            ipaddress.ip_address(out["Z"])
        except ValueError:
            raise ValueError(f"Z{out['Z']}: the NTP server must be an IP address") from None
    return out


def pnp_option43(server: PnpServer) -> str:
    """Build the raw Cisco PnP option-43 string for ``server``.

    HTTP: ``5A1N;B2;K4;I192.0.2.10;J80``; HTTPS:
    ``5A1N;B2;K5;I192.0.2.10;J443;Thttp://192.0.2.10/ca/bundle.pem;Z192.0.2.1``;
    ``B1`` when ``server.hostname`` is set, ``B3`` for an IPv6 ``ip``. The port
    is always written; ``T``/``Z`` are written whenever set (also with K4).
    The result is checked with :func:`parse_option43`, so ValueError is
    raised for anything that breaks docs/protocol.md §1.3
    (``I`` missing, port not 1-65535, ``K5`` without ``T``/``Z``, ...).
    """
    addr = server.hostname if server.hostname is not None else server.ip
    if not addr:
        raise ValueError("PnP server needs ip or hostname (option 43 token I is required)")
    if not isinstance(addr, str):
        raise ValueError(f"PnP server address must be a string, got {addr!r}")
    if server.ip is not None and server.hostname is not None:
        try:
            ipaddress.ip_address(server.ip)
        except ValueError:
            raise ValueError(f"PnP server ip {server.ip!r} is not an IP address") from None
    if server.hostname is not None and _address_type(server.hostname) != "1":
        raise ValueError(f"PnP server hostname {server.hostname!r} is an address: pass it as ip")
    b = _address_type(addr)
    if b == "3":
        addr = str(ipaddress.IPv6Address(addr))  # canonical form
    if server.https:
        port = check_port("PnP https_port", server.https_port)
        if not server.trustpool_url or not server.ntp:
            raise ValueError("PnP over HTTPS (K5) needs trustpool_url (T) and ntp (Z)")
        tokens = [f"B{b}", "K5", f"I{addr}", f"J{port}"]
    else:
        port = check_port("PnP port", server.port)
        tokens = [f"B{b}", "K4", f"I{addr}", f"J{port}"]
    # T and Z are written whenever given (the grammar allows them with K4 too).
    if server.trustpool_url:
        tokens.append(f"T{server.trustpool_url}")
    if server.ntp:
        tokens.append(f"Z{server.ntp}")
    for tok in tokens:  # before joining: a ';' inside a value would split it
        _check_value(tok[0], tok[1:])
    text = ";".join(["5A1D" if server.debug else "5A1N", *tokens])
    parse_option43(text)
    return text
