"""Runs an OpenAI Agents SDK agent whose model is the proxy's Responses API.

usage: agents_client.py BASE_URL CASE    (CASE: run | stream)
The agent has one HostedMCPTool naming the proxy's configured server
"test"; the proxy runs the MCP calls. Prints one JSON object.
"""
import asyncio
import json
import sys

from agents import Agent, HostedMCPTool, OpenAIResponsesModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI


def agent(base_url: str) -> Agent:
    # No tracing: it would export to OpenAI, and this machine has no network.
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="sk-client", max_retries=0, timeout=30)
    return Agent(
        name="calculator",
        instructions="Use the tools to answer.",
        model=OpenAIResponsesModel(model="m", openai_client=client),
        tools=[HostedMCPTool(tool_config={"type": "mcp", "server_label": "test", "require_approval": "never"})],
    )


def describe(result) -> dict:
    items = [item.type for item in result.new_items]
    raw = [getattr(item.raw_item, "type", None) for item in result.new_items]
    calls = [item.raw_item.output for item in result.new_items if getattr(item.raw_item, "type", None) == "mcp_call"]
    return {"final_output": result.final_output, "items": items, "raw_types": raw, "call_outputs": calls}


async def streamed(base_url: str) -> dict:
    result = Runner.run_streamed(agent(base_url), "What is 20 + 22?")
    kinds, deltas = [], []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            kinds.append(event.data.type)
            if event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
    out = describe(result)
    out.update(kinds=kinds, deltas="".join(deltas))
    return out


def main() -> None:
    base_url, case = sys.argv[1], sys.argv[2]
    if case == "run":
        out = describe(Runner.run_sync(agent(base_url), "What is 20 + 22?"))
    elif case == "stream":
        out = asyncio.run(streamed(base_url))
    else:
        raise SystemExit(f"unknown case {case}")
    out["case"] = case
    print(json.dumps(out))


if __name__ == "__main__":
    main()
