"""Keyset (seek) pagination of the device list: next/previous cursors across pages with ties,
for every sort and order, with filters, in the API and the console; a bad cursor is refused;
the counts agree on every page — on SQLite and on MariaDB.

Rows are inserted with SQL, as a device's requests or an operator's import would leave them.
Many devices share an IP, a version, a PID and a last contact, so every page boundary
falls inside a run of equal sort values (the tie-breakers decide).
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from sqlalchemy import delete

from app import ops as op
from app.ops.queries import SORT_KEYS
from app.storage.db import utcnow
from app.storage.models import ApiToken, AuditEntry, InventoryItem, OperatorSession, OperatorUser, RateCounter
from tests.ops.test_fleet import PASSWORD, _device, _log_in, seed

NOW = utcnow()


@pytest.fixture(params=["sqlite", "mariadb"])
def fleet_app(request, make_app):
    """The app on SQLite and on an emptied MariaDB database (as tests/ops/test_fleet.py)."""
    if request.param == "sqlite":
        return make_app(admin_password=PASSWORD)
    application = make_app(admin_password=PASSWORD, database_url=request.getfixturevalue("mariadb_fresh"))
    with application.extensions["pnp_sessions"].begin() as session:
        for model in (InventoryItem, AuditEntry, OperatorSession, ApiToken, OperatorUser, RateCounter):
            session.execute(delete(model))  # the shared database keeps other tests' rows
    return application


def _fleet(app):
    """31 seen devices in runs of equal values and 4 planned inventory rows."""
    devices = []
    for i in range(31):
        state = ("ERROR", "CHECK_IMAGE", "FINISHED", "BOOTFLASH_NO_SPACE")[i % 4]
        devices.append(_device(f"FGL1K{i:03d}", state, ip=f"10.0.{i % 3}.{i % 5}",
                               version=(None, "17.9.4a", "17.12.3a")[i % 3], pid=("C1131-8PWB", "C9300")[i % 2],
                               minutes=(0, 0, 90)[i % 3], hostname=(None, "sw1", "sw10")[i % 3]))
    inventory = [{"serial_number": f"FGL1K{i:03d}", "hostname": f"inv{i}", "variables": {"site": f"s{i % 2}"}}
                 for i in range(0, 31, 5)]
    inventory += [{"serial_number": f"FGL1P{i:03d}", "hostname": f"plan{i}", "variables": {"site": "s9"}}
                  for i in range(4)]
    seed(app, devices, inventory)
    return 35


def _page(app, **kw):
    return op.list_devices(app.extensions["pnp_sessions"], app.config["PNP"], op.DeviceQuery(**kw), now=NOW)


def _serials(page):
    return [d["serial_number"] for d in page.items]


def _walk(app, per_page=4, **kw):
    """Follow next_cursor from the first page to the end; then prev_cursor back to page 1.
    Returns (pages forward, pages backward in forward order)."""
    pages = [_page(app, per_page=per_page, **kw)]
    while pages[-1].next_cursor:
        assert len(pages) < 100, "the cursors loop"
        pages.append(_page(app, per_page=per_page, cursor=pages[-1].next_cursor, **kw))
    back = [pages[-1]]
    while back[-1].prev_cursor:
        back.append(_page(app, per_page=per_page, cursor=back[-1].prev_cursor, **kw))
    return pages, back[::-1]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_next_and_previous_cursors_walk_every_sort_like_the_page_numbers(fleet_app, order):
    total = _fleet(fleet_app)
    for sort in SORT_KEYS:
        everything = _serials(_page(fleet_app, sort=sort, order=order, per_page=500))
        assert len(everything) == total
        forward, backward = _walk(fleet_app, sort=sort, order=order)
        walked = [s for p in forward for s in _serials(p)]
        assert walked == everything, f"sort {sort} {order}: the cursors skip or repeat rows"
        assert [p.page for p in forward] == list(range(1, len(forward) + 1))
        assert forward[-1].next_cursor is None and forward[0].prev_cursor is None
        assert [_serials(p) for p in backward] == [_serials(p) for p in forward], f"prev of {sort} {order}"
        by_number = [_serials(_page(fleet_app, sort=sort, order=order, per_page=4, page=n))
                     for n in range(1, len(forward) + 1)]
        assert by_number == [_serials(p) for p in forward], "page numbers and cursors agree"


def test_cursors_keep_the_filters_and_counts_agree_on_every_page(fleet_app):
    _fleet(fleet_app)
    for filters in ({"state": "ERROR"}, {"lifecycle": "Error"}, {"pid": "C93"}, {"site": "s0"},
                    {"stalled": True}, {"q": "10.0.1"}, {"version": "17.12"}):
        everything = _serials(_page(fleet_app, sort="ip", per_page=500, **filters))
        forward, _ = _walk(fleet_app, per_page=2, sort="ip", **filters)
        assert [s for p in forward for s in _serials(p)] == everything, filters
        assert {p.total for p in forward} == {len(everything)}, filters
        assert all(p.counts == forward[0].counts for p in forward), "counts are the same on every page"
    first = _page(fleet_app)
    assert first.total == 35 == first.counts["total"] + first.counts["lifecycle"]["Planned"]
    assert sum(first.counts["lifecycle"].values()) == first.total


def _cursor(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_a_bad_cursor_is_refused_with_a_reason(fleet_app):
    _fleet(fleet_app)
    good = _page(fleet_app, per_page=3).next_cursor
    for bad in ("not-a-cursor", "e30", _cursor({"s": "attention", "o": "asc", "d": "up", "p": 2, "k": [0, 0, "", ""]}),
                _cursor({"s": "attention", "o": "asc", "d": "next", "p": 2, "k": [0]}),
                _cursor({"s": "attention", "o": "asc", "d": "next", "p": 0, "k": [0, 0, "", ""]}),
                _cursor([1, 2]), good[:-3]):
        with pytest.raises(op.ActionError, match="invalid cursor"):
            _page(fleet_app, cursor=bad)
    with pytest.raises(op.ActionError, match="another sort or order"):
        _page(fleet_app, sort="ip", cursor=good)


def test_api_pages_by_cursor_and_refuses_a_bad_one(fleet_app):
    _fleet(fleet_app)
    client = fleet_app.test_client()
    _log_in(client)
    first = client.get("/api/v1/devices?sort=version&per_page=10").get_json()
    assert first["prev_cursor"] is None and first["page"] == 1 and first["total"] == 35
    second = client.get(f"/api/v1/devices?sort=version&per_page=10&cursor={first['next_cursor']}").get_json()
    assert second["page"] == 2 and second["items"][0]["serial_number"] not in {
        d["serial_number"] for d in first["items"]}
    back = client.get(f"/api/v1/devices?sort=version&per_page=10&cursor={second['prev_cursor']}").get_json()
    assert [d["serial_number"] for d in back["items"]] == [d["serial_number"] for d in first["items"]]
    numbered = client.get("/api/v1/devices?sort=version&per_page=10&page=2").get_json()
    assert numbered["items"] == second["items"]
    last = client.get("/api/v1/devices?sort=version&per_page=10&page=4").get_json()
    assert last["next_cursor"] is None and len(last["items"]) == 5
    for bad in ("garbage", first["next_cursor"][:-4]):
        answer = client.get(f"/api/v1/devices?sort=version&cursor={bad}")
        assert answer.status_code == 400 and "cursor" in answer.get_json()["error"]
    other_sort = client.get(f"/api/v1/devices?sort=ip&cursor={first['next_cursor']}")
    assert other_sort.status_code == 400 and "another sort" in other_sort.get_json()["error"]
    spec = client.get("/api/v1/openapi.json").get_json()
    params = {p["name"] for p in spec["paths"]["/devices"]["get"]["parameters"]}
    assert {"cursor", "page", "per_page", "sort"} <= params
    page_schema = spec["components"]["schemas"]["DevicePage"]["properties"]
    assert {"next_cursor", "prev_cursor"} <= set(page_schema)


def test_console_next_and_previous_links_carry_the_cursor_and_the_refresh_keeps_the_page(fleet_app):
    _fleet(fleet_app)
    client = fleet_app.test_client()
    _log_in(client)
    html = client.get("/dashboard?per_page=10&sort=ip").get_data(as_text=True)
    assert "Page 1 of 4" in html and 'rel="prev"' not in html
    next_url = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "cursor=" in next_url and "sort=ip" in next_url and "per_page=10" in next_url
    page2 = client.get(next_url).get_data(as_text=True)
    assert "Page 2 of 4" in page2
    refresh = re.search(r'hx-get="([^"]+)"', page2).group(1).replace("&amp;", "&")
    assert "cursor=" in refresh, "the 5 s refresh stays on this page"
    table = client.get(refresh).get_data(as_text=True)
    rows = re.findall(r'data-serial="([^"]+)"', table)
    assert rows == re.findall(r'data-serial="([^"]+)"', page2) and len(rows) == 10
    prev_url = re.search(r'rel="prev" href="([^"]+)"', page2).group(1).replace("&amp;", "&")
    assert re.findall(r'data-serial="([^"]+)"', client.get(prev_url).get_data(as_text=True)) == \
        re.findall(r'data-serial="([^"]+)"', html)
    sort_link = re.search(r'href="([^"]*sort=pid[^"]*)"', page2).group(1)
    assert "cursor" not in sort_link, "a new sort starts at page 1"
    assert client.get("/dashboard?cursor=garbage").status_code == 400


def test_csv_export_follows_the_cursors_through_every_row(fleet_app):
    _fleet(fleet_app)
    sessions, config = fleet_app.extensions["pnp_sessions"], fleet_app.config["PNP"]
    rows = list(op.iter_devices(sessions, config, op.DeviceQuery(sort="hostname")))
    assert [r["serial_number"] for r in rows] == _serials(_page(fleet_app, sort="hostname", per_page=500))
