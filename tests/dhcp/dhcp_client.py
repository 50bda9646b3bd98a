"""Test DHCP client: send DISCOVERs on one interface, print what each OFFER carried (JSON).

Run inside the client network namespace of the wire test:
``ip netns exec <ns> python dhcp_client.py <iface> '<json list of clients>'``.
Each client is ``{"mac": "02:..", "vci": "ciscopnp", "pid": "C1131-8PWB"}``
(``vci``/``pid`` optional; the parameter request list asks for what Junos ZTP
reads: 1, 3, 6, 7, 12, 15, 42, 43, 66, 67, 150). Output: one JSON list, per client
``{"yiaddr": "192.0.2.x", "options": {"43": "<hex>", ...}}`` or ``null`` when
no OFFER came. The options are decoded from the raw bytes, not by scapy, so
the test sees exactly what was on the wire.
"""

from __future__ import annotations

import json
import random
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, srp1

MAGIC = b"\x63\x82\x53\x63"


def option124(pid: str) -> bytes:
    """RFC 3925 V-I vendor class: enterprise 9, data-len, class-len, PID (PID at byte 6)."""
    data = pid.encode()
    return (9).to_bytes(4, "big") + bytes([len(data) + 1, len(data)]) + data


def _options(data: bytes, options: dict[str, str]) -> None:
    """Option TLVs (pad 0, end 255) of one area into ``options`` (hex values)."""
    i = 0
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        length = data[i + 1]
        options[str(code)] = data[i + 2 : i + 2 + length].hex()
        i += 2 + length


def parse_offer(payload: bytes) -> dict:
    """Fixed BOOTP header (236 bytes), magic cookie, then option TLVs (pad 0, end 255).

    With option 52 (RFC 2132 §9.3 option overload: 1 = ``file``, 2 = ``sname``, 3 = both)
    the server continued the options in those header fields: they are read too.
    """
    yiaddr = ".".join(str(b) for b in payload[16:20])
    assert payload[236:240] == MAGIC, "no DHCP magic cookie"
    options: dict[str, str] = {}
    _options(payload[240:], options)
    overload = int(options.get("52", "00"), 16)
    if overload & 1:
        _options(payload[108:236], options)
    if overload & 2:
        _options(payload[44:108], options)
    return {"yiaddr": yiaddr, "options": options}


def discover(iface: str, client: dict) -> dict | None:
    mac = client["mac"]
    xid = random.randint(1, 2**31)
    opts: list = [("message-type", "discover")]
    if client.get("vci"):
        opts.append(("vendor_class_id", client["vci"].encode()))
    if client.get("pid"):
        opts.append((124, option124(client["pid"])))
    opts += [("param_req_list", [1, 3, 6, 7, 12, 15, 42, 43, 66, 67, 150]), "end"]
    pkt = (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid, flags=0x8000)
        / DHCP(options=opts)
    )
    for _ in range(3):
        reply = srp1(pkt, iface=iface, timeout=2, verbose=0)
        if reply is not None and reply.haslayer(BOOTP) and reply[BOOTP].xid == xid:
            return parse_offer(bytes(reply[UDP].payload))
    return None


def main() -> None:
    conf.checkIPaddr = False  # the OFFER comes from the server address, not from 255.255.255.255
    iface, clients = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps([discover(iface, c) for c in clients]))


if __name__ == "__main__":
    main()
