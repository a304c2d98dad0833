"""Drives vivace's MCP server with the official Python MCP SDK (streamable HTTP).

usage: mcp_client.py URL TENANT CALLS_JSON
CALLS_JSON is a list of [tool name, arguments]. Prints one JSON object: the tools listed (name
and input schema properties), the resources listed, the text of each resource, and for each call
its isError flag and text.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url, tenant, calls):
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    out = {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                out["server"] = init.server_info.name
                out["instructions"] = init.instructions or ""
                tools = await session.list_tools()
                out["tools"] = {
                    t.name: sorted((t.input_schema or {}).get("properties", {}).keys())
                    for t in tools.tools
                }
                resources = await session.list_resources()
                out["resources"] = {}
                for r in resources.resources:
                    read_back = await session.read_resource(str(r.uri))
                    out["resources"][str(r.uri)] = "".join(
                        getattr(c, "text", "") for c in read_back.contents
                    )
                out["calls"] = []
                for name, args in calls:
                    res = await session.call_tool(name, args)
                    text = "".join(getattr(c, "text", "") for c in res.content)
                    out["calls"].append({"tool": name, "isError": bool(res.is_error), "text": text})
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
