"""The ``global:`` section: addressing, images, storage and the Incus server to talk to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import addressing
from .loader import KeyPath
from .readers import Reader, Section, yaml_type
from .remote import remote_name_ok, remote_url_problem, token_fingerprint
from .schema import GPU_POLICIES, SECTIONS, GlobalSettings, ImageBuild, default

# base_subnet is required; this stands in while a broken one is reported, and the
# address checks that would use it are skipped (CheckedSettings.base_subnet_ok).
_STAND_IN_SUBNET = "10.100"


@dataclass(frozen=True)
class CheckedSettings:
    """The global settings, and whether base_subnet can be trusted for address checks."""

    settings: GlobalSettings
    base_subnet_ok: bool


def check(value: Any, read: Reader) -> CheckedSettings:
    """Read ``global:``; every problem goes to ``read.error``."""
    path: KeyPath = ("global",)
    data = read.section(value, path, "global") or Section("global", path, {}, read)
    base = data.get("base_subnet")
    base_ok = base is not None and addressing.base_subnet_problem(base) is None
    if base is not None and not base_ok:
        read.error(data.where("base_subnet"), addressing.base_subnet_problem(base) or "")
    image_build = None
    if data.get("image_build") is not None:
        build = read.section(data.get("image_build"), data.where("image_build"), "image_build")
        if build is not None:
            fields = SECTIONS["image_build"]
            image_build = ImageBuild(**{f.name: build.text(f.name) for f in fields})
    default_image = read.image(data.get("default_image"), data.where("default_image"))
    remote = _remote_name(data, read)
    cert_given = data.get("client_cert") is not None
    key_given = data.get("client_key") is not None
    if remote != "local" and cert_given != key_given:
        given, missing = (("client_cert", "client_key") if cert_given
                          else ("client_key", "client_cert"))
        read.error(data.where(missing), f"{given} is set, but {missing} is not; give both "
                   "(the pair the remote trusts), or neither to have one made in "
                   ".aistack/incus-client/")
    settings = GlobalSettings(
        base_subnet=str(base) if base_ok else _STAND_IN_SUBNET,
        gpu_policy=data.choice("gpu_policy", GPU_POLICIES),
        default_image=default_image or default("global", "default_image"),
        image_build=image_build,
        ca_certificates=_ca_certificates(data, read),
        remote=remote,
        remote_url=_remote_url(data, read, remote),
        client_cert=read.existing_file(data.get("client_cert"), data.where("client_cert")),
        client_key=read.existing_file(data.get("client_key"), data.where("client_key")),
        server_cert=read.existing_file(data.get("server_cert"), data.where("server_cert")),
        remote_token=_remote_token(data, read),
        storage_pool=data.text("storage_pool"),
        storage_driver=data.text("storage_driver"),
        network_acls=data.boolean("network_acls"),
    )
    return CheckedSettings(settings, base_ok)


def _remote_name(data: Section, read: Reader) -> str:
    text = data.text("remote")
    # The name becomes a remote of the Incus client (<name>:<instance>): no ':' or '/'.
    if not remote_name_ok(text):
        read.error(data.where("remote"), f"'{text}' cannot name an Incus remote; use letters, "
                   "digits, '-', '_' and '.', like gpu-box")
        return default("global", "remote")
    return text


def _remote_url(data: Section, read: Reader, remote: str) -> str | None:
    path = data.where("remote_url")
    text = read.string(data.get("remote_url"), path)
    # The project writes the remote into the Incus client from this address (the
    # connection plugin needs it there), so a remote other than "local" needs it.
    if text is None and remote != "local":
        read.error(
            path,
            f"remote is '{remote}', but remote_url is not set; give the daemon's address "
            "(https://host:8443, or unix:/path/to/unix.socket) or set remote: local",
        )
        return None
    if text is None:
        return None
    problem = remote_url_problem(text)
    if problem:
        read.error(path, problem)
        return None
    return text


def _remote_token(data: Section, read: Reader) -> str | None:
    path = data.where("remote_token")
    text = read.string(data.get("remote_token"), path)
    if text is not None and token_fingerprint(text) is None:
        read.error(path, "is not an Incus trust token; paste the whole token that "
                   "`incus config trust add <client name>` printed on the remote")
        return None
    return text


def _ca_certificates(data: Section, read: Reader) -> tuple[str, ...]:
    value, path = data.get("ca_certificates"), data.where("ca_certificates")
    if value is None:
        return tuple(default("global", "ca_certificates"))
    if not isinstance(value, list):
        read.error(path, f"must be a list of PEM file paths, not {yaml_type(value)}")
        return ()
    found = [read.existing_file(item, path + (i,)) for i, item in enumerate(value)]
    return tuple(dict.fromkeys(p for p in found if p))
