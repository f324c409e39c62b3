"""`make backup` / `make restore`, the controller's half: the archive keeps every file byte
for byte with its mode, is private, never shows a secret, and a damaged or foreign archive
is refused before anything is written. The Open WebUI snapshot scripts run here on a real
SQLite database that a writer holds open."""

from __future__ import annotations

import getpass
import gzip
import io
import json
import sqlite3
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from aistack.backup.__main__ import main

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-admin-password-Xy"


def _checkout(root: Path) -> Path:
    """A controller checkout after `make apply`: state, infra file and vars."""
    (root / ".aistack/front-door").mkdir(parents=True, mode=0o700)
    (root / ".aistack/secrets").mkdir(mode=0o700)
    (root / ".aistack/front-door/ca.key").write_text("-----BEGIN EC PRIVATE KEY-----\nk\n")
    (root / ".aistack/front-door/ca.key").chmod(0o600)
    (root / ".aistack/front-door/ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\n\x00c\n")
    (root / ".aistack/front-door/ca.crt").chmod(0o644)
    (root / ".aistack/open-webui-admin-web.password").write_text(SECRET)
    (root / ".aistack/open-webui-admin-web.password").chmod(0o600)
    (root / ".aistack/secrets/stt_api_key-ai").write_text("K" * 40)
    (root / "infra.yml").write_text("domains: {}\n")
    (root / "host_vars").mkdir()
    (root / "host_vars/web.yml").write_text(
        "# BEGIN aistack managed block\n# END aistack managed block\nmine: 1\n"
    )
    return root


def _stage(tmp: Path, machines: dict[str, bytes]) -> Path:
    stage = tmp / "stage"
    (stage / "open_webui").mkdir(parents=True)
    for name, data in machines.items():
        (stage / "open_webui" / f"{name}.tar.gz").write_bytes(data)
    return stage


def _pack(root: Path, stage: Path, capsys) -> Path:
    assert main(["--root", str(root), "pack", "--stage", str(stage)]) == 0
    return sorted((root / "backups").glob("aistack-*.tar.gz"))[-1]


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file() and "backups" not in p.parts
    }


def test_backup_then_restore_gives_back_every_file_byte_for_byte_with_its_mode(
    tmp_path: Path, capsys
) -> None:
    root = _checkout(tmp_path / "checkout")
    before = _files(root)
    archive = _pack(root, _stage(tmp_path, {"web": b"webui-data"}), capsys)
    out = capsys.readouterr().out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert SECRET not in out and "K" * 40 not in out
    # The controller is lost: .aistack/ and the vars are gone, then restored.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restage = tmp_path / "restage"
    assert (
        main(["--root", str(fresh), "unpack", "--file", str(archive), "--stage", str(restage)]) == 0
    )
    out = capsys.readouterr().out
    assert SECRET not in out
    assert _files(fresh) == before
    assert (restage / "open_webui/web.tar.gz").read_bytes() == b"webui-data"


def test_restore_without_a_file_takes_the_newest_backup(tmp_path: Path, capsys) -> None:
    root = _checkout(tmp_path / "checkout")
    (root / "backups").mkdir()
    old = root / "backups/aistack-20200101-000000.tar.gz"
    old.write_bytes(b"not even gzip")
    newest = _pack(root, _stage(tmp_path, {"web": b"x"}), capsys)
    assert newest != old
    assert main(["--root", str(root), "verify"]) == 0
    assert str(newest) in capsys.readouterr().out


