"""Runs one Messages scenario with the real `anthropic` SDK against the proxy.

usage: anthropic_client.py BASE_URL API_KEY CASE
API_KEY as `x-api-key=KEY` sends the key in an `X-Api-Key` header, as Claude
Code and other Anthropic clients do (this SDK sends `Authorization: Bearer`).
Prints one JSON object describing what the SDK saw; an SDK error the
scenario expects is reported as {"error": {"status", "type", "message"}}.
"""
import json
import sys

import anthropic

WEATHER = {"name": "weather", "description": "Weather now",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def blocks(message) -> list:
    return [b.type for b in message.content]


def text(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def main() -> None:
    base_url, api_key, case = sys.argv[1], sys.argv[2], sys.argv[3]
    if api_key.startswith("x-api-key="):
        client = anthropic.Anthropic(base_url=base_url, api_key=None, auth_token=None, max_retries=0, timeout=30,
                                     default_headers={"X-Api-Key": api_key.removeprefix("x-api-key=")})
    else:
        client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    ask = [{"role": "user", "content": "go"}]
    out: dict = {"case": case}
    try:
        if case == "create":
            m = client.messages.create(model="m", max_tokens=100, system="Be brief.", messages=ask)
            out.update(id=m.id, text=text(m), blocks=blocks(m), stop_reason=m.stop_reason, stop_sequence=m.stop_sequence,
                       input_tokens=m.usage.input_tokens, output_tokens=m.usage.output_tokens)
        elif case in ("stream", "stream_tools"):
            tools = [WEATHER] if case == "stream_tools" else []
            pieces = out["pieces_so_far"] = []
            with client.messages.stream(model="m", max_tokens=100, messages=ask, tools=tools) as stream:
                for piece in stream.text_stream:
                    pieces.append(piece)
                final = stream.get_final_message()
            uses = [b for b in final.content if b.type == "tool_use"]
            out.update(pieces="".join(pieces), text=text(final), blocks=blocks(final), stop_reason=final.stop_reason,
                       stop_sequence=final.stop_sequence,
                       output_tokens=final.usage.output_tokens, tool_uses=[[u.id, u.name, u.input] for u in uses])
        elif case == "client_tool":
            first = client.messages.create(model="m", max_tokens=100, messages=ask, tools=[WEATHER])
            use = next(b for b in first.content if b.type == "tool_use")
            history = ask + [{"role": "assistant", "content": first.content},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "cold"}]}]
            second = client.messages.create(model="m", max_tokens=100, messages=history, tools=[WEATHER])
            out.update(first_stop=first.stop_reason, first_blocks=blocks(first), use=[use.id, use.name, use.input],
                       text=text(second), stop_reason=second.stop_reason)
        elif case in ("any", "none"):
            m = client.messages.create(model="m", max_tokens=100, messages=ask, tools=[WEATHER],
                                       tool_choice={"type": case})
            out.update(text=text(m), blocks=blocks(m), stop_reason=m.stop_reason)
        elif case == "malformed":
            client.messages.create(model="m", max_tokens=100, messages=[{"role": "robot", "content": "x"}])
        elif case == "huge":
            client.messages.create(model="m", max_tokens=100, system="x" * 100_000, messages=ask)
        elif case == "count":
            r = client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "x" * 400}])
            out.update(input_tokens=r.input_tokens)
        else:
            raise SystemExit(f"unknown case {case}")
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out["error"] = {"status": e.status_code, "type": body.get("error", {}).get("type"),
                        "message": body.get("error", {}).get("message"), "envelope": body.get("type")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
