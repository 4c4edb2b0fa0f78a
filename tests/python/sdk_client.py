"""Runs one scenario with the real `openai` SDK against the proxy.

usage: sdk_client.py BASE_URL CASE
Prints one JSON object describing what the SDK saw; exits 0 unless the SDK
behaved in a way the scenario does not expect.
"""
import json
import sys

import openai


def main() -> None:
    base_url, case = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="sk-client", max_retries=0, timeout=20)
    out: dict = {"case": case}
    if case == "chat":
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        out.update(content=r.choices[0].message.content, finish_reason=r.choices[0].finish_reason,
                   total_tokens=r.usage.total_tokens if r.usage else None)
    elif case in ("stream", "stream_progress"):
        # stream_progress: with x-mcp-progress: on, the SDK yields the proxy's
        # tool events as chunks too (objects of their own, no choices); the
        # answer it assembles must be the same.
        headers = {"x-mcp-progress": "on"} if case == "stream_progress" else None
        pieces, finish, chunks, progress = [], None, 0, []
        stream = client.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "hi"}],
                                                extra_headers=headers)
        for chunk in stream:
            chunks += 1
            if chunk.object != "chat.completion.chunk":
                progress.append(chunk.object)
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
        out.update(content="".join(pieces), finish_reason=finish, chunks=chunks, progress=progress)
    elif case == "models":
        out.update(ids=[m.id for m in client.models.list()])
    elif case == "rate_limit":
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            out.update(raised=None)
        except openai.RateLimitError as e:
            out.update(raised="RateLimitError", status=e.status_code,
                       retry_after=e.response.headers.get("retry-after"), message=e.message)
    elif case == "stream_error":
        pieces = []
        try:
            for chunk in client.chat.completions.create(model="m", stream=True, messages=[]):
                for choice in chunk.choices:
                    if choice.delta.content:
                        pieces.append(choice.delta.content)
            out.update(raised=None)
        # What a user's code sees of a stream that broke, by its exact class
        # (the test asserts which one): an error event is the SDK's APIError; a
        # connection cut mid-body is the HTTP library's protocol error.
        except Exception as e:  # noqa: BLE001 - recorded, not swallowed: the test checks the class
            out.update(raised=type(e).__name__, module=type(e).__module__, message=str(e))
        out.update(content="".join(pieces))
    else:
        raise SystemExit(f"unknown case {case}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