def _rewrite(archive: Path, change) -> None:
    """Rewrite the tar's members through `change(name, data) -> list[(name, data)]`."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members:
            for new_name, new_data in change(name, data):
                info = tarfile.TarInfo(new_name)
                info.size = len(new_data)
                tar.addfile(info, io.BytesIO(new_data))
    archive.write_bytes(buf.getvalue())


def _tampered_member(name, data):
    if name.endswith("stt_api_key-ai"):
        data = b"L" * 40
    return [(name, data)]


def _extra_member(name, data):
    out = [(name, data)]
    if name.endswith("infra.yml"):
        out.append(("controller/.aistack/planted", b"x"))
    return out


def _escaping_member(name, data):
    if name.endswith("infra.yml"):
        return [("controller/../../escaped", data)]
    return [(name, data)]


def _foreign_marker(name, data):
    if name == "aistack-backup.json":
        manifest = json.loads(data)
        manifest["format"] = "someone-elses-backup"
        data = json.dumps(manifest).encode()
    return [(name, data)]


def _future_version(name, data):
    if name == "aistack-backup.json":
        manifest = json.loads(data)
        manifest["version"] = 99
        data = json.dumps(manifest).encode()
    return [(name, data)]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_tampered_member, "checksum mismatch in controller/.aistack/secrets/stt_api_key-ai"),
        (_extra_member, "not listed: ['controller/.aistack/planted']"),
        (_escaping_member, "unexpected member 'controller/../../escaped'"),
        (_foreign_marker, "is not an aistack backup (no format marker"),
        (_future_version, "format version 99"),
    ],
)
def test_a_damaged_or_foreign_archive_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys, damage, message: str
) -> None:
    root = _checkout(tmp_path / "checkout")
    archive = _pack(root, _stage(tmp_path, {"web": b"data"}), capsys)
    _rewrite(archive, damage)
    target = _checkout(tmp_path / "target")
    (target / ".aistack/secrets/stt_api_key-ai").write_text("new-key")
    before = _files(target)
    restage = tmp_path / "restage"
    code = main(["--root", str(target), "unpack", "--file", str(archive), "--stage", str(restage)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert _files(target) == before
    assert not restage.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x1f\x8b\x08\x00truncated", "is damaged or not a gzip'd tar archive"),
        (gzip.compress(b"plain text, no tar"), "is damaged or not a gzip'd tar archive"),
        (None, "does not start with aistack-backup.json"),
    ],
)
def test_a_file_that_is_no_backup_is_refused(tmp_path: Path, capsys, content, message) -> None:
    archive = tmp_path / "foreign.tar.gz"
    if content is None:  # a valid tar of someone else's files
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("etc/passwd")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
        content = buf.getvalue()
    archive.write_bytes(content)
    target = _checkout(tmp_path / "target")
    before = _files(target)
    code = main(
        ["--root", str(target), "unpack", "--file", str(archive), "--stage", str(tmp_path / "s")]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert _files(target) == before


def test_a_truncated_archive_is_refused(tmp_path: Path, capsys) -> None:
    root = _checkout(tmp_path / "checkout")
    archive = _pack(root, _stage(tmp_path, {"web": bytes(range(256)) * 4096}), capsys)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    target = _checkout(tmp_path / "target")
    before = _files(target)
    code = main(
        ["--root", str(target), "unpack", "--file", str(archive), "--stage", str(tmp_path / "s")]
    )
    assert code == 2
    assert "is damaged" in capsys.readouterr().err
    assert _files(target) == before


def test_no_backup_to_restore_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code = main(["--root", str(tmp_path), "unpack", "--stage", str(tmp_path / "s")])
    assert code == 2
    assert "no backup under" in capsys.readouterr().err


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "playbooks/files" / name), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_webui_snapshot_holds_what_a_running_writer_committed_and_restores_whole(
    tmp_path: Path,
) -> None:
    data = tmp_path / "open-webui"
    (data / "uploads").mkdir(parents=True)
    (data / "uploads/recording.webm").write_bytes(b"audio")
    (data / "cache").mkdir()
    (data / "cache/model.bin").write_bytes(b"big")
    (data / ".webui_secret_key").write_text("session-key")
    # Open WebUI holds the database open in WAL mode: the committed chat is in the -wal
    # file, not yet in webui.db; a plain file copy of webui.db alone would miss it.
    live = sqlite3.connect(data / "webui.db")
    live.execute("pragma journal_mode=wal")
    live.execute("pragma wal_autocheckpoint=0")
    live.execute("create table chat (title text)")
    live.execute("insert into chat values ('made before the backup')")
    live.commit()
    snapshot = tmp_path / "snap.tar.gz"
    run = _script("webui_snapshot.py", str(data), str(snapshot))
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    live.execute("insert into chat values ('made after the backup')")
    live.commit()
    live.close()

    run = _script("webui_restore.py", str(snapshot), str(data), getpass.getuser())
    assert run.returncode == 0, run.stderr
    assert not (data / "webui.db-wal").exists()
    titles = [r[0] for r in sqlite3.connect(data / "webui.db").execute("select title from chat")]
    assert titles == ["made before the backup"]
    assert (data / "uploads/recording.webm").read_bytes() == b"audio"
    assert (data / ".webui_secret_key").read_text() == "session-key"
    assert not (data / "cache").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["open-webui", "snap.tar.gz"]


def test_a_flipped_byte_anywhere_in_the_archive_is_refused(tmp_path: Path, capsys) -> None:
    """In a member, in a tar header, in the padding tarfile never reads, in gzip's trailer."""
    root = _checkout(tmp_path / "checkout")
    archive = _pack(root, _stage(tmp_path, {"web": bytes(range(256)) * 400}), capsys)
    data = archive.read_bytes()
    target = _checkout(tmp_path / "target")
    before = _files(target)
    for position in (len(data) // 4, len(data) // 2, len(data) - 30, len(data) - 2):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        bad = tmp_path / "bad.tar.gz"
        bad.write_bytes(bytes(damaged))
        code = main(
            ["--root", str(target), "unpack", "--file", str(bad), "--stage", str(tmp_path / "s")]
        )
        assert code == 2, position
        assert "is damaged" in capsys.readouterr().err, position
    assert _files(target) == before
