# shellcheck shell=bash
# The scenarios. Sourced by bench/run; each writes raw results under
# $RAW/<scenario>/ for bench/report.py, which computes every figure.

CHAT=/v1/chat/completions

# oha at a fixed rate (open loop, latency corrected) with one connection.
s1_latency() {
  local x=$1 rep=$2 rate=$S1_RATE n=$S1_N
  if [[ $x == litellm ]]; then rate=$LITELLM_RATE; n=$S1_SLOW_N; fi
  mkdir -p "$RAW/s1/$x"
  "${LOAD_CPU[@]}" oha -n "$n" -c 1 -q "$rate" --latency-correction --no-tui --worker-threads 1 \
    -m POST -T application/json -H "$AUTH" -d "$BODY_1K" \
    --output-format csv -o "$RAW/s1/$x/rep$rep.csv" "${URL[$x]}$CHAT"
}

# LiteLLM cannot take the fast targets' rate at one connection: an open-loop
# run above its capacity would measure its queue, not its latency. Its rate
# is a quarter of what its closed-loop mean latency allows.
pick_litellm_rate() {
  local mean
  mean=$(oha -n 40 -c 1 --no-tui --worker-threads 1 -m POST -T application/json -H "$AUTH" -d "$BODY_1K" \
    --output-format json "${URL[litellm]}$CHAT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["average"])')
  LITELLM_RATE=$(python3 -c "print(max(2, min($S1_RATE, int(0.25 / max($mean, 1e-4)))))")
  log "LiteLLM: mean latency ${mean}s at one connection, so its scenario-1 rate is $LITELLM_RATE/s"
}

# wrk, closed loop, 32 connections; memory of the target sampled meanwhile.
s2_saturation() {
  local x=$1 size=$2 rep=$3 body=$BODY_1K dir=$RAW/s2/$1-$2 watch=
  [[ $size == 16k ]] && body=$BODY_16K
  mkdir -p "$dir"
  if [[ $x != direct ]]; then
    "$BIN/memwatch" --pid "${PID[$x]}" --for-ms $((S2_SECS * 1000)) >"$dir/mem-rep$rep.json" &
    watch=$!
  fi
  BENCH_BODY=$body WRK_JSON=$dir/rep$rep.json "${LOAD_CPU[@]}" wrk -t2 -c32 -d"${S2_SECS}s" --latency \
    -s "$BENCH/conf/wrk_post.lua" "${URL[$x]}$CHAT" >"$dir/rep$rep.txt"
  [[ -z $watch ]] || wait "$watch"
}

# stream_client TARGET N OUTFILE [extra flags]: N concurrent streams.
streams() {
  local x=$1 n=$2 out=$3; shift 3
  "${LOAD_CPU[@]}" "$BIN/stream_client" --url "${URL[$x]}$CHAT" --streams "$n" --chunks "$CHUNKS" \
    --first-token-ms "$FIRST_TOKEN_MS" --stall-ms "$STALL_MS" --timeout-s 30 --authorization "${AUTH#*: }" \
    "$@" >"$out"
}

# A few streams at a time: time to first chunk and the gaps between chunks.
s3_timing() {
  mkdir -p "$RAW/s3/timing/$1"
  streams "$1" "$S3_STREAMS" "$RAW/s3/timing/$1/rep$2.json" --ramp-ms 500
}

# held FILE: the run lost no chunk and no stream stalled.
held() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(r["lost"] + r["stalled"] > 0)' "$1"
}

