"""A TEST DOUBLE of Home Assistant's WebSocket API (`/api/websocket`) on 127.0.0.1.

Not Home Assistant: it answers the six messages aistack-stt sends (hass_names.py) the way
Home Assistant's documented WebSocket API does — `auth_required`, then `auth_ok` or
`auth_invalid`, then `result` messages for `homeassistant/expose_entity/list`,
`get_states`, `config/entity_registry/get_entries`, `config/area_registry/list` and
`config/floor_registry/list` — from a small made-up home. `mode` makes it misbehave as a
real one can: "garbage" (answers that are not Home Assistant's), "hang" (accepts, then
says nothing until `release` is set), "down" (the port is closed).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


@dataclass
class Home:
    """Entities (id → displayed name, exposed or not), their aliases, areas and floors."""

    exposed: dict[str, str] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    areas: list[str] = field(default_factory=list)
    floors: list[str] = field(default_factory=list)


class HassTestDouble:
    def __init__(self, token: str, home: Home) -> None:
        self.token = token
        self.home = home
        self.mode = "ok"
        self.release = threading.Event()
        self.hanging = threading.Event()  # set while a connection is held in "hang" mode
        self.connections = 0
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._thread.join(timeout=10)

    def _answer(self, request: dict) -> object:
        home = self.home
        kind = request.get("type")
        if kind == "homeassistant/expose_entity/list":
            table = {eid: {"conversation": True} for eid in home.exposed}
            table.update({eid: {"conversation": False} for eid in home.hidden})
            return {"exposed_entities": table}
        if kind == "get_states":
            everything = {**home.exposed, **home.hidden}
            return [
                {"entity_id": eid, "state": "off", "attributes": {"friendly_name": name}}
                for eid, name in everything.items()
            ]
        if kind == "config/entity_registry/get_entries":
            return {
                eid: {"entity_id": eid, "aliases": home.aliases.get(eid, [])}
                for eid in request.get("entity_ids", [])
            }
        if kind == "config/area_registry/list":
            return [{"area_id": n.lower(), "name": n, "aliases": []} for n in home.areas]
        if kind == "config/floor_registry/list":
            return [{"floor_id": n.lower(), "name": n, "aliases": []} for n in home.floors]
        raise KeyError(kind)

    def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        if ws.request is None or ws.request.path != "/api/websocket":
            ws.close(1008, "not /api/websocket")
            return
        try:
            if self.mode == "hang":
                self.hanging.set()
                self.release.wait()
                return
            if self.mode == "garbage":
                ws.send(json.dumps({"type": "auth_required"}))
                ws.recv()
                ws.send(json.dumps({"type": "auth_ok"}))
                ws.recv()
                ws.send("<html>502 Bad Gateway</html>")
                return
            ws.send(json.dumps({"type": "auth_required", "ha_version": "test-double"}))
            auth = json.loads(ws.recv())
            if auth.get("access_token") != self.token:
                ws.send(json.dumps({"type": "auth_invalid", "message": "Invalid access token"}))
                return
            ws.send(json.dumps({"type": "auth_ok", "ha_version": "test-double"}))
            while True:
                request = json.loads(ws.recv())
                try:
                    result, ok = self._answer(request), True
                except KeyError:
                    result, ok = None, False
                answer = {"id": request.get("id"), "type": "result", "success": ok}
                if ok:
                    answer["result"] = result
                else:
                    answer["error"] = {"code": "unknown_command", "message": "Unknown command."}
                ws.send(json.dumps(answer))
        except ConnectionClosed:
            return
