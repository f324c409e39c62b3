"""A two-member Incus cluster formed and used by aistack, built from nested hosts.

`make apply-host` inside the first member (the controller) installs Incus on both members,
forms the cluster on the first and joins the second over ssh with a join token. The
infra.yml below places the STT machine on c1 and a client on c2; the bridge of the domain
exists on both members, and the client reaches the STT service through the address the
generator wired (c1's own address, where a proxy device publishes the port). `make
destroy` must leave nothing on either member.

The tests run in file order and share the members, as a user's steps would.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.cluster import members as cluster
from tests.helpers import nested_host as nested
from tests.helpers.checkout import ROOT
from tests.helpers.speech import synthesize_wav

pytestmark = pytest.mark.cluster

SENTENCE = "please turn on the kitchen lights"
C1, C2 = cluster.ADDRESSES[cluster.FIRST], cluster.ADDRESSES[cluster.SECOND]
INFRA = f"""\
global:
  base_subnet: "10.153"
  default_image: local:aistack/debian-12
  ca_certificates:
    - /etc/ssl/certs/ca-certificates.crt
cluster:
  members:
    c1:
      address: {C1}
    c2:
      address: {C2}
front_door:
  enabled: false
domains:
  speech:
    subnet_id: 20
    machines:
      stt:
        ip: 10.153.20.10
        roles: [stt_server]
        target: c1
        vars:
          stt_server_model: tiny.en
      client:
        ip: 10.153.20.20
        roles: [open_webui]
        target: c2
        vars:
          open_webui_ollama_base_url: ""
