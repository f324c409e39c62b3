# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Where an instance's image comes from: `REMOTE:ALIAS` to an Incus source, and the
check that a local image exists before an instance is created from it."""

from __future__ import annotations

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import IncusError

IMAGE_SERVERS = {
    "images": "https://images.linuxcontainers.org",
    "ubuntu": "https://cloud-images.ubuntu.com/releases",
}


def image_source(image: str) -> dict:
    """The `source` of an instance create request for `local:ALIAS`, a bare
    `ALIAS` or `SERVER:ALIAS` of a known public image server."""
    remote, _, alias = image.rpartition(":")
    if remote in ("", "local"):
        return {"type": "image", "alias": alias}
    if remote not in IMAGE_SERVERS:
        raise IncusError(
            f"Image '{image}': unknown remote '{remote}'; use local:ALIAS, "
            + ", ".join(f"{r}:ALIAS" for r in IMAGE_SERVERS)
        )
    return {
        "type": "image",
        "mode": "pull",
        "server": IMAGE_SERVERS[remote],
        "protocol": "simplestreams",
        "alias": alias,
    }


def require_image(api, image: str | None, label: str, project: str,
                  lookup_project: str | None) -> None:
    """Fail naming the image when creating `label` cannot work: no image given, an
    unknown remote, or a local image (looked up in `lookup_project`) that is missing."""
    if not image:
        raise IncusError(f"Creating {label} needs an image (option image).")
    source = image_source(image)
    if "server" in source:
        return
    alias = source["alias"]
    if (
        api.get(f"images/aliases/{alias}", lookup_project) is None
        and api.get(f"images/{alias}", lookup_project) is None
    ):
        raise IncusError(
            f"Image '{image}' not found on the Incus server (no alias '{alias}' in "
            f"project {project}): build or import it first "
            "(playbooks/host.yml builds local:aistack/debian-12 when image_build is set)."
        )
