#!/usr/bin/env bash
# The proxy's /chat endpoint with curl: the server keeps the conversation, the
# client only keeps its session_id. Needs curl and jq.
#
#   MCP_CHAT_URL=http://localhost:8000 examples/chat_curl.sh
set -euo pipefail

URL="${MCP_CHAT_URL:-http://localhost:8000}"
# The Authorization header owns the session: every call on it must send the same one.
AUTH=(-H "Authorization: Bearer ${MCP_CHAT_API_KEY:-example-user}")
JSON=(-H 'Content-Type: application/json')

# 1. A first turn without session_id: the proxy creates a session and returns its id.
first=$(curl -sS --fail-with-body "${AUTH[@]}" "${JSON[@]}" \
  -d '{"message": "My name is Ada. Please remember it."}' "$URL/chat")
echo "$first" | jq .
session=$(echo "$first" | jq -r .session_id)

# 2. A second turn in that session: the proxy adds the earlier turns to the context.
curl -sS --fail-with-body "${AUTH[@]}" "${JSON[@]}" \
  -d "$(jq -n --arg s "$session" '{message: "What is my name?", session_id: $s}')" \
  "$URL/chat" | jq -r .response

# 3. A streaming turn: -N prints the server-sent events as they arrive (OpenAI
#    chunks, then a chat.session event, then [DONE]).
curl -sS -N "${AUTH[@]}" "${JSON[@]}" \
  -d "$(jq -n --arg s "$session" '{message: "Spell my name backwards.", session_id: $s, stream: true}')" \
  "$URL/chat"

# 4. The stored history, then delete the session (204).
curl -sS --fail-with-body "${AUTH[@]}" "$URL/chat/$session" | jq .
curl -sS "${AUTH[@]}" -X DELETE -o /dev/null -w "DELETE /chat/$session: %{http_code}\n" "$URL/chat/$session"
