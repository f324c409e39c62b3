#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ask several HTTP health URLs at once; used by playbooks/summary.yml."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_check
version_added: 0.1.0
short_description: Ask several HTTP URLs at the same time and report each one's answer
description:
  - Sends one GET to every URL of O(checks), all at the same time, and returns one result per
    check in the order given, so the time taken is the slowest answer's, not their sum.
  - A URL that does not answer is reported, never an error of the task; the module fails only
    on bad arguments. Nothing is changed anywhere (check mode runs it as well).
options:
  checks:
    description:
      - The URLs to ask. Each item is a mapping with C(health) (the URL) and optionally
        C(ca) (a CA file on the machine the module runs on, for an HTTPS URL); other keys
        are ignored, so a playbook can pass its own descriptions of the services.
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds each request may take.
    type: int
    default: 10
author: aistack developers
"""

EXAMPLES = r"""
- name: Ask each service whether it is healthy
  homelab.aistack.health_check:
    checks:
      - {health: "http://10.100.10.10:8000/health"}
      - {health: "https://192.168.1.5/health", ca: /root/aistack/.aistack/front-door/ca.crt}
  register: health
"""

RETURN = r"""
results:
  description: One entry per check, in the order of O(checks).
  type: list
  elements: dict
  returned: always
  contains:
    url:
      description: The URL asked.
      type: str
    status:
      description: The HTTP status, or -1 when no HTTP answer came.
      type: int
    json:
      description: The answer's body parsed as JSON, when it is JSON.
      type: raw
    msg:
      description: What happened, in words (C(OK) or why there is no answer).
      type: str
"""

import json  # noqa: E402 (Ansible modules put DOCUMENTATION first)
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from urllib.error import HTTPError, URLError  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402

# Answers larger than this are not read whole: a health answer is a few hundred bytes.
MAX_BODY = 1 << 20


def parse(body: bytes):
    """The body as JSON, or None."""
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return None


def ask(check: dict, timeout: int) -> dict:
    """One GET; never raises."""
    url = str(check.get("health") or "")
    result = {"url": url, "status": -1}
    if not url:
        result["msg"] = "no URL given"
        return result
    try:
        response = open_url(
            url,
            method="GET",
            timeout=timeout,
            ca_path=check.get("ca") or None,
            follow_redirects="safe",
            http_agent="aistack-summary",
        )
        with response:
            result["status"] = response.getcode()
            body = response.read(MAX_BODY)
        result["msg"] = f"OK ({result['status']})"
    except HTTPError as err:
        result["status"] = err.code
        body = err.read(MAX_BODY) if err.fp else b""
        result["msg"] = f"HTTP {err.code} {err.reason}"
    except URLError as err:
        result["msg"] = f"Request failed: {err.reason}"
        return result
    except Exception as err:  # a socket timeout, a TLS failure, a reset: all "no answer"
        result["msg"] = f"Request failed: {err}"
        return result
    parsed = parse(body)
    if parsed is not None:
        result["json"] = parsed
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "checks": {"type": "list", "elements": "dict", "required": True},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    checks = module.params["checks"]
    timeout = module.params["timeout"]
    if timeout < 1:
        module.fail_json(msg=f"timeout must be at least 1 second, got {timeout}")
    results: list[dict] = []
    if checks:
        with ThreadPoolExecutor(max_workers=min(len(checks), 16)) as pool:
            results = list(pool.map(lambda check: ask(check, timeout), checks))
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
