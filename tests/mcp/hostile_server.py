"""A stdio MCP server (plain JSON-RPC, no SDK: it starts in milliseconds) whose tools/list
answers are hostile or malformed, chosen by its one argument (`python hostile_server.py MODE`):

- `ok`: one good tool, `add`.
- `notlist`: `tools` is an object, not a list.
- `notobject`: the result is a list, not an object.
- `toolnotobj`: entries that are not tools (`5`, `"x"`, `null`, an object with no name, one
  whose name is a number) around one good tool.
- `emptyprop`: a property named "" (JSON Schema allows it), nested too; a description that
  is a number and annotations that are a list.
- `cursorloop`: every page says `nextCursor: "same"`: a list that never ends.
- `cursorever`: every page gives a new cursor: a list that never ends either.
- `cursornumber`: a `nextCursor` that is not a string.
- `paged`: three tools over three pages (a list that ends).
"""

from __future__ import annotations

import json
import sys
from typing import Any

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
OBJECT = {"type": "object"}
ADD = {
    "name": "add",
    "description": "add",
    "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}}},
}
TOOLS = {
    "ok": [ADD],
    "notlist": {"a": 1},
    "toolnotobj": [5, "x", None, {"inputSchema": OBJECT}, {"name": 7, "inputSchema": OBJECT}, ADD],
    "emptyprop": [
        {
            "name": "a",
            "description": 5,
            "annotations": [1],
            "inputSchema": {
                "type": "object",
                "properties": {
                    "": {"type": "string"},
                    "x": {"type": "object", "properties": {"": {"type": "integer"}}},
                },
                "required": [""],
            },
        }
    ],
}


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def page(cursor: object) -> Any:
    if MODE == "notobject":
        return [ADD]
    if MODE == "cursorloop":
        return {"tools": [{"name": "a", "inputSchema": OBJECT}], "nextCursor": "same"}
    if MODE == "cursorever":
        number = int(cursor) if isinstance(cursor, str) else 0
        return {"tools": [], "nextCursor": str(number + 1)}
    if MODE == "cursornumber":
        return {"tools": [ADD], "nextCursor": 5}
    if MODE == "paged":
        number = int(cursor) if isinstance(cursor, str) else 0
        tool = {"name": f"t{number}", "inputSchema": OBJECT}
        return {"tools": [tool], **({"nextCursor": str(number + 1)} if number < 2 else {})}
    return {"tools": TOOLS[MODE]}


for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    method, request_id = message.get("method"), message.get("id")
    if method == "initialize":
        version = message["params"].get("protocolVersion", "2025-06-18")
        info = {"name": "hostile", "version": "1"}
        result = {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": info}
        send({"jsonrpc": "2.0", "id": request_id, "result": result})
    elif method == "tools/list":
        cursor = (message.get("params") or {}).get("cursor")
        send({"jsonrpc": "2.0", "id": request_id, "result": page(cursor)})
    elif request_id is not None:
        send({"jsonrpc": "2.0", "id": request_id, "result": {}})
