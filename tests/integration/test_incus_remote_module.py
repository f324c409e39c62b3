"""homelab.aistack.incus_remote run as a task: check mode changes nothing on the
controller and says, as a diff, what a real run would write."""

from __future__ import annotations

import subprocess

from incus_harness import run_module


def test_check_mode_shows_the_remote_it_would_add_and_writes_nothing(tmp_path):
    conf = tmp_path / "incus"
    args = {"name": "box", "url": "unix:/run/incus-box/unix.socket", "config_dir": str(conf)}
    checked = run_module("incus_remote", args, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["changes"] == ["config"]
    entry = f"{conf / 'config.yml'}: remotes.box"
    assert checked["diff"]["before"][entry] == {}
    assert checked["diff"]["after"][entry]["addr"] == "unix:///run/incus-box/unix.socket"
    assert not conf.exists()

    applied = run_module("incus_remote", args)
    assert applied["changed"] is True
    assert (conf / "config.yml").is_file()
    again = run_module("incus_remote", args, check=True, diff=True)
    assert again["changed"] is False


def test_check_mode_leaves_a_readable_client_key_as_it_is(tmp_path):
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-384", "-nodes", "-subj", "/CN=t", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o644)
    args = {"name": "box", "url": "https://127.0.0.1:9", "client_cert": str(cert),
            "client_key": str(key), "config_dir": str(tmp_path / "incus")}
    checked = run_module("incus_remote", args, check=True)
    # Nothing answers on port 9: the run stops there, and must have touched nothing.
    assert checked["msg"].startswith("Cannot reach Incus at https://127.0.0.1:9"), checked
    assert key.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "incus").exists()

    applied = run_module("incus_remote", args)
    assert applied["msg"].startswith("Cannot reach Incus at https://127.0.0.1:9"), applied
    assert key.stat().st_mode & 0o777 == 0o600
