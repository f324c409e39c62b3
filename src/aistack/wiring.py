"""Service endpoints derived from roles, so that nobody types an IP twice.

A machine with open_webui needs the Ollama URL and the STT URL. The provider is
the machine named in its ``wiring:``; otherwise the only machine with that role
in the same domain; otherwise the only one anywhere. More than one candidate is
an error that names them, never a silent pick. On a cluster, a provider on another
member is reached at its member's address (cluster.py publishes the port there).

On a shared GPU (one machine with both roles and a GPU, or an STT machine and the
only Ollama machine both holding the host's GPU) the two tenants learn about each
other: aistack-stt gets the Ollama URL (to ask it to unload idle models when GPU
memory is short), Ollama gets the STT model and compute type (to keep their need
free, OLLAMA_GPU_OVERHEAD). Several candidates: nothing is wired, no guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import cluster
from .loader import KeyPath
from .schema import DEFAULT_PORTS, PORT_VARS, Infra, Machine

CONSUMER_ROLE = "open_webui"
OLLAMA_URL = "open_webui_ollama_base_url"
STT_URL = "open_webui_stt_base_url"
STT_HOST = "open_webui_stt_host"
# Provider role → the consumer's URL variable and the path after host:port.
_URLS = {"ollama_server": (OLLAMA_URL, ""), "stt_server": (STT_URL, "/v1")}
# Sharing a GPU (gpu_sharing below).
STT_OLLAMA_URL = "stt_server_ollama_url"
OLLAMA_STT_MODEL = "ollama_server_stt_model"
OLLAMA_STT_COMPUTE_TYPE = "ollama_server_stt_compute_type"
# The stt_server role's model on a GPU when host_vars name none (its vars/main.yml
# _stt_server_default_model_gpu; a unit test keeps the two equal).
STT_GPU_DEFAULT_MODEL = "large-v3-turbo"


@dataclass(frozen=True)
class Wiring:
    """Variables a consumer machine gets in its host_vars."""

    variables: dict[str, str]
    # role -> machine that serves it; the network ACLs open exactly these paths.
    providers: dict[str, str] = field(default_factory=dict)


def published(infra: Infra, wired: dict[str, Wiring]) -> dict[str, dict[str, dict[str, str]]]:
    """Provider machine → the proxy devices that publish its ports to other members."""
    result: dict[str, dict[str, dict[str, str]]] = {}
    if infra.cluster is None:
        return result
    by_name = {m.name: m for m in infra.machines}
    for consumer_name, wiring in wired.items():
        consumer = by_name[consumer_name]
        for role, provider_name in wiring.providers.items():
            provider = by_name[provider_name]
            if cluster.across_members(infra, consumer, provider):
                name, device = cluster.publish_device(infra, provider, role, _port(provider, role))
                result.setdefault(provider_name, {})[name] = device
    return result


def _port(machine: Machine, role: str) -> int:
    value = machine.vars.get(PORT_VARS[role], DEFAULT_PORTS[role])
    return int(value)


def _provider(
    infra: Infra, consumer: Machine, role: str
) -> tuple[Machine | None, tuple[KeyPath, str] | None]:
    base: KeyPath = ("domains", consumer.domain, "machines", consumer.name)
    chosen = consumer.wiring.get(role)
    carriers = [m for m in infra.machines if role in m.roles]
    if chosen is not None:
        match = next((m for m in carriers if m.name == chosen), None)
        if match is None:
            names = ", ".join(m.name for m in carriers) or "none"
            return None, (
                base + ("wiring", role),
                f"machine '{chosen}' does not carry role {role}; machines that do: {names}",
            )
        return match, None
    local = [m for m in carriers if m.domain == consumer.domain]
    candidates = local or carriers
    if len(candidates) == 1:
        return candidates[0], None
    if not candidates:
        override = OLLAMA_URL if role == "ollama_server" else STT_URL
        return None, (
            base + ("roles",),
            f"role {CONSUMER_ROLE} needs a machine with role {role}, and none has it; "
            f"add {role} to a machine's roles, or set vars.{override} by hand "
            '("" for none)',
        )
    where = f"domain {consumer.domain}" if local else "all domains"
    names = ", ".join(m.name for m in candidates)
    return None, (
        base + ("roles",),
        f"role {CONSUMER_ROLE} could use role {role} on several machines in {where} "
        f"({names}); choose one with wiring: {{{role}: <machine>}} on this machine",
    )


def _port_problem(machine: Machine, role: str) -> tuple[KeyPath, str] | None:
    var = PORT_VARS[role]
    value = machine.vars.get(var)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return (
            ("domains", machine.domain, "machines", machine.name, "vars", var),
            f"{value!r} is not a TCP port; use a whole number 1–65535",
        )
    return None


def resolve(infra: Infra) -> tuple[dict[str, Wiring], list[tuple[KeyPath, str]]]:
    """Endpoints for every consumer machine, and the problems that prevent them."""
    problems: list[tuple[KeyPath, str]] = []
    for machine in infra.machines:
        for role in PORT_VARS:
            if role in machine.roles:
                problem = _port_problem(machine, role)
                if problem:
                    problems.append(problem)
    if problems:
        return {}, problems
    result: dict[str, Wiring] = {}
    for consumer in infra.machines:
        unused = set(consumer.wiring) - (
            set(PORT_VARS) if CONSUMER_ROLE in consumer.roles else set()
        )
        for key in sorted(unused):
            problems.append(
                (
                    ("domains", consumer.domain, "machines", consumer.name, "wiring", key),
                    f"wiring only applies to machines with role {CONSUMER_ROLE}; remove it here",
                )
            )
        if CONSUMER_ROLE not in consumer.roles:
            continue
        variables: dict[str, str] = {}
        providers: dict[str, str] = {}
        for role, (url_var, url_path) in _URLS.items():
            if url_var in consumer.vars:
                continue
            provider, problem = _provider(infra, consumer, role)
            if problem:
                problems.append(problem)
            elif provider is not None:
                host = cluster.reachable_host(infra, consumer, provider)
                variables[url_var] = f"http://{host}:{_port(provider, role)}{url_path}"
                if role == "stt_server":
                    variables[STT_HOST] = provider.name
                providers[role] = provider.name
        result[consumer.name] = Wiring(variables, providers)
    return merged(result, gpu_sharing(infra)), problems


def _same_gpu(a: Machine, b: Machine) -> bool:
    """Whether two machines hold the same GPU of the host: both hold one, and they do not
    name different GPUs (by id or PCI address)."""
    if not (a.needs_gpu and b.needs_gpu):
        return False
    if a.name == b.name or a.gpu is None or b.gpu is None:
        return True
    first, second = (a.gpu.id, a.gpu.pci), (b.gpu.id, b.gpu.pci)
    if first == (None, None) or second == (None, None):
        return True
    return first == second


def _gpu_peer(infra: Infra, machine: Machine, role: str) -> Machine | None:
    """The one machine with ``role`` on the same GPU as ``machine`` (itself first)."""
    if role in machine.roles and machine.needs_gpu:
        return machine
    peers = [m for m in infra.machines if role in m.roles and _same_gpu(m, machine)]
    return peers[0] if len(peers) == 1 else None


def gpu_sharing(infra: Infra) -> dict[str, Wiring]:
    """Variables for the tenants of a shared GPU (see the module docstring)."""
    result: dict[str, Wiring] = {}
    for machine in infra.machines:
        if not machine.needs_gpu:
            continue
        variables: dict[str, str] = {}
        providers: dict[str, str] = {}
        if "stt_server" in machine.roles:
            ollama = _gpu_peer(infra, machine, "ollama_server")
            if ollama is not None:
                port = _port(ollama, "ollama_server")
                variables[STT_OLLAMA_URL] = f"http://{ollama.ip}:{port}"
                if ollama.name != machine.name:
                    providers["ollama_server"] = ollama.name
        if "ollama_server" in machine.roles:
            stt = _gpu_peer(infra, machine, "stt_server")
            if stt is not None:
                variables[OLLAMA_STT_MODEL] = str(
                    stt.vars.get("stt_server_model") or STT_GPU_DEFAULT_MODEL
                )
                compute_type = stt.vars.get("stt_server_quantization", "")
                variables[OLLAMA_STT_COMPUTE_TYPE] = str(compute_type)
        if variables:
            result[machine.name] = Wiring(variables, providers)
    return result


def merged(first: dict[str, Wiring], second: dict[str, Wiring]) -> dict[str, Wiring]:
    """Both wirings, machine by machine (a machine can be a consumer and a GPU tenant)."""
    result = dict(first)
    for name, wiring in second.items():
        old = result.get(name, Wiring({}))
        result[name] = Wiring(
            {**old.variables, **wiring.variables}, {**old.providers, **wiring.providers}
        )
    return result
