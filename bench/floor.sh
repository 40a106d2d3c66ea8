#!/usr/bin/env bash
# floor.sh: the floor under bench/load.sh on this machine.
#
#     bash bench/floor.sh
#     FLOOR_RATE=0 FLOOR_MESSAGES=300000 bash bench/floor.sh
#
# examples/wirefloor.rs runs the long link's message pattern with nothing
# else: per message a send frame and its answer, a push, a sync frame and
# its answer (five frames on two loopback connections, the same codec as
# the server), but no protobuf, no store and no users. Its server and its
# load generator share the machine's cores, as `syncscope serve` and
# loadgen do in load.sh. What it reaches bounds what any server speaking
# the protocol can reach on this machine with its generator beside it.
#
# Environment: FLOOR_CONNS (default 10000), FLOOR_MESSAGES (default
# 200000), FLOOR_RATE (msg/s, 0 = as fast as answers come; default 0),
# FLOOR_PORT (default 18092), BENCH_DIR (default target/bench).
#
# Prints the generator's report, then each side's user and system CPU
# time and the CPU spent per message: the system (kernel) time is the
# loopback TCP of five frames, which no user-space work removes.
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench}
FLOOR_CONNS=${FLOOR_CONNS:-10000}
FLOOR_MESSAGES=${FLOOR_MESSAGES:-200000}
FLOOR_RATE=${FLOOR_RATE:-0}
FLOOR_PORT=${FLOOR_PORT:-18092}
mkdir -p "$BENCH_DIR"
# shellcheck source=bench/lib.sh
. bench/lib.sh

say "== machine: $(nproc) CPU(s) shared by both sides; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "== cargo build --release --example wirefloor"
cargo build --release --quiet --example wirefloor
FLOOR=$PWD/target/release/examples/wirefloor
raise_nofile $((FLOOR_CONNS + 256))

LOG=$BENCH_DIR/floor-server.log
"$FLOOR" serve --listen "127.0.0.1:$FLOOR_PORT" 2> "$LOG" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2> /dev/null || true' EXIT
wait_listening "$SERVER_PID" "$LOG"
# utime and stime (clock ticks) of a process: fields 14 and 15 of stat.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
read -r su0 ss0 < <(cpu_ticks "$SERVER_PID")
status=0
out=$("$FLOOR" load --server "127.0.0.1:$FLOOR_PORT" --conns "$FLOOR_CONNS" \
    --messages "$FLOOR_MESSAGES" --rate "$FLOOR_RATE") || status=$?
printf '%s\n' "$out"
read -r su1 ss1 < <(cpu_ticks "$SERVER_PID")
hz=$(getconf CLK_TCK)
read -r gu gs < <(printf '%s\n' "$out" | sed -n 's/.*CPU user \([0-9.]*\) s, sys \([0-9.]*\) s.*/\1 \2/p')
awk -v su=$((su1 - su0)) -v ss=$((ss1 - ss0)) -v hz="$hz" -v gu="$gu" -v gs="$gs" -v m="$FLOOR_MESSAGES" 'BEGIN {
    su /= hz; ss /= hz
    printf "server       CPU user %.2f s, sys %.2f s\n", su, ss
    printf "per message  server %.0f us (sys %.0f), generator %.0f us (sys %.0f), both %.0f us (sys %.0f)\n",
        (su + ss) / m * 1e6, ss / m * 1e6, (gu + gs) / m * 1e6, gs / m * 1e6,
        (su + ss + gu + gs) / m * 1e6, (ss + gs) / m * 1e6
}'
exit "$status"
