"""incus_remote's writes to the controller's Incus client configuration: only what
differs, a mode change counts as a change, nothing at all in check mode, and a diff
that never shows a key."""

from __future__ import annotations

import os
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_PATH = ROOT / "plugins" / "module_utils" / "incus_client_config.py"
_loader = SourceFileLoader("incus_client_config", str(_PATH))
client_config = module_from_spec(spec_from_loader("incus_client_config", _loader))
_loader.exec_module(client_config)
ClientFiles = client_config.ClientFiles


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_check_mode_writes_nothing_and_shows_the_new_file(tmp_path):
    target = tmp_path / "servercerts" / "box.crt"
    files = ClientFiles(check=True)
    assert files.write(str(target), b"CERT", 0o644) is True
    assert not target.exists()
    assert not target.parent.exists()
    assert files.diff()["before"][str(target)] == "absent"
    assert files.diff()["after"][str(target)].startswith("mode 0644, sha256 ")


def test_same_content_and_mode_is_no_change(tmp_path):
    target = tmp_path / "box.crt"
    target.write_bytes(b"CERT")
    target.chmod(0o644)
    files = ClientFiles(check=False)
    assert files.write(str(target), b"CERT", 0o644) is False
    assert files.diff() == {"before": {}, "after": {}}


def test_a_mode_change_alone_is_reported_and_made(tmp_path):
    target = tmp_path / "box.key"
    target.write_bytes(b"KEY")
    target.chmod(0o644)
    assert ClientFiles(check=True).write(str(target), b"KEY", 0o600, secret=True) is True
    assert _mode(target) == 0o644, "check mode changed the mode"
    files = ClientFiles(check=False)
    assert files.write(str(target), b"KEY", 0o600, secret=True) is True
    assert _mode(target) == 0o600
    assert files.diff() == {
        "before": {str(target): "mode 0644"},
        "after": {str(target): "mode 0600"},
    }


def test_a_key_is_shown_by_its_mode_never_by_its_content(tmp_path):
    target = tmp_path / "box.key"
    target.write_bytes(b"OLD SECRET")
    target.chmod(0o600)
    files = ClientFiles(check=False)
    assert files.write(str(target), b"NEW SECRET", 0o600, secret=True) is True
    shown = repr(files.diff())
    assert "SECRET" not in shown and "sha256" not in shown
    assert files.diff()["after"][str(target)] == "mode 0600, new content"
    assert target.read_bytes() == b"NEW SECRET"


def test_private_takes_group_access_away_only_outside_check_mode(tmp_path):
    key = tmp_path / "client.key"
    key.write_bytes(b"KEY")
    key.chmod(0o640)
    checked = ClientFiles(check=True)
    assert checked.private(str(key)) is True
    assert _mode(key) == 0o640
    assert checked.diff()["after"] == {str(key): "mode 0600"}
    assert ClientFiles(check=False).private(str(key)) is True
    assert _mode(key) == 0o600
    assert ClientFiles(check=False).private(str(key)) is False


def test_remote_entry_is_added_beside_the_others_and_shown_in_the_diff(tmp_path):
    conf = tmp_path / "incus"
    entry = client_config.remote_entry("https://10.0.0.5:8443/")
    checked = ClientFiles(check=True)
    assert checked.remote(str(conf), "box", entry) is True
    assert not conf.exists()
    key = f"{conf / 'config.yml'}: remotes.box"
    assert checked.diff()["before"][key] == {}
    assert checked.diff()["after"][key]["addr"] == "https://10.0.0.5:8443"

    files = ClientFiles(check=False)
    assert files.remote(str(conf), "box", entry) is True
    written = yaml.safe_load((conf / "config.yml").read_text())
    assert written["default-remote"] == "local"
    assert set(written["remotes"]) == {"box", "images", "local"}
    assert _mode(conf / "config.yml") == 0o600
    assert ClientFiles(check=False).remote(str(conf), "box", entry) is False
    assert os.listdir(conf) == ["config.yml"]
