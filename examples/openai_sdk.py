"""The official `openai` Python SDK talking to mcp-chat-proxy.

Only `base_url` changes: the proxy speaks the OpenAI API, runs the tools of its
MCP servers for the model, and returns ordinary completions and streams.

    pip install openai
    PROXY_URL=http://localhost:8000/v1 MODEL=gpt-4o-mini python3 examples/openai_sdk.py
"""
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("PROXY_URL", "http://localhost:8000/v1"),
    # When the proxy holds the upstream key (OPENAI_API_KEY in its .env) any
    # value works here; when it does not, this key is passed upstream as is.
    api_key=os.environ.get("OPENAI_API_KEY", "unused-the-proxy-holds-the-key"),
)
model = os.environ.get("MODEL", "gpt-4o-mini")

# One completion: tool rounds, if the model uses tools, happen inside the proxy.
reply = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "In one sentence: what is the Model Context Protocol?"}],
)
print("non-streaming:", reply.choices[0].message.content)

# The same as a stream: content arrives chunk by chunk, printed as it comes.
stream = client.chat.completions.create(
    model=model,
    stream=True,
    messages=[{"role": "user", "content": "Count from one to five, in words."}],
)
print("streaming: ", end="", flush=True)
for chunk in stream:
    for choice in chunk.choices:
        print(choice.delta.content or "", end="", flush=True)
print()
