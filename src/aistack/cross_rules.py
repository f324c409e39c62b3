"""Rules that need every machine at once: GPU exclusivity and the machine names in ``allow:``.

They run after all domains are read, on the typed model, so each rule sees the whole
file whatever order the machines were written in.
"""

from __future__ import annotations

from .machines import has_gpu
from .readers import Error
from .schema import Infra


def gpu_policy(infra: Infra, error: Error) -> None:
    """With gpu_policy exclusive, only the first machine that needs a GPU may have one."""
    if infra.settings.gpu_policy != "exclusive":
        return
    holders = [m for m in infra.machines if m.needs_gpu]
    first = holders[0] if holders else None
    for machine in holders[1:]:
        assert first is not None
        path = (
            "domains",
            machine.domain,
            "machines",
            machine.name,
            "gpu" if machine.gpu is not None else "devices",
        )
        if machine.gpu is None and not has_gpu(machine.devices):
            path = path[:-1] + ("profiles",)
        error(
            path,
            f"machine {machine.name} needs a GPU but gpu_policy is exclusive "
            f"and machine {first.name} already holds one; give a GPU to one "
            "machine only, or set global.gpu_policy: shared",
        )


def allow_sources(infra: Infra, error: Error) -> None:
    """Machine names in ``allow:`` must name machines of infra.yml, in any domain."""
    known = {m.name for m in infra.machines}
    for machine in infra.machines:
        for entry in machine.allow:
            key = entry.role or str(entry.port)
            for index, source in enumerate(entry.sources):
                if "/" not in source and source not in known:
                    error(
                        ("domains", machine.domain, "machines", machine.name, "allow", key, index),
                        f"'{source}' is neither a machine of infra.yml nor an IPv4 "
                        "address or network; name a machine or write a CIDR "
                        "like 192.168.1.0/24",
                    )
