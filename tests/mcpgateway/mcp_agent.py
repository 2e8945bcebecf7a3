"""A plain agent for the gateway's tests: starts its MCP server through the gateway (the SDK's
stdio client) and uses it as a model would, writing what it got to a JSON file.

    python mcp_agent.py OUT.json -- GATEWAY ARGV...

OUT gets the tool names it was offered, and for each call ``[is_error, text]``; a resource read
or prompt that was refused is its error's text.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

CALLS = [("read_note", {"name": "a"}), ("write_note", {"name": "a", "text": "b"}),
         ("delete_everything", {"confirm": True})]


async def main(out: str, argv: list[str]) -> None:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    got: dict[str, Any] = {}
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        got["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
        for name, args in CALLS:
            res = await s.call_tool(name, args)
            got[name] = [bool(res.is_error), res.content[0].text]
        try:
            got["resource"] = (await s.read_resource("note://welcome")).contents[0].text
        except Exception as exc:
            got["resource"] = f"error: {exc}"
        try:
            prompt = await s.get_prompt("summarize", {"topic": "milk"})
            got["prompt"] = prompt.messages[0].content.text
        except Exception as exc:
            got["prompt"] = f"error: {exc}"
    with open(out, "w", encoding="utf-8") as f:
        json.dump(got, f)


if __name__ == "__main__":
    assert sys.argv[2] == "--"
    anyio.run(main, sys.argv[1], sys.argv[3:])
