"""Drives the proxy's /mcp with the real Python `mcp` SDK (streamable HTTP).

usage: mcp_client.py MCP_URL KEY
Lists the tools, calls `add` and `fail`, and calls a tool that is not
listed; prints one JSON object of what the SDK saw.
"""
import asyncio
import json
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def texts(result) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=20) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                listed = await session.list_tools()
                added = await session.call_tool("add", {"a": 2, "b": 3})
                failed = await session.call_tool("fail", {"message": "no"})
                try:
                    hidden = await session.call_tool("pid", {})
                    refused = {"error": None, "result": texts(hidden)}
                except MCPError as e:
                    refused = {"error": str(e)}
    print(json.dumps({
        "server": init.server_info.name,
        "protocol": str(init.protocol_version),
        "tools": sorted(t.name for t in listed.tools),
        "add": [texts(added), bool(added.is_error)],
        "fail": [texts(failed), bool(failed.is_error)],
        "refused": refused,
    }))


asyncio.run(main())
