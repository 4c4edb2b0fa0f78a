# shellcheck shell=bash
# shellcheck disable=SC2034 # what this file sets, bench/run and the other files use
# Installing, building and preparing. Sourced by bench/run.

# Everything the harness runs, installed when missing (a fresh Debian
# machine as root): nginx and wrk from Debian, oha from crates.io, LiteLLM's
# proxy from PyPI, valgrind for the callgrind step.
install_tools() {
  local apt=()
  command -v nginx >/dev/null || apt+=(nginx)
  command -v wrk >/dev/null || apt+=(wrk)
  command -v curl >/dev/null || apt+=(curl)
  command -v setsid >/dev/null || apt+=(util-linux)
  if ((CALLGRIND)); then command -v valgrind >/dev/null || apt+=(valgrind); fi
  if ((${#apt[@]})); then
    ((INSTALL)) || die "missing: ${apt[*]} (run without --no-install, or apt-get install them)"
    log "installing ${apt[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt[@]}" >/dev/null
  fi
  if ! command -v oha >/dev/null; then
    ((INSTALL)) || die "missing: oha (cargo install oha --locked)"
    log "installing oha (cargo install, a few minutes)"
    cargo install oha --locked --quiet
  fi
  PYTHON=${PYTHON:-python3}
  if ! "$PYTHON" -c 'import litellm.proxy.proxy_cli' 2>/dev/null; then
    ((INSTALL)) || die "missing: LiteLLM's proxy (pip install 'litellm[proxy]')"
    log "installing litellm[proxy] (pip)"
    "$PYTHON" -m pip install -q 'litellm[proxy]' 2>/dev/null ||
      "$PYTHON" -m pip install -q --break-system-packages 'litellm[proxy]'
  fi
  # The console script may be missing from PATH (pyenv shims, --user): run
  # the same entry point through the interpreter that has the package.
  LITELLM=("$PYTHON" -c 'import sys; from litellm.proxy.proxy_cli import run_server; sys.argv[0] = "litellm"; run_server()')
}

build_all() {
  if ((!BUILD)); then
    [[ -x $PROXY_BIN && -x $BIN/fast_mock && -x $BIN/mcp_calls ]] || die "--no-build, but nothing is built yet"
    log "using the release binaries already built (--no-build)"
    return
  fi
  log "building release binaries (the proxy in $PROXY_ROOT, then bench/)"
  (cd "$PROXY_ROOT" && cargo build --release --locked --quiet --workspace)
  # bench/ keeps its own target dir even when CARGO_TARGET_DIR moves the proxy's.
  (cd "$BENCH" && CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --locked --quiet)
}

prepare_out() {
  rm -rf "$RAW" "$OUT/logs" "$OUT/nginx"
  mkdir -p "$RAW/s4" "$OUT/logs"
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/mcp-bench.XXXXXX")
}

check_ports() {
  local p
  for p in "$@"; do port_free "$p" || die "port $p is in use (set BENCH_PORT_BASE to move the ports)"; done
}

# What the report states about this run besides its measurements.
write_params() {
  local placement="free (not pinned; the kernel schedules the targets, the mock and the load generators on all cores)"
  ((PIN)) && placement="pinned with taskset: targets on CPU 1, mock and load generators on CPU 0"
  local rev dirty=
  rev=$(git -C "$PROXY_ROOT" rev-parse --short HEAD 2>/dev/null || echo "${PROXY_REV:-unknown}")
  if [[ -n $(git -C "$PROXY_ROOT" status --porcelain -- src Cargo.toml Cargo.lock conf 2>/dev/null) ]]; then
    dirty=" with uncommitted changes in src/ or conf/"
  fi
  cat >"$RAW/params.json" <<JSON
{
  "proxy_rev": "$rev$dirty",
  "mode": "$MODE", "reps": $REPS, "placement": "$placement",
  "threads": $THREADS, "mock_threads": $MOCK_THREADS, "callgrind_threads": $CG_THREADS,
  "s1_requests": $S1_N, "s1_rate": $S1_RATE, "s1_litellm_requests": $S1_SLOW_N, "s1_litellm_rate": $LITELLM_RATE,
  "s2_seconds": $S2_SECS, "s5_requests": $S5_N, "s6_calls": $S6_CALLS, "s6_seconds": $S6_SECS, "s6_concurrency": $S6_CONCURRENCY, "s3_streams": $S3_STREAMS, "mem_streams": $MEM_STREAMS,
  "hold_levels": [$(IFS=,; echo "${HOLD_LEVELS[*]}")], "litellm_hold": $LITELLM_HOLD,
  "chunks": $CHUNKS, "interval_ms": $INTERVAL_MS, "first_token_ms": $FIRST_TOKEN_MS, "stall_ms": $STALL_MS,
  "callgrind": $CALLGRIND, "callgrind_requests": [$(IFS=,; echo "${CG_N[*]}")],
  "seconds": {"setup": $T_SETUP, "scenarios": $T_SCENARIOS, "total": $T_TOTAL},
  "loadavg": {"start": $LOAD_START, "end": $LOAD_END}
}
JSON
}