# Concurrent 64x20 ms streams, level by level: all of a level's streams
# open within one second, so at its peak every one of them is open at once.
# Targets take turns within each repetition (noise on this shared machine
# then hits all of them alike); a target stays in for the next level while
# most of its repetitions lost no chunk and had no stall.
# s3_hold REPS LEVEL... -- TARGET...
s3_hold() {
  local reps=$1 levels=() level rep x file
  shift
  while [[ $1 != -- ]]; do levels+=("$1"); shift; done
  shift
  local active=("$@")
  for level in "${levels[@]}"; do
    ((${#active[@]})) || break
    local -A fails=()
    for rep in $(seq 1 "$reps"); do
      for x in "${active[@]}"; do
        mkdir -p "$RAW/s3/hold/$x"
        file=$RAW/s3/hold/$x/$level-rep$rep.json
        streams "$x" "$level" "$file" --ramp-ms 1000 --threads 2
        held "$file" || fails[$x]=$((${fails[$x]:-0} + 1))
      done
    done
    local still=()
    for x in "${active[@]}"; do
      if ((${fails[$x]:-0} * 2 > reps)); then
        log "  $x: $level streams not held (${fails[$x]} of $reps repetitions lost or stalled)"
      else
        log "  $x: $level streams held (${fails[$x]:-0} of $reps repetitions lost or stalled)"
        still+=("$x")
      fi
    done
    active=("${still[@]}")
    unset fails
  done
}

# Memory in a fresh process: idle after one request, then with
# $MEM_STREAMS streams open at once.
s4_memory() {
  local x=$1 rep=$2 dir=$RAW/s4/$1
  mkdir -p "$dir"
  start_target "$x"
  chat_ok "$x"
  sleep 0.3
  "$BIN/memwatch" --pid "${PID[$x]}" >"$dir/idle-rep$rep.json"
  streams "$x" "$MEM_STREAMS" "$dir/streams-rep$rep.json" --ramp-ms 1000 --pid "${PID[$x]}" --threads 2
  stop "$x"
}

# The tool loop, one request at a time (oha, closed loop, one connection):
# through the proxy with an MCP server, a request that needs no tool with the
# loop off (x-mcp-tools: off), in native and in prompt mode; a request that
# takes one tool round; and, direct to the mock, the plain request and the
# round's two upstream calls.
s5_tool_loop() {
  local rep=$1 case url body path
  local -a headers
  for case in direct off native prompt round responses up1 up2; do
    url=${URL[proxy_mcp]} body=$BODY_1K headers=() path=$CHAT
    case $case in
      direct) url=${URL[direct]} ;;
      off) headers=(-H 'x-mcp-tools: off') ;;
      native) headers=(-H 'x-mcp-tool-mode: native') ;;
      prompt) headers=(-H 'x-mcp-tool-mode: prompt') ;;
      round) body=$BODY_TOOL headers=(-H 'x-mcp-tool-mode: native') ;;
      responses) body=$BODY_RESP headers=(-H 'x-mcp-tool-mode: native') path=$RESPONSES ;;
      up1) url=${URL[direct]} body=$BODY_TOOL ;;
      up2) url=${URL[direct]} body=$BODY_TOOL_2 ;;
    esac
    mkdir -p "$RAW/s5/$case"
    "${LOAD_CPU[@]}" oha -n "$S5_N" -c 1 --no-tui --worker-threads 1 -m POST -T application/json -H "$AUTH" \
      "${headers[@]}" -d "$body" --output-format csv -o "$RAW/s5/$case/rep$rep.csv" "$url$path"
  done
}

# MCP tool calls (echo) to the test MCP server over stdio and streamable
# HTTP, through the proxy's hub and with rmcp directly: sequential latency,
# then calls per second at $S6_CONCURRENCY concurrent callers. One JSON line
# per transport and path.
s6_mcp_calls() {
  local rep=$1
  mkdir -p "$RAW/s6"
  [[ -x $MCP_SERVER_BIN ]] || die "no test MCP server at $MCP_SERVER_BIN (built by cargo build --release)"
  "$BIN/mcp_calls" --server "$MCP_SERVER_BIN" --calls "$S6_CALLS" --secs "$S6_SECS" \
    --concurrency "$S6_CONCURRENCY" --threads "$THREADS" >"$RAW/s6/rep$rep.jsonl" 2>>"$OUT/logs/mcp_calls.log" ||
    die "scenario 6 failed (log: $OUT/logs/mcp_calls.log)"
}

# Instructions per request of one MCP round (scenario 5's round and
# responses cases): the proxy with the test MCP server under callgrind
# serves N of them, on chat completions or the Responses API (which also
# stores each response in SQLite, as its default store: true does). Only
# the proxy process is counted, not the MCP server it starts.
cg_loop() {
  local api=$1 n=$2 file=$RAW/callgrind/loop_$1-$2.out body=$BODY_TOOL path=$CHAT
  if [[ $api == responses ]]; then body=$BODY_RESP path=$RESPONSES; fi
  mkdir -p "$RAW/callgrind"
  THREADS=$CG_THREADS start_proxy_mcp valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no
  oha -n "$n" -c 1 --no-tui --worker-threads 1 -m POST -T application/json -H "$AUTH" -H 'x-mcp-tool-mode: native' \
    -d "$body" --output-format json "${URL[proxy_mcp]}$path" >"$RAW/callgrind/loop_$api-$n.oha.json"
  stop proxy_mcp INT
}

# Instructions per proxied request: the target under callgrind serves N
# requests one at a time, then exits; the run's total instruction count
# differs between two N by exactly the cost of the extra requests.
cg_run() {
  local x=$1 n=$2 file=$RAW/callgrind/$1-$2.out
  mkdir -p "$RAW/callgrind"
  local wrap=(valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no)
  THREADS=$CG_THREADS "start_$x" "${wrap[@]}"
  oha -n "$n" -c 1 --no-tui --worker-threads 1 -m POST -T application/json -H "$AUTH" -d "$BODY_1K" \
    --output-format json "${URL[$x]}$CHAT" >"$RAW/callgrind/$x-$n.oha.json"
  # SIGINT: a fast shutdown for bare pingora and nginx; ours drains (nothing is in flight) and exits.
  stop "$x" INT
  callgrind_annotate --auto=no --inclusive=no --threshold=100 "$file" >"$RAW/callgrind/$x-$n.self.txt" 2>/dev/null || true
  callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$file" >"$RAW/callgrind/$x-$n.incl.txt" 2>/dev/null || true
}
