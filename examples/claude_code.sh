#!/usr/bin/env bash
# Claude Code with any chat-completions model behind mcp-chat-proxy: Claude
# Code's own tools (Read, Bash, Edit, ...) stay its own, the proxy's MCP tools
# are offered beside them and run in the proxy.
#
#   npm install -g @anthropic-ai/claude-code
#   MODEL=gpt-4o-mini examples/claude_code.sh              # interactive
#   MODEL=gpt-4o-mini examples/claude_code.sh -p "What MCP tools do you have?"
set -euo pipefail

export ANTHROPIC_BASE_URL=${PROXY_URL:-http://localhost:8000}
# A client key of the proxy when it has keys (AUTH_KEYS); any text otherwise.
export ANTHROPIC_API_KEY=${PROXY_KEY:-unused}
# The upstream's model names, for the main model and the small background one.
export ANTHROPIC_MODEL=${MODEL:?set MODEL to a model the upstream serves}
export ANTHROPIC_DEFAULT_HAIKU_MODEL=${SMALL_MODEL:-$MODEL}
# Keep Claude Code from calling Anthropic's own services (telemetry, updates).
export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1

exec claude "$@"
