"""The `anthropic` SDK talking to mcp-chat-proxy's Messages API: the model
behind the proxy (any chat-completions upstream) gets the MCP servers' tools,
the proxy runs their calls, and the answer streams back in Anthropic's events.
Claude Code works the same way: ANTHROPIC_BASE_URL=http://localhost:8000.

    pip install anthropic
    PROXY_URL=http://localhost:8000 MODEL=gpt-4o-mini python3 examples/anthropic_sdk.py
"""
import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ.get("PROXY_URL", "http://localhost:8000"),
    # A client key of the proxy when it has keys; any text otherwise.
    api_key=os.environ.get("PROXY_KEY", "unused"),
)

with client.messages.stream(
    model=os.environ.get("MODEL", "gpt-4o-mini"),
    max_tokens=1024,
    messages=[{"role": "user", "content": "What tools do you have? Use one and tell me what it said."}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    final = stream.get_final_message()
print(f"\n[stop_reason={final.stop_reason} input_tokens={final.usage.input_tokens} output_tokens={final.usage.output_tokens}]")
