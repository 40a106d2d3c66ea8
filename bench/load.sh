#!/usr/bin/env bash
# load.sh: the reference server under load, with the durable store.
#
# Run from anywhere (needs cargo):
#
#     bash bench/load.sh
#     LOAD_CONNS=2000 LOAD_MESSAGES=50000 bash bench/load.sh
#
# Environment:
#   BENCH_DIR      scratch directory (default target/bench); the store goes
#                  to a fresh directory below it, removed afterwards
#   LOAD_CONNS     connections, half senders and half receivers (default 10000)
#   LOAD_MESSAGES  messages in all (default 200000)
#   LOAD_RATE      target messages per second in all, 0 = as fast as acks
#                  come (default 20000)
#   LOAD_THREADS   tokio worker threads of the generator (default 1)
#   LOAD_PORT      server port on 127.0.0.1 (default 18090)
#   LOAD_SERVER_THREADS  tokio worker threads of the server (TOKIO_WORKER_THREADS;
#                  default: one per CPU). The store's writer and checkpoint
#                  threads come on top.
#   LOAD_JSON=1    the generator prints JSON instead of the summary
#
# What it does:
#   1. cargo build --release (the `syncscope` binary and examples/loadgen.rs);
#   2. raises the open-file limit to the hard limit (each connection is one
#      descriptor in the server and one in the generator);
#   3. starts `syncscope serve --data DIR --quiet --max-connections N+64`
#      on 127.0.0.1 (SQLite in WAL mode, synchronous=FULL, group commit);
#   4. runs the generator: N connections identify (receivers first), the
#      senders send M messages at the target rate, each receiver newsyncs on
#      every newnotify; it prints connections held, messages acknowledged /
#      delivered / duplicated / lost, delivered messages per second and the
#      send-to-deliver latency (p50, p99, p99.9, max);
#   5. prints the server's peak RSS, each server thread's CPU time and time
#      spent waiting for a CPU, the whole machine's busy and stolen CPU time
#      (on a virtual machine the hypervisor may run other guests on "our"
#      CPUs), then stops the server (SIGTERM).
#
# Server and generator share the machine's cores (nothing is pinned): the
# figures are for both on one box. Targets (2 cores): 10 000 connections
# held, >= 20 000 messages/s delivered, p99 < 50 ms. The script exits with
# the generator's status: 0 when every acknowledged message was delivered
# exactly once and nothing failed.
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench}
LOAD_CONNS=${LOAD_CONNS:-10000}
LOAD_MESSAGES=${LOAD_MESSAGES:-200000}
LOAD_RATE=${LOAD_RATE:-20000}
LOAD_THREADS=${LOAD_THREADS:-1}
LOAD_PORT=${LOAD_PORT:-18090}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

SYNCSCOPE=$PWD/target/release/syncscope
LOADGEN=$PWD/target/release/examples/loadgen

# shellcheck source=bench/lib.sh
. bench/lib.sh

say "== machine: $(nproc) CPU(s) shared by the server and the generator, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
say "== load before: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs on the machine lower the figures)"
say "== cargo build --release --bin syncscope --example loadgen"
cargo build --release --quiet --bin syncscope --example loadgen

# Each side needs a descriptor per connection, plus a few.
raise_nofile $((LOAD_CONNS + 256))

DATA=$(mktemp -d "$BENCH_DIR/load-store.XXXXXX")
SERVER_LOG=$BENCH_DIR/load-server.log
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2> /dev/null; then
        kill -TERM "$SERVER_PID" 2> /dev/null || true
        wait "$SERVER_PID" 2> /dev/null || true
    fi
    SERVER_PID=""
}
trap 'stop_server; rm -rf "$DATA"' EXIT

say "== syncscope serve --data $DATA --listen 127.0.0.1:$LOAD_PORT --quiet --max-connections $((LOAD_CONNS + 64))"
if [ -n "${LOAD_SERVER_THREADS:-}" ]; then export TOKIO_WORKER_THREADS=$LOAD_SERVER_THREADS; fi
"$SYNCSCOPE" serve --data "$DATA" --listen "127.0.0.1:$LOAD_PORT" --quiet \
    --max-connections "$((LOAD_CONNS + 64))" 2> "$SERVER_LOG" &
SERVER_PID=$!
wait_listening "$SERVER_PID" "$SERVER_LOG"

say "== loadgen: $LOAD_CONNS connections, $LOAD_MESSAGES messages at $LOAD_RATE msg/s (0 = max), $LOAD_THREADS generator thread(s)"
JSON_FLAG=()
if [ "${LOAD_JSON:-0}" = 1 ]; then JSON_FLAG=(--json); fi
# CPU time of the whole machine, in clock ticks: busy (all processes) and
# stolen (a virtual machine's CPUs running someone else's work).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
read -r busy_before steal_before < <(busy_ticks)
status=0
unset TOKIO_WORKER_THREADS
"$LOADGEN" --server "127.0.0.1:$LOAD_PORT" --conns "$LOAD_CONNS" --messages "$LOAD_MESSAGES" \
    --rate "$LOAD_RATE" --threads "$LOAD_THREADS" "${JSON_FLAG[@]}" || status=$?

# Peak RSS (VmHWM) of the server and, per thread, CPU time and time spent
# runnable but waiting for a CPU (schedstat): the wait shows contention.
read -r busy_after steal_after < <(busy_ticks)
hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2> /dev/null || echo "?")
say "== server: peak RSS ${hwm} MiB, store $(du -sh "$DATA" | cut -f1); per thread (CPU s / waiting for a CPU s):"
for t in /proc/"$SERVER_PID"/task/*; do
    [ -r "$t/schedstat" ] || continue
    awk -v n="$(cat "$t/comm")" '{ printf "     %-18s %7.2f / %7.2f\n", n, $1 / 1e9, $2 / 1e9 }' "$t/schedstat" >&2
done
stop_server
if grep -v -e 'listening on' -e 'stopped' -e 'shutting down' "$SERVER_LOG" | grep -q .; then
    say "== server log (not identify lines):"
    grep -v -e 'listening on' -e 'stopped' "$SERVER_LOG" | head -10 >&2
fi
say "== whole machine during the run: $(awk -v a="$busy_before" -v b="$busy_after" -v s0="$steal_before" -v s1="$steal_after" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f CPU s busy (all processes), %.1f CPU s stolen by the hypervisor", (b - a) / hz, (s1 - s0) / hz }')"
say "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
