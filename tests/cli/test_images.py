"""``run.py images add|list|remove``: the catalogue file next to the images, merged with IMAGES.

``images add`` copies the file, hashes it with a progress bar and records the
entry in ``images/catalogue.json``; the server (``Config.load``) reads that
file after IMAGES of the settings, so nobody pastes a line into settings.py.
"""

from __future__ import annotations

import hashlib
import json

import app.config as config_module
from app.config import Config, ConfigError, resolve_catalogue
from tests.helpers import IMAGE_NAME


def _upload(tmp_path_factory, name="c1100-universalk9.17.15.01a.SPA.bin", data=b"i" * 300_000):
    source = tmp_path_factory.mktemp("upload") / name
    source.write_bytes(data)
    return source


def test_add_shows_progress_and_the_server_loads_the_entry(runner, lab, make_config, tmp_path_factory):
    source = _upload(tmp_path_factory)
    out = runner.invoke(args=["images", "add", str(source), "--pid", "C1111*"])
    assert out.exit_code == 0, out.output
    assert "copy " + source.name in out.stderr and "md5 " + source.name in out.stderr  # tqdm bars
    assert "100%" in out.stderr
    config = make_config(images=[])  # a fresh start reads images/catalogue.json
    entry = config.image_for("C1111-8P")
    assert entry is not None and entry.file == source.name and entry.version == "17.15.1a"
    assert entry.md5 == hashlib.md5(source.read_bytes()).hexdigest() and entry.size == 300_000
    assert source.name in config.catalogue_files


def test_settings_entries_come_first_and_win_for_the_same_file(runner, lab, make_config, tmp_path_factory):
    # The lab's IMAGE_NAME is in the settings (C11*); the catalogue adds one more for C11*.
    source = _upload(tmp_path_factory)
    out = runner.invoke(args=["images", "add", str(source), "--pid", "C11*"])
    assert out.exit_code == 0 and "comes first" in out.stderr
    config = make_config()
    assert [e.file for e in config.images] == [IMAGE_NAME, source.name]
    assert config.image_for("C1111-8P").file == IMAGE_NAME
    (lab / "images" / "catalogue.json").write_text(json.dumps(
        [{"pid": "ISR44*", "file": IMAGE_NAME, "version": "17.9.4a"}]))
    config = make_config()
    assert [(e.pid, e.version) for e in config.images] == [("C11*", "17.12.3a")]


def test_remove_and_its_refusals(runner, lab, tmp_path_factory):
    source = _upload(tmp_path_factory)
    assert runner.invoke(args=["images", "add", str(source), "--pid", "C1111*"]).exit_code == 0
    out = runner.invoke(args=["images", "remove", source.name, "--delete-file"])
    assert out.exit_code == 0, out.output
    assert json.loads((lab / "images" / "catalogue.json").read_text()) == []
    assert not (lab / "images" / source.name).exists()
    assert source.name not in runner.invoke(args=["images", "list"]).output
    out = runner.invoke(args=["images", "remove", IMAGE_NAME])
    assert out.exit_code == 1 and "settings.py" in out.output
    out = runner.invoke(args=["images", "remove", "nothing.bin"])
    assert out.exit_code == 1 and "not in the catalogue" in out.output


def test_adding_again_replaces_the_entry(runner, lab, tmp_path_factory):
    source = _upload(tmp_path_factory)
    runner.invoke(args=["images", "add", str(source), "--pid", "C1111*"])
    source.write_bytes(b"other")
    out = runner.invoke(args=["images", "add", str(source), "--pid", "C1161*", "--version", "17.15.1a"])
    assert out.exit_code == 0, out.output
    entries = json.loads((lab / "images" / "catalogue.json").read_text())
    assert entries == [{"pid": "C1161*", "file": source.name, "version": "17.15.1a",
                        "md5": hashlib.md5(b"other").hexdigest(), "size": 5}]


def test_broken_catalogue_is_a_one_line_error(lab):
    (lab / "images" / "catalogue.json").write_text("{not json")
    try:
        Config.load(None, env={}, root=lab)
    except ConfigError as exc:
        assert "catalogue.json" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("a broken catalogue must stop the start")


def test_large_image_md5_at_first_start_shows_progress(lab, capsys, monkeypatch):
    monkeypatch.setattr(config_module, "MD5_PROGRESS_SIZE", 1024 * 1024)  # the lab image is 3 MiB
    cfg = Config.load(None, env={}, root=lab, resolve_images=False,
                      images=[{"pid": "C11*", "file": IMAGE_NAME, "version": "17.12.3a"}])
    entry = resolve_catalogue(cfg)[0]
    err = capsys.readouterr().err
    assert f"md5 {IMAGE_NAME}" in err and "100%" in err
    assert entry.md5 == hashlib.md5((lab / "images" / IMAGE_NAME).read_bytes()).hexdigest()
    resolve_catalogue(cfg)  # cached by size and mtime: no second bar
    assert IMAGE_NAME not in capsys.readouterr().err
