"""An OpenAI Agents SDK agent whose model is mcp-chat-proxy's Responses API.

The agent declares one hosted MCP tool by the name of a server configured in
the proxy's servers_config.json; the proxy lists that server's tools to the
model, runs the calls, and returns the answer with `mcp_call` items. The
upstream behind the proxy only needs to speak Chat Completions.

    pip install openai-agents
    PROXY_URL=http://localhost:8000/v1 MODEL=gpt-4o-mini SERVER=fetch python3 examples/agents_sdk.py
"""
import asyncio
import os

from agents import Agent, HostedMCPTool, OpenAIResponsesModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI

# Traces would go to OpenAI's platform; this example keeps everything local.
set_tracing_disabled(True)

client = AsyncOpenAI(
    base_url=os.environ.get("PROXY_URL", "http://localhost:8000/v1"),
    api_key=os.environ.get("OPENAI_API_KEY", "unused-the-proxy-holds-the-key"),
)
agent = Agent(
    name="assistant",
    instructions="Answer briefly. Use the tools when they help.",
    model=OpenAIResponsesModel(model=os.environ.get("MODEL", "gpt-4o-mini"), openai_client=client),
    tools=[
        HostedMCPTool(
            tool_config={
                "type": "mcp",
                # A server the proxy's operator configured; any other name is a 400.
                "server_label": os.environ.get("SERVER", "fetch"),
                "require_approval": "never",
            }
        )
    ],
)

result = Runner.run_sync(agent, os.environ.get("QUESTION", "What tools do you have? Use one."))
for item in result.new_items:
    raw = item.raw_item
    if getattr(raw, "type", None) == "mcp_call":
        print(f"[{raw.server_label}.{raw.name}({raw.arguments}) -> {(raw.output or raw.error or '')[:80]!r}]")
print("answer:", result.final_output)


async def streamed() -> None:
    run = Runner.run_streamed(agent, "Say hello in three words.")
    async for event in run.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            print(event.data.delta, end="", flush=True)
    print()


asyncio.run(streamed())
