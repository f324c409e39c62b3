"""A zeroconf browser, as Home Assistant runs one: prints the `_wyoming._tcp` services it
sees as JSON {name: {"addresses": [...], "port": N}}.

Usage: python zeroconf_browser.py LOCAL_ADDRESS SECONDS [NAME]
Browses on the interface holding LOCAL_ADDRESS for SECONDS, or until NAME is seen.
"""

from __future__ import annotations

import json
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

SERVICE_TYPE = "_wyoming._tcp.local."


class Seen(ServiceListener):
    def __init__(self) -> None:
        self.found: dict[str, dict] = {}

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is not None:
            self.found[name] = {"addresses": info.parsed_addresses(), "port": info.port}

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.found.pop(name, None)


def main() -> None:
    local, seconds = sys.argv[1], float(sys.argv[2])
    wanted = f"{sys.argv[3]}.{SERVICE_TYPE}" if len(sys.argv) > 3 else None
    zc = Zeroconf(interfaces=[local], ip_version=IPVersion.V4Only)
    seen = Seen()
    ServiceBrowser(zc, SERVICE_TYPE, seen)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (wanted and wanted in seen.found):
        time.sleep(0.1)
    print(json.dumps(seen.found))
    zc.close()


if __name__ == "__main__":
    main()
