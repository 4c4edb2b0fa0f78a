# shellcheck shell=bash
# Starting and stopping the servers under test. Sourced by bench/run.
#
# Every server is started with setsid so its process id is also its process
# group: stopping it stops its workers (nginx, uvicorn) and nothing else.

declare -A PID=()     # name -> process id of a running server
declare -A URL=()     # target -> base URL (no path)
STARTED=()            # every process group this run started, for the exit trap

# start_bg NAME CMD...: runs CMD in the background as a group of its own.
start_bg() {
  local name=$1; shift
  setsid "$@" >>"$OUT/logs/$name.log" 2>&1 </dev/null &
  PID[$name]=$!
  STARTED+=("$!")
}

# stop NAME [SIGNAL]: stops a server and its workers, and waits for it.
stop() {
  local name=$1 sig=${2:-TERM} pid=${PID[$1]:-}
  [[ -n $pid ]] || return 0
  kill -"$sig" -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}

stop_all() {
  local pid
  for pid in "${STARTED[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${STARTED[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}

# port_free PORT: nothing listens there yet.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_tcp PORT SECONDS NAME: until something accepts there (sends no
# request, so a server under callgrind counts no extra work); fails at once
# when the server NAME has exited.
wait_tcp() {
  local deadline=$((SECONDS + $2)) pid=${PID[$3]:-}
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 5 "$OUT/logs/$3.log" >&2 || true
      die "$3 exited before listening on port $1 (log: $OUT/logs/$3.log)"
    fi
    ((SECONDS < deadline)) || die "nothing listens on port $1 after $2 s (log: $OUT/logs/$3.log)"
    sleep 0.1
  done
}

# chat_ok TARGET: one non-streaming chat request through TARGET answers 200.
chat_ok() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "$AUTH" -H 'content-type: application/json' \
    -d "$BODY_1K" "${URL[$1]}/v1/chat/completions") || true
  [[ $code == 200 ]] || die "$1 answered $code to a chat request (see $OUT/logs/)"
}

start_mock() {
  start_bg mock "${LOAD_CPU[@]}" "$BIN/fast_mock" --port "$MOCK_PORT" --threads "$MOCK_THREADS" \
    --chunks "$CHUNKS" --interval-ms "$INTERVAL_MS" --first-token-ms "$FIRST_TOKEN_MS"
  URL[direct]=http://127.0.0.1:$MOCK_PORT
  PID[direct]=${PID[mock]}
  wait_tcp "$MOCK_PORT" 10 mock
}

# The proxy's environment: nothing but explicit settings (env -i), so no
# variable of this shell and no .env can leak in; it also runs from a
# scratch directory, since .env is looked up in parent directories too.
# No MCP servers: scenarios 1-4 measure the transparent path, and an MCP
# server's start-up would only add noise (scenario 5's start_proxy_mcp adds one).
proxy_env() {
  PROXY_ENV=(PATH="$PATH" HOME="$HOME" OPENAI_API_KEY= OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1"
    HOST=127.0.0.1 PORT="$PROXY_PORT" CONFIG_FILE="$PROXY_ROOT/conf/mcp-chat-proxy.toml"
    MCP_SERVERS_CONFIG= SERVER_THREADS="$1" RUST_LOG=warn)
}

# shellcheck disable=SC2120 # the wrapper is passed by cg_run, as "start_$x"
# start_proxy [WRAPPER...]: the proxy, optionally under a wrapper (valgrind).
start_proxy() {
  proxy_env "$THREADS"
  pushd "$SCRATCH" >/dev/null || die "no scratch directory $SCRATCH"
  start_bg proxy "${SERVER_CPU[@]}" env -i "${PROXY_ENV[@]}" "$@" "$PROXY_BIN"
  popd >/dev/null || die "popd"
  URL[proxy]=http://127.0.0.1:$PROXY_PORT
  wait_tcp "$PROXY_PORT" 60 proxy
}

# shellcheck disable=SC2120 # as start_proxy
# start_bare [WRAPPER...]: the bare pingora passthrough, optionally wrapped.
start_bare() {
  start_bg bare "${SERVER_CPU[@]}" "$@" "$BIN/bare_pingora" --port "$BARE_PORT" \
    --upstream "127.0.0.1:$MOCK_PORT" --threads "$THREADS"
  URL[bare]=http://127.0.0.1:$BARE_PORT
  wait_tcp "$BARE_PORT" 60 bare
}

