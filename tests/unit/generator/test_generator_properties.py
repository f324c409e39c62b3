"""Property-based tests: any valid infra syncs stably, user text survives, bad input is named."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from generator_support import ROLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aistack import blocks, emit, loader, writer
from aistack.errors import AistackError
from aistack.sync import SyncRequest, bodies, plan
from aistack.validate import check

# AISTACK_HYPOTHESIS_EXAMPLES raises the count for a deeper search than the
# default run (which must stay fast); derandomized so CI is reproducible.
EXAMPLES = int(os.environ.get("AISTACK_HYPOTHESIS_EXAMPLES", "25"))
FAST = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 25,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NAME = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)


@st.composite
def infra_data(draw: st.DrawFn) -> dict[str, Any]:
    """A valid infra.yml as data: unique names, subnets and addresses, one full AI stack."""
    domain_names = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    subnet_ids = draw(st.lists(st.integers(0, 255), min_size=len(domain_names),
                               max_size=len(domain_names), unique=True))
    taken: set[str] = set(domain_names) | {"aistack", "all", "ungrouped", *ROLES}
    domains: dict[str, Any] = {}
    for name, subnet_id in zip(domain_names, subnet_ids, strict=True):
        machine_names = draw(st.lists(NAME.filter(lambda n: n not in taken), min_size=0,
                                      max_size=4, unique=True))
        taken.update(machine_names)
        octets = draw(st.lists(st.integers(2, 199), min_size=len(machine_names),
                               max_size=len(machine_names), unique=True))
        machines = {}
        for machine, octet in zip(machine_names, octets, strict=True):
            body: dict[str, Any] = {"ip": f"10.100.{subnet_id}.{octet}",
                                    "roles": draw(st.sampled_from([[], ["base_system"]]))}
            if draw(st.booleans()):
                body["description"] = draw(st.text(max_size=120))
            if draw(st.booleans()):
                body["config"] = {"limits.cpu": draw(st.integers(1, 64))}
            if draw(st.booleans()):
                body["vars"] = {"note_" + machine: draw(st.text(max_size=20))}
            machines[machine] = body
        domains[name] = {"subnet_id": subnet_id, "machines": machines}
    # One domain carries the stack so that wiring is exercised.
    first = domain_names[0]
    used = {int(m["ip"].rsplit(".", 1)[1]) for m in domains[first]["machines"].values()}
    free = [octet for octet in range(2, 200) if octet not in used]
    for role, octet in zip(("ollama_server", "stt_server", "open_webui"), free[:3], strict=True):
        name = "svc-" + role.split("_")[0]  # NAME never makes a '-', so this is free
        domains[first]["machines"][name] = {"ip": f"10.100.{subnet_ids[0]}.{octet}",
                                            "roles": [role]}
    return {"global": {"base_subnet": "10.100"}, "domains": domains}


def write(root: Path, data: dict[str, Any]) -> Path:
    path = root / "infra.yml"
    # ASCII only: PyYAML writes some line-break characters (NEL) raw and reads them back as breaks.
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def sync(path: Path) -> writer.Plan:
    result = plan(SyncRequest(infra=path, roles=frozenset(ROLES)))
    writer.apply(result)
    return result


@FAST
@given(infra_data())
def test_sync_is_stable_and_writes_what_infra_says(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), data)
        first = sync(path)
        assert first.changes
        assert sync(path).empty  # a second run changes nothing
        for domain in data["domains"].values():
            for name, machine in domain["machines"].items():
                host = yaml.safe_load((Path(tmp) / "host_vars" / f"{name}.yml").read_text())
                assert host["aistack_instance"]["ip"] == machine["ip"]
                assert host["aistack_instance"]["description"] == machine.get("description", "")
                for key, value in machine.get("vars", {}).items():
                    assert host[key] == value


USER_COMMENT = st.one_of(
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40)
    .map(lambda t: "# " + t),
)
USER_LINE = st.one_of(
    USER_COMMENT,
    st.tuples(st.from_regex(r"user_[a-z]{1,8}", fullmatch=True), st.integers())
    .map(lambda kv: f"{kv[0]}: {kv[1]}"),
)


@FAST
@given(infra_data(), st.lists(USER_COMMENT, max_size=5), st.lists(USER_LINE, max_size=5),
       st.sampled_from(["\n", "\r\n"]), st.text(max_size=30))
def test_user_text_outside_the_block_survives_resync(data: dict[str, Any], above: list[str],
                                                    below: list[str], eol: str,
                                                    new_description: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write(root, data)
        sync(path)
        head = "".join(line + eol for line in above) + "---" + eol
        tail = "".join(line + eol for line in below)
        target = root / "group_vars/all.yml"
        text = target.read_text()
        target.write_bytes((head + text[len("---\n"):] + tail).encode())
        first_domain = next(iter(data["domains"].values()))
        first_domain["description"] = new_description
        write(root, data)
        sync(path)
        result = target.read_bytes().decode()
        assert result.startswith(head + blocks.BEGIN)
        assert result.endswith(blocks.END + "\n" + tail)
        loaded = yaml.safe_load(result)
        assert next(iter(loaded["aistack_domains"].values()))["description"] == new_description


def mutations(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Ways to break a valid infra, each with the key path its error must name."""
    domains = data["domains"]
    dname, domain = next(iter(domains.items()))
    mname, machine = next(iter(domain["machines"].items()))
    second = list(domain["machines"])[1]
    base = f"domains.{dname}.machines.{mname}"
    used = {d["subnet_id"] for d in domains.values()}
    other_subnet = min(set(range(256)) - used)
    return [
        (f"{base}.ip", lambda: machine.update(ip=f"10.100.{other_subnet}.5")),
        (f"{base}.ip", lambda: machine.update(ip=f"10.100.{domain['subnet_id']}.1")),
        (f"{base}.ip", lambda: machine.update(ip=f"10.100.{domain['subnet_id']}.255")),
        (f"{base}.roles[0]", lambda: machine.update(roles=["no_such_role"])),
        (f"{base}.rolez", lambda: machine.update(rolez=[])),
        (f"{base}.profiles[0]", lambda: machine.update(profiles=["missing"])),
        (f"domains.{dname}.subnet_id", lambda: domain.update(subnet_id=300)),
        (f"domains.{dname}.subnett_id", lambda: domain.update(subnett_id=3)),
        ("global.gpu_policy", lambda: data["global"].update(gpu_policy="sometimes")),
        (f"domains.{dname}x{'y' * 12}",
         lambda: domains.update({f"{dname}x{'y' * 12}": {"subnet_id": other_subnet}})),
        (f"domains.{dname}.machines.{second}.ip",
         lambda: domain["machines"][second].update(ip=machine["ip"])),
        ("domains.zzdup.subnet_id",
         lambda: domains.update(zzdup={"subnet_id": domain["subnet_id"]})),
        (f"domains.zzdup.machines.{mname}", lambda: domains.update(zzdup={
            "subnet_id": other_subnet, "machines": {mname: {"ip": f"10.100.{other_subnet}.7"}}})),
        (f"domains.{dname}.machines.Bad_Name", lambda: domain["machines"].update(
            Bad_Name={"ip": f"10.100.{domain['subnet_id']}.250"})),
        (f"{base}.gpu", lambda: (machine.update(gpu=True), data["domains"].setdefault(
            "zzgpu", {"subnet_id": other_subnet, "machines": {
                "zzgpumachine": {"ip": f"10.100.{other_subnet}.9", "gpu": True}}}))),
    ]


