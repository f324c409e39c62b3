# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""The one read, compare, write flow the incus_* object modules share.

Every module that manages one Incus object (a project, network, network ACL,
profile or instance) does the same thing: read the object, remove it when
``state: absent``, create it when it is missing, otherwise put the fields that
differ; in check mode it writes nothing and reports the object as it would be;
with --diff the report is a before/after pair. That flow lives here once, in
``Reconciler.run``; a module subclasses ``Reconciler`` and fills in only what is
particular to its object: how it is shown (``view``), what a new one holds
(``new``) and what an update changes (``update``), plus the hooks it needs.
"""

from __future__ import annotations

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (
    connection_argument_spec,
    run_module,
)


def description_change(params: dict, before: dict, changes: list[str]) -> str:
    """The description to keep: the requested one when given, else the current one.
    A difference is added to changes as `description`."""
    wanted = params.get("description")
    if wanted is None or wanted == before.get("description", ""):
        return before.get("description", "")
    changes.append("description")
    return wanted


def merge_config(current: dict, wanted: dict, changes: list[str]) -> dict:
    """Config with only the requested keys set (others Incus or a person set stay);
    each key that differs is added to changes as `config.<key>`."""
    config = dict(current)
    for key, value in wanted.items():
        if config.get(key) != value:
            changes.append(f"config.{key}")
            config[key] = value
    return config


def diff_keys(prefix: str, old: dict, new: dict) -> list[str]:
    """`prefix.key` for every key whose value differs, declared in full: a key only
    one side has differs too."""
    return [f"{prefix}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class Reconciler:
    """One run of an incus_* object module: read, compare, apply, report.

    A subclass sets the class attributes and fills in view(), new() and update();
    the hooks (read, create, put, remove, absent, present, finish) have the plain
    REST behaviour and are overridden only where an object needs more.
    """

    kind = ""  # the result's key, for example "profile"
    noun = ""  # how messages name it, for example "Incus profile"
    collection = ""  # the API collection, for example "profiles"
    in_project = True  # False only for projects themselves
    # In check mode, a project that the same check run only creates is missing:
    # show the object as new instead of failing (profiles and instances).
    preview_in_new_project = False
    label_with_project = False
    # The fields the default view() shows besides the name, with their empty values.
    shown: dict = {}
    # Fields the result carries that are not settings, left out of the diff.
    not_in_diff: tuple[str, ...] = ()

    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.p = module.params
        self.check = module.check_mode
        self.name = self.p["name"]
        self.project = self.p["project"] if self.in_project else None
        self.path = f"{self.collection}/{self.name}"
        self.changes: list[str] = []
        self.project_pending = False

    @property
    def label(self) -> str:
        """How messages name the object; with the project where names repeat across
        projects (profiles, instances)."""
        where = f" (project {self.project})" if self.label_with_project else ""
        return f"{self.noun} '{self.name}'{where}"

    # -- what each module fills in --------------------------------------------

    def view(self, obj: dict) -> dict:
        """The object as the module returns and diffs it: by default its name and
        the fields of `shown` (copies; a missing one as the empty value given)."""
        fields = {f: copy.deepcopy(obj.get(f) or empty) for f, empty in self.shown.items()}
        return {"name": obj["name"], **fields}

    def new(self) -> dict:
        """The body that creates the object as requested (also checks it first)."""
        raise NotImplementedError

    def update(self, current: dict, before: dict) -> tuple[dict, dict, list[str]]:
        """The object as it should be (a view), the body that puts it so, and the
        names of the fields that differ."""
        raise NotImplementedError

    # -- hooks with the plain REST behaviour ----------------------------------

    def read(self) -> dict | None:
        return self.api.get(self.path, self.project)

    def preview(self, body: dict) -> dict:
        """What check mode reports for an object it would create."""
        return body

    def create(self, body: dict) -> None:
        self.api.post(f"Creating {self.label}", self.collection, body, self.project)

    def put(self, body: dict, changes: list[str]) -> None:
        self.api.put(
            f"Updating {self.label} ({', '.join(changes)})", self.path, body, self.project
        )

    def remove(self, current: dict) -> None:
        self.api.delete(f"Removing {self.label}", self.path, self.project)

    # -- the flow -------------------------------------------------------------

    def unchanged_absent(self) -> None:
        self.module.exit_json(changed=False, changes=[], **{self.kind: {}})

    def finish(self, before: dict, after: dict) -> None:
        """End the run the way every incus_* module reports one: the object as it is
        (or, in check mode, would be) under its kind, the fields that differed, and a
        before/after pair for --diff."""
        self.module.exit_json(
            changed=bool(self.changes),
            changes=self.changes,
            diff={
                "before": {k: v for k, v in before.items() if k not in self.not_in_diff},
                "after": {k: v for k, v in after.items() if k not in self.not_in_diff},
            },
            **{self.kind: after},
        )

    def absent(self, current: dict | None) -> None:
        if current is None:
            self.unchanged_absent()
        before = self.view(current)
        if not self.check:
            self.remove(current)
        self.changes.append("state")
        self.finish(before, {})

    def created(self) -> dict:
        body = self.new()
        self.changes.append("state")
        if self.check:
            return self.preview(body)
        self.create(body)
        return self.view(self.read())

    def updated(self, current: dict) -> dict:
        after, body, changes = self.update(current, self.view(current))
        self.changes += changes
        if changes and not self.check:
            self.put(body, self.changes)
            after = self.view(self.read())
        return after

    def present(self, current: dict | None) -> dict:
        return self.created() if current is None else self.updated(current)

    def start(self) -> dict | None:
        """The object as Incus holds it now, after the project checks."""
        if self.in_project and not self.api.project_exists(self.project):
            if self.p["state"] == "absent":
                self.unchanged_absent()
            if self.check and self.preview_in_new_project:
                self.project_pending = True
                return None
            self.api.require_project(self.project)
        return self.read()

    def run(self) -> None:
        current = self.start()
        if self.p["state"] == "absent":
            self.absent(current)
        before = self.view(current) if current is not None else {}
        self.finish(before, self.present(current))

    @classmethod
    def execute(cls, **options: dict) -> None:
        """A module's main(): the options every object module takes (connection,
        name, project, description, state) plus the object's own, then one run."""
        spec = connection_argument_spec()
        spec["name"] = {"type": "str", "required": True}
        if cls.in_project:
            spec["project"] = {"type": "str", "default": "default"}
        spec["description"] = {"type": "str"}
        spec["state"] = {"type": "str", "choices": ["present", "absent"], "default": "present"}
        spec.update(options)
        module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
        run_module(module, lambda api: cls(module, api).run())