# shellcheck disable=SC2120 # as start_proxy
# start_nginx [WRAPPER...]: nginx with its own generated config; under a
# wrapper (valgrind) as a single process that serves requests itself.
start_nginx() {
  local workers=$THREADS master=on
  if (($#)); then workers=1 master=off; fi
  mkdir -p "$OUT/nginx/tmp"
  sed -e "s|@OUT@|$OUT|g" -e "s|@MOCK_PORT@|$MOCK_PORT|g" -e "s|@PORT@|$NGINX_PORT|g" \
    -e "s|@WORKERS@|$workers|g" -e "s|@MASTER@|$master|g" \
    "$BENCH/conf/nginx.conf.in" >"$OUT/nginx/nginx.conf"
  start_bg nginx "${SERVER_CPU[@]}" "$@" nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf"
  URL[nginx]=http://127.0.0.1:$NGINX_PORT
  wait_tcp "$NGINX_PORT" 60 nginx
}

# LiteLLM takes seconds to import: start it early, wait for it later.
start_litellm() {
  sed -e "s|@MOCK_PORT@|$MOCK_PORT|g" "$BENCH/conf/litellm.yaml.in" >"$OUT/litellm.yaml"
  start_bg litellm "${SERVER_CPU[@]}" env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    "${LITELLM[@]}" --config "$OUT/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
    --num_workers "$THREADS"
  URL[litellm]=http://127.0.0.1:$LITELLM_PORT
}

# Scenario 5's proxy: the same binary and conf/, on its own port, with the
# test MCP server (stdio, the echo tool only) as its one MCP server.
# start_proxy_mcp [WRAPPER...]: the proxy with the test MCP server, checked
# to finish one tool round on both APIs.
start_proxy_mcp() {
  local servers=$OUT/mcp_servers.json
  printf '{"mcpServers": {"t": {"command": "%s", "args": ["stdio", "--tools", "echo"]}}}\n' \
    "$MCP_SERVER_BIN" >"$servers"
  proxy_env "$THREADS"
  # PROXY_EXTRA_ENV: settings a caller adds (bench/soak's SOAK_PROXY_ENV).
  PROXY_ENV+=(PORT="$PROXY_MCP_PORT" MCP_SERVERS_CONFIG="$servers" ${PROXY_EXTRA_ENV[@]+"${PROXY_EXTRA_ENV[@]}"})
  pushd "$SCRATCH" >/dev/null || die "no scratch directory $SCRATCH"
  start_bg proxy_mcp "${SERVER_CPU[@]}" env -i "${PROXY_ENV[@]}" "$@" "$PROXY_BIN"
  popd >/dev/null || die "popd"
  URL[proxy_mcp]=http://127.0.0.1:$PROXY_MCP_PORT
  wait_tcp "$PROXY_MCP_PORT" 120 proxy_mcp
  local answer
  answer=$(curl -s --max-time 60 -H "$AUTH" -H 'content-type: application/json' -H 'x-mcp-tool-mode: native' \
    -d "$BODY_TOOL" "${URL[proxy_mcp]}$CHAT") || true
  [[ $answer == *'"finish_reason":"stop"'* ]] ||
    die "the proxy with an MCP server did not finish a tool round: ${answer:0:300} (log: $OUT/logs/proxy_mcp.log)"
  answer=$(curl -s --max-time 60 -H "$AUTH" -H 'content-type: application/json' -H 'x-mcp-tool-mode: native' \
    -d "$BODY_RESP" "${URL[proxy_mcp]}$RESPONSES") || true
  [[ $answer == *'"type":"mcp_call"'* && $answer == *'"status":"completed"'* ]] ||
    die "the proxy did not finish a tool round on /v1/responses: ${answer:0:300} (log: $OUT/logs/proxy_mcp.log)"
}

# shellcheck disable=SC2119 # unwrapped on purpose
start_target() {
  case $1 in
    proxy) start_proxy ;;
    bare) start_bare ;;
    nginx) start_nginx ;;
    litellm) start_litellm; wait_tcp "$LITELLM_PORT" 120 litellm ;;
  esac
}