@pytest.mark.parametrize("which", range(15))
@settings(max_examples=max(10, EXAMPLES // 3), deadline=None, derandomize=EXAMPLES <= 25,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=infra_data())
def test_every_mutation_is_rejected_naming_its_key_path(data: dict[str, Any], which: int) -> None:
    path, mutate = mutations(data)[which]
    mutate()
    if "zzgpumachine" in str(data) and path.endswith(".gpu"):
        # Whichever GPU machine comes second is the one reported.
        path = "domains.zzgpu.machines.zzgpumachine.gpu"
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        check(loader.parse(text, "infra.yml"), ROLES, Path("/"))
    except AistackError as exc:
        assert path in exc.paths(), [str(i) for i in exc.issues]
    else:
        raise AssertionError(f"accepted a file that should fail at {path}")


PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10) | st.integers(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=EXAMPLES * 6, deadline=None, derandomize=EXAMPLES <= 25)
@given(st.dictionaries(st.text(min_size=1, max_size=12), PLAIN, min_size=1, max_size=5))
def test_emitted_yaml_reads_back_as_the_same_data(data: dict[str, Any]) -> None:
    assert yaml.load(emit.dump(data), Loader=yaml.CSafeLoader) == data


def test_bodies_are_deterministic() -> None:
    data = {"global": {"base_subnet": "10.1"}, "domains": {"a": {"subnet_id": 1, "machines": {
        "m": {"ip": "10.1.1.2"}}}}}
    text = yaml.safe_dump(data)
    first = bodies(check(loader.parse(text, "x"), ROLES, Path("/")))
    second = bodies(check(loader.parse(text, "x"), ROLES, Path("/")))
    assert first == second