"""
CHECKOUT = nested.CHECKOUT
# The second member is reached over ssh with the test's key; its host key is new.
MAKE_ENV = "ANSIBLE_HOST_KEY_CHECKING=False"


def _timed(member: nested.NestedHost, target: str, log: str) -> object:
    return nested.make(member, target, log, env=MAKE_ENV)


@pytest.fixture(scope="module")
def hosts(cluster_members):
    first = cluster_members.first
    nested.copy_repository(first, ROOT)
    first.push(INFRA.encode(), f"{CHECKOUT}/infra.yml")
    # A user who replaces the example drops its generated files with --clean-orphans.
    first.run(f"cd {CHECKOUT} && make sync SYNC_ARGS=--clean-orphans", timeout=900,
              log="cluster-sync.log")
    return cluster_members


@pytest.fixture(scope="module")
def formed(hosts):
    """make apply-host: Incus on both members, the cluster formed and joined."""
    result = _timed(hosts.first, "apply-host", "cluster-apply-host.log")
    return result


@pytest.fixture(scope="module")
def applied(formed, hosts):
    """The image, then the infrastructure and the STT service on the cluster."""
    assert formed.returncode == 0, formed.stdout[-6000:]
    cluster.push_image(hosts.first, ROOT / "tests" / "output" / "cluster-image")
    infra = _timed(hosts.first, "apply-infra", "cluster-apply-infra.log")
    assert infra.returncode == 0, infra.stdout[-6000:]
    base = _timed(hosts.first, "apply-base", "cluster-apply-base.log")
    assert base.returncode == 0, base.stdout[-6000:]
    stt = _timed(hosts.first, "apply-stt", "cluster-apply-stt.log")
    assert stt.returncode == 0, stt.stdout[-6000:]
    return infra


def test_apply_host_forms_a_two_member_cluster(formed, hosts):
    assert formed.returncode == 0, formed.stdout[-6000:]
    listed = cluster.incus_json(hosts.first, "cluster", "list")
    assert sorted(m["server_name"] for m in listed) == ["c1", "c2"]
    assert {m["status"] for m in listed} == {"Online"}
    assert {m["url"] for m in listed} == {f"https://{C1}:8443", f"https://{C2}:8443"}
    # The second member sees the same cluster through its own daemon.
    seen = cluster.incus_json(hosts.second, "cluster", "list")
    assert sorted(m["server_name"] for m in seen) == ["c1", "c2"]


def test_a_second_apply_host_changes_nothing_in_the_cluster(applied):
    # apply-infra ran host.yml again on the formed cluster.
    out = applied.stdout
    for task in ("Enable clustering as member", "Join the cluster as member",
                 "Ask the first member for a join token"):
        lines = out.splitlines()
        heads = [i for i, line in enumerate(lines) if line.startswith("TASK [") and task in line]
        assert heads, task
        for i in heads:
            result = next(line for line in lines[i + 1:] if line.strip())
            assert result.startswith("skipping:"), (task, result)


def test_machines_run_on_their_members_and_the_bridge_on_both(applied, hosts):
    instances = cluster.incus_json(hosts.first, "list", "--project", "speech")
    where = {i["name"]: i["location"] for i in instances}
    assert where == {"stt": "c1", "client": "c2"}
    for member in (hosts.first, hosts.second):
        link = member.run("ip -4 -o addr show br-speech").stdout
        assert "10.153.20.1/24" in link, (member.site.name, link)
    # The STT port is published on c1's own address (a proxy device of the machine).
    listening = hosts.first.run("ss -ltnH").stdout
    assert f"{C1}:8000" in listening, listening


def test_the_client_on_c2_transcribes_through_the_wired_url(applied, hosts):
    first = hosts.first
    wired = first.run(
        f"cd {CHECKOUT} && .venv/bin/python -c \"import yaml,sys;"
        "print(yaml.safe_load(open('host_vars/client.yml'))['open_webui_stt_base_url'])\""
    ).stdout.strip()
    assert wired == f"http://{C1}:8000/v1"
    key = nested.api_key(first, f"{CHECKOUT}/.aistack/secrets/stt_api_key-stt")
    first.push(synthesize_wav(SENTENCE), "/root/command.wav")
    first.run("incus file push --project speech /root/command.wav client/root/command.wav")
    out = first.run(
        f"incus exec --project speech client -- {nested.TRANSCRIBE} "
        f"{wired}/audio/transcriptions {key}",
        timeout=300,
    ).stdout
    assert nested.words(json.loads(out)["text"]) == nested.words(SENTENCE)


def test_a_second_apply_infra_changes_nothing_on_the_cluster(applied, hosts):
    again = _timed(hosts.first, "apply-infra ARGS=--diff", "cluster-apply-infra-again.log")
    assert again.returncode == 0, again.stdout[-6000:]
    recap = again.stdout.split("PLAY RECAP")[-1].splitlines()
    hosts_seen = {line.split()[0]: line for line in recap if " : ok=" in line}
    assert set(hosts_seen) == {"localhost", "c1", "c2", "stt", "client"}, recap
    changed = {name: line for name, line in hosts_seen.items() if "changed=0 " not in line}
    assert not changed, changed


def _module(member: nested.NestedHost, module: str, **args: object) -> dict:
    """One run of homelab.aistack.<module> in the controller, as the infra play runs it."""
    encoded = base64.b64encode(json.dumps(args).encode()).decode()
    out = member.run(
        f"cd {CHECKOUT} && ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=json "
        f".venv/bin/ansible localhost -i localhost, -c local "
        f"-e ansible_python_interpreter={CHECKOUT}/.venv/bin/python "
        f"-m homelab.aistack.{module} -a \"$(echo {encoded} | base64 -d)\"",
        check=False, timeout=600,
    ).stdout
    return json.loads(out)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_a_running_machine_is_not_moved_and_an_unknown_member_is_named(applied, hosts):
    where = {"name": "client", "project": "speech", "state": "started"}
    refused = _module(hosts.first, "incus_instance", target="c1", **where)
    assert refused.get("failed") is True
    assert "runs on cluster member 'c2', but target wants it on 'c1'" in refused["msg"]
    assert "incus stop --project speech client" in refused["msg"]
    unknown = _module(hosts.first, "incus_instance", target="c3", **where)
    assert "'c3' (target), which is not in the cluster (members: c1, c2)" in unknown["msg"]
    instances = cluster.incus_json(hosts.first, "list", "--project", "speech")
    assert {i["name"]: (i["location"], i["status"]) for i in instances}["client"] == (
        "c2", "Running")


def test_a_stopped_machine_moves_to_its_new_member(applied, hosts):
    spare = {"name": "spare", "project": "speech", "image": "local:aistack/debian-12",
             "state": "stopped"}
    created = _module(hosts.first, "incus_instance", target="c2", **spare)
    assert created.get("failed") is not True, created
    assert created["instance"]["location"] == "c2"
    moved = _module(hosts.first, "incus_instance", target="c1", **spare)
    assert moved.get("failed") is not True, moved
    assert moved["changes"] == ["location"]
    assert moved["instance"]["location"] == "c1"
    again = _module(hosts.first, "incus_instance", target="c1", **spare)
    assert again["changed"] is False
    removed = _module(hosts.first, "incus_instance", name="spare", project="speech", state="absent")
    assert removed["changed"] is True


def test_a_network_left_pending_on_one_member_is_completed_on_both(applied, hosts):
    # What an interrupted run leaves: the network defined on c1 only, never created.
    hosts.first.run("incus network create br-pend --target c1")
    pending = cluster.incus_json(hosts.first, "network", "list")
    assert {n["name"]: n["status"] for n in pending}["br-pend"] == "Pending"
    config = {"ipv4.address": "10.153.99.1/24", "ipv4.nat": "true", "ipv6.address": "none"}
    done = _module(hosts.first, "incus_network", name="br-pend", config=config)
    assert done.get("failed") is not True, done
    assert done["changes"] == ["state"]
    networks = cluster.incus_json(hosts.first, "network", "list")
    assert {n["name"]: n["status"] for n in networks}["br-pend"] == "Created"
    for member in (hosts.first, hosts.second):
        link = member.run("ip -4 -o addr show br-pend").stdout
        assert "10.153.99.1/24" in link, (member.site.name, link)
    removed = _module(hosts.first, "incus_network", name="br-pend", state="absent")
    assert removed["changed"] is True
    for member in (hosts.first, hosts.second):
        assert member.run("ip link show br-pend", check=False).returncode != 0, member.site.name


def test_destroy_leaves_nothing_on_either_member(applied, hosts):
    result = _timed(hosts.first, "destroy FORCE=1", "cluster-destroy.log")
    assert result.returncode == 0, result.stdout[-6000:]
    for member in (hosts.first, hosts.second):
        assert cluster.incus_json(member, "list", "--all-projects") == []
        projects = [p["name"] for p in cluster.incus_json(member, "project", "list")]
        assert projects == ["default"], projects
        networks = [n["name"] for n in cluster.incus_json(member, "network", "list")
                    if n.get("managed")]
        assert networks == [], networks
        assert member.run("ip link show br-speech", check=False).returncode != 0, member.site.name
