"""The front_door section: on by default, validated with every error at once, rendered into
proxy devices and role variables of the Open WebUI machine."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from generator_support import EXAMPLE, Workspace

from aistack.front_door import dns_name_problem


def errors(ws: Workspace, text: str) -> list[str]:
    return ws.refused(text)


def with_door(body: str, stt_vars: str = "") -> str:
    text = EXAMPLE
    if stt_vars:
        text = text.replace(
            '          limits.cpu: "2"\n', f'          limits.cpu: "2"\n        vars:\n{stt_vars}'
        )
    return text + "front_door:\n" + body


def _pem_pair(tmp: Path, days: int, other_key: bool = False) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ai.home.arpa")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(signer, hashes.SHA256())
    )
    cert_file, key_file = tmp / "door.crt", tmp / "door.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_door_is_on_by_default_and_opens_only_open_webui(ws: Workspace) -> None:
    assert ws.sync().code == 0
    web = yaml.safe_load(ws.read("host_vars/web.yml"))
    assert web["aistack_instance"]["devices"] == {
        "aistack-https": {
            "type": "proxy",
            "listen": "tcp:0.0.0.0:443",
            "connect": "tcp:127.0.0.1:443",
            # nginx learns each LAN client's address from the PROXY protocol header.
            "proxy_protocol": "true",
        }
    }
    assert web["front_door_stt_port"] == 0
    inventory = yaml.safe_load(ws.read("inventory/lab.yml"))
    assert inventory["front_door"] == {"hosts": {"web": {}}}
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    assert ai["aistack_instance"]["devices"] == {}


def test_door_turned_off_adds_nothing(ws: Workspace) -> None:
    ws.write(with_door("  enabled: false\n"))
    assert ws.sync().code == 0
    web = yaml.safe_load(ws.read("host_vars/web.yml"))
    assert web["aistack_instance"]["devices"] == {}
    assert "front_door" not in yaml.safe_load(ws.read("inventory/lab.yml"))


def test_listen_addresses_ports_names_and_stt_api_with_a_key(ws: Workspace) -> None:
    ws.write(
        with_door(
            "  listen: [192.168.1.5, 10.0.0.5]\n  https_port: 4443\n  stt_port: 8443\n"
            "  names: [AI.home.arpa, 192.168.1.5]\n",
            stt_vars="          stt_server_api_key: sekret-key-1\n",
        )
    )
    assert ws.sync().code == 0, ws.run("validate", str(ws.infra))
    web = yaml.safe_load(ws.read("host_vars/web.yml"))
    devices = web["aistack_instance"]["devices"]
    assert devices["aistack-https-0"]["listen"] == "tcp:192.168.1.5:4443"
    assert devices["aistack-https-1"]["listen"] == "tcp:10.0.0.5:4443"
    assert devices["aistack-stt-1"] == {
        "type": "proxy",
        "listen": "tcp:10.0.0.5:8443",
        "connect": "tcp:127.0.0.1:8443",
        "proxy_protocol": "true",
    }
    assert web["front_door_names"] == ["ai.home.arpa", "192.168.1.5"]
    assert web["front_door_stt_upstream"] == "http://10.100.10.10:8000"
    assert "sekret" not in ws.read("host_vars/web.yml")


def test_stt_api_with_the_key_turned_off_is_refused_naming_the_variable(ws: Workspace) -> None:
    lines = errors(
        ws, with_door("  stt_port: 8443\n", stt_vars='          stt_server_api_key: ""\n')
    )
    assert any(
        ": front_door.stt_port: " in line and "stt_server_api_key" in line and "machine ai" in line
        for line in lines
    ), lines


def test_stt_api_with_the_generated_key_is_opened(ws: Workspace) -> None:
    ws.write(with_door("  stt_port: 8443\n"))
    assert ws.sync().code == 0, ws.run("validate", str(ws.infra))
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    assert "lookup('ansible.builtin.password'" in ai["stt_server_api_key"]


def test_every_bad_value_is_reported_at_once_with_its_line(ws: Workspace) -> None:
    lines = errors(
        ws,
        with_door(
            "  https_port: 70000\n  stt_port: web\n  listen: [not-an-ip]\n"
            "  names: [bad_name.lan, -x.lan]\n  machine: ai\n  colour: blue\n"
        ),
    )
    infra = str(ws.infra)
    expected = {
        "front_door.https_port": "70000 is not a TCP port",
        "front_door.stt_port": "'web' is not a TCP port",
        "front_door.listen[0]": "'not-an-ip' is not an IPv4 address",
        "front_door.names[0]": "'bad_name.lan' is not a DNS name",
        "front_door.names[1]": "'-x.lan' is not a DNS name",
        "front_door.machine": "machine 'ai' does not carry role open_webui",
        "front_door.colour": "unknown key 'colour'",
    }
    for path, words in expected.items():
        found = [line for line in lines if f": {path}: " in line]
        assert found and words in found[0], (path, lines)
        assert found[0].startswith(infra + ":"), found[0]
    https_line = next(line for line in lines if ": front_door.https_port: " in line)
    assert https_line.split(":")[1] == str(EXAMPLE.count("\n") + 2)


def test_port_held_by_a_host_process_is_refused(ws: Workspace) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        lines = errors(ws, with_door(f"  https_port: {port}\n"))
    assert any(
        f"port {port} on this host is taken by" in line and "pid" in line for line in lines
    ), lines


def test_port_exposed_by_another_proxy_device_is_refused(ws: Workspace) -> None:
    text = EXAMPLE.replace(
        '          limits.cpu: "2"\n',
        '          limits.cpu: "2"\n        devices:\n          web443:\n'
        "            type: proxy\n            listen: tcp:0.0.0.0:443\n"
        "            connect: tcp:127.0.0.1:80\n",
    )
    lines = errors(ws, text)
    assert any(
        ": front_door.https_port: " in line and "device web443 of machine ai" in line
        for line in lines
    ), lines


def test_user_certificate_checks_expiry_and_key(ws: Workspace, tmp_path: Path) -> None:
    good_cert, good_key = _pem_pair(tmp_path, days=90)
    ws.write(with_door(f"  certificate: {{cert: {good_cert}, key: {good_key}}}\n"))
    assert ws.sync().code == 0
    web = yaml.safe_load(ws.read("host_vars/web.yml"))
    assert web["front_door_cert_file"] == str(good_cert)

    (tmp_path / "old").mkdir()
    old_cert, old_key = _pem_pair(tmp_path / "old", days=-1)
    (tmp_path / "odd").mkdir()
    odd_cert, _ = _pem_pair(tmp_path / "odd", days=90, other_key=True)
    for cert, key, words in (
        (old_cert, old_key, "expired on"),
        (odd_cert, good_key, "is not the key of"),
    ):
        shutil.rmtree(ws.root / "host_vars", ignore_errors=True)
        lines = errors(ws, with_door(f"  certificate: {{cert: {cert}, key: {key}}}\n"))
        assert any(": front_door.certificate: " in line and words in line for line in lines), lines


@pytest.mark.parametrize("name", ["ai.home.arpa", "ai", "192.168.1.5", "ai.lan."])
def test_dns_names_and_addresses_are_accepted(name: str) -> None:
    assert dns_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a b", "x..y", "a" * 64 + ".lan", "10.1.2.300", "*.lan"])
def test_non_names_are_refused(name: str) -> None:
    assert dns_name_problem(name) is not None
