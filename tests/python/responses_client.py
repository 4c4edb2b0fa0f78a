"""Runs one Responses scenario with the real `openai` SDK against the proxy.

usage: responses_client.py BASE_URL CASE [ARG]
Prints one JSON object describing what the SDK saw; exits non-zero when the
SDK raised where the scenario expects none (the traceback says where).
"""
import json
import sys

import openai

MCP = {"type": "mcp", "server_label": "test", "require_approval": "never"}


def texts(response) -> list:
    return [i.type for i in response.output]


def main() -> None:
    base_url, case = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    client = openai.OpenAI(base_url=base_url, api_key="sk-client", max_retries=0, timeout=30)
    out: dict = {"case": case}
    if case == "create":
        r = client.responses.create(model="m", input="Capital of France?", instructions="Be brief.")
        out.update(id=r.id, status=r.status, text=r.output_text, items=texts(r), total_tokens=r.usage.total_tokens)
    elif case == "create_mcp":
        r = client.responses.create(model="m", input="20+22?", tools=[MCP])
        calls = [i for i in r.output if i.type == "mcp_call"]
        lists = [i for i in r.output if i.type == "mcp_list_tools"]
        out.update(text=r.output_text, items=texts(r), call_output=calls[0].output, call_name=calls[0].name,
                   call_server=calls[0].server_label, listed=[t.name for t in lists[0].tools])
    elif case == "stream":
        tools = [MCP] if arg == "mcp" else []
        kinds, deltas = [], []
        with client.responses.stream(model="m", input="go", tools=tools) as stream:
            for event in stream:
                kinds.append(event.type)
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
            final = stream.get_final_response()
        calls = [i for i in final.output if i.type == "mcp_call"]
        out.update(kinds=kinds, deltas="".join(deltas), text=final.output_text, items=texts(final),
                   status=final.status, call_outputs=[c.output for c in calls])
    elif case == "function":
        tool = {"type": "function", "name": "weather", "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
        first = client.responses.create(model="m", input="Weather in Oslo?", tools=[tool])
        call = next(i for i in first.output if i.type == "function_call")
        args = json.loads(call.arguments)
        second = client.responses.create(
            model="m", previous_response_id=first.id, tools=[tool],
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": f"-5 C in {args['city']}"}])
        out.update(call_name=call.name, call_args=args, text=second.output_text)
    elif case == "conversation":
        said, previous = [], None
        for question in ["My name is Ada.", "I like tea.", "What do you know about me?"]:
            r = client.responses.create(model="m", input=question, previous_response_id=previous)
            said.append(r.output_text)
            previous = r.id
        out.update(said=said, last_id=previous)
    elif case == "retrieve_delete":
        r = client.responses.create(model="m", input="Hi")
        got = client.responses.retrieve(r.id)
        items = client.responses.input_items.list(r.id)
        client.responses.delete(r.id)
        try:
            client.responses.retrieve(r.id)
            after = "found"
        except openai.NotFoundError as e:
            after = f"NotFoundError {e.status_code}"
        out.update(same=got.id == r.id and got.output_text == r.output_text, text=got.output_text,
                   input_texts=[c.text for i in items.data for c in i.content], after_delete=after)
    elif case == "approval":
        tool = {"type": "mcp", "server_label": "test", "require_approval": "always"}
        first = client.responses.create(model="m", input="echo secret", tools=[tool])
        request = next(i for i in first.output if i.type == "mcp_approval_request")
        second = client.responses.create(
            model="m", previous_response_id=first.id, tools=[tool],
            input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": arg == "approve"}])
        calls = [i for i in second.output if i.type == "mcp_call"]
        out.update(first_items=texts(first), request_name=request.name, request_server=request.server_label,
                   items=texts(second), call_outputs=[c.output for c in calls], text=second.output_text)
    elif case == "unknown_label":
        try:
            client.responses.create(model="m", input="x", tools=[{"type": "mcp", "server_label": "nowhere"}])
            out.update(raised=None)
        except openai.BadRequestError as e:
            out.update(raised="BadRequestError", status=e.status_code, param=e.body.get("param"), message=e.message)
    else:
        raise SystemExit(f"unknown case {case}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
