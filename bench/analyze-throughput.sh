#!/usr/bin/env bash
# analyze-throughput.sh: end-to-end throughput and peak memory of
# `syncscope analyze` and `syncscope frames` on a large synthetic capture,
# next to tshark running a Lua long-link dissector (bench/wechat_longlink.lua).
#
# Run from anywhere (needs cargo; root to apt-get install tshark):
#
#     bash bench/analyze-throughput.sh
#
# Environment:
#   BENCH_DIR    where captures and scratch files go (default target/bench,
#                shared with flows-throughput.sh: its capture is reused)
#   BENCH_BYTES  size of the main capture (default 1G; K/M/G suffixes, powers of 1024)
#   BENCH_RUNS   runs per tool, the best wall time is kept (default 3)
#   BENCH_TSHARK_RUNS  runs for tshark (default BENCH_RUNS; tshark is slow)
#   BENCH_REGEN=1      regenerate the capture even if one with the same
#                      parameters is there
#   BENCH_NO_COMPARE=1 skip tshark
#
# What it does:
#   1. cargo build --release (the `syncscope` binary and examples/gencap.rs);
#   2. generates $BENCH_DIR/longlink-1g.pcap with gencap (64 long-lived WeChat
#      long-link TCP connections to port 8080), unless a file made with the
#      same --bytes/--conns/--port/--seed is there (as flows-throughput.sh
#      writes it), then reads it once so the page cache holds it;
#   3. checks on samples/longlink-8080.pcap that the Lua dissector really
#      dissects: the number of long-link frames tshark finds must equal the
#      number of records `syncscope frames` prints;
#   4. runs each command BENCH_RUNS times under /usr/bin/time -f '%e %M %P':
#        syncscope analyze FILE --format json -q             (the report)
#        the same pinned to one CPU with `taskset -c 0`
#        syncscope frames FILE --format ndjson -q            (a JSON record per frame)
#        tshark -n -q -r FILE -X lua_script:bench/wechat_longlink.lua \
#               -z 'io,stat,0,COUNT(wechat_ll.cmd)wechat_ll.cmd'
#                                                            (every frame through the dissector)
#      and prints: tool, best wall seconds, MB/s (file size in 10^6 bytes /
#      seconds), peak RSS in MiB (largest over the runs), CPU% of the best run.
#
# Targets: syncscope analyze >= 1 GB/s on one core (the taskset line) and
# < 64 MB peak RSS. The script reports MET / MISSED and always exits 0 when
# the measurements ran. Figures from a loaded machine (other builds running)
# are low: the load average is printed before and after.
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench}
BENCH_BYTES=${BENCH_BYTES:-1G}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_TSHARK_RUNS=${BENCH_TSHARK_RUNS:-$BENCH_RUNS}
BENCH_REGEN=${BENCH_REGEN:-0}
BENCH_NO_COMPARE=${BENCH_NO_COMPARE:-0}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

SYNCSCOPE=$PWD/target/release/syncscope
GENCAP=$PWD/target/release/examples/gencap
LUA=$PWD/bench/wechat_longlink.lua
SAMPLE=$PWD/samples/longlink-8080.pcap
TSHARK_STAT='io,stat,0,COUNT(wechat_ll.cmd)wechat_ll.cmd'
TIME_FILE=$(mktemp "$BENCH_DIR/time.XXXXXX")
trap 'rm -f "$TIME_FILE" "$BENCH_DIR/stderr.txt"' EXIT

# shellcheck source=bench/lib.sh
. bench/lib.sh

# ---- 1. build ----------------------------------------------------------------
bench_setup

# ---- 2. capture --------------------------------------------------------------
# gen: see bench/lib.sh.

FILE=$(gen longlink-1g.pcap "$BENCH_BYTES")
FILE_BYTES=$(stat -c %s "$FILE")

# ---- 3. tshark and the Lua dissector -----------------------------------------
HAVE_TSHARK=0
if [ "$BENCH_NO_COMPARE" != 1 ]; then
    if ! command -v tshark > /dev/null; then
        if is_root; then
            say "== installing tshark (apt-get)"
            apt_install tshark || say "== apt-get install tshark failed: comparison skipped"
        else
            say "== tshark missing and not root: comparison skipped"
        fi
    fi
    command -v tshark > /dev/null && HAVE_TSHARK=1
fi

CHECK=""
if [ "$HAVE_TSHARK" = 1 ]; then
    # Does the dissector see every frame? One `wechat_ll.cmd` per frame;
    # several frames in one packet come out comma-separated.
    ts_frames=$(tshark -n -r "$SAMPLE" -X lua_script:"$LUA" -Y wechat_ll -T fields -e wechat_ll.cmd 2> /dev/null |
        tr ',' '\n' | grep -c . || true)
    ss_frames=$("$SYNCSCOPE" frames "$SAMPLE" --format ndjson -q | grep -c '"layer":"longlink"' || true)
    if [ "$ts_frames" = "$ss_frames" ] && [ "$ts_frames" -gt 0 ]; then
        CHECK="dissector check on $(basename "$SAMPLE"): tshark+Lua $ts_frames frames, syncscope frames $ss_frames: OK"
    else
        CHECK="dissector check on $(basename "$SAMPLE"): tshark+Lua $ts_frames frames, syncscope frames $ss_frames: MISMATCH"
    fi
    say "== $CHECK"
fi

# ---- measuring ---------------------------------------------------------------
ROWS=()
TSHARK_OUT=$BENCH_DIR/tshark-iostat.txt
# measure LABEL RUNS CMD...: best wall time of RUNS runs, stdout discarded
# (tshark's kept in $TSHARK_OUT). Sets BEST_S, BEST_RSS_KB (max over the
# runs) and adds a row to the table.
measure() {
    local label=$1 runs=$2
    shift 2
    local best="" rss=0 cpu="" i e m p out=/dev/null
    case $label in tshark*) out=$TSHARK_OUT ;; esac
    for ((i = 1; i <= runs; i++)); do
        if ! /usr/bin/time -o "$TIME_FILE" -f '%e %M %P' "$@" > "$out" 2> "$BENCH_DIR/stderr.txt"; then
            say "!! $label failed (run $i):"
            tail -5 "$BENCH_DIR/stderr.txt" >&2
            ROWS+=("$(printf '%-38s %9s %9s %9s %6s' "$label" failed - - -)")
            BEST_S=0
            BEST_RSS_KB=0
            return 0
        fi
        read -r e m p < <(tail -1 "$TIME_FILE")
        say "   $label run $i: ${e}s, ${m} KB, CPU $p"
        if [ -z "$best" ] || awk -v a="$e" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$e
            cpu=$p
        fi
        if [ "$m" -gt "$rss" ]; then rss=$m; fi
    done
    BEST_S=$best
    BEST_RSS_KB=$rss
    ROWS+=("$(awk -v l="$label" -v s="$best" -v b="$FILE_BYTES" -v r="$rss" -v c="$cpu" 'BEGIN {
        if (s <= 0) s = 0.005;  # /usr/bin/time resolution is 10 ms
        printf "%-38s %9.2f %9.0f %9.1f %6s", l, s, b / 1e6 / s, r / 1024, c }')")
}

say "== measuring on $FILE ($FILE_BYTES bytes), best of $BENCH_RUNS runs"
measure "syncscope analyze" "$BENCH_RUNS" "$SYNCSCOPE" analyze "$FILE" --format json -q
ANALYZE_RSS=$BEST_RSS_KB
measure "syncscope analyze (taskset -c 0)" "$BENCH_RUNS" taskset -c 0 "$SYNCSCOPE" analyze "$FILE" --format json -q
ONE_CORE_S=$BEST_S
ONE_CORE_RSS=$BEST_RSS_KB
measure "syncscope frames --format ndjson" "$BENCH_RUNS" "$SYNCSCOPE" frames "$FILE" --format ndjson -q
FRAMES_RSS=$BEST_RSS_KB
if [ "$HAVE_TSHARK" = 1 ]; then
    measure "tshark + wechat_longlink.lua" "$BENCH_TSHARK_RUNS" \
        tshark -n -q -r "$FILE" -X lua_script:"$LUA" -z "$TSHARK_STAT"
    TS_COUNT=$(awk -F'|' '/<>/ { gsub(/ /, "", $3); print $3 }' "$TSHARK_OUT" | tail -1)
else
    say "== tshark not available: skipped"
fi

# ---- report ------------------------------------------------------------------
echo
echo "file: $FILE ($FILE_BYTES bytes, $(awk -v b="$FILE_BYTES" 'BEGIN { printf "%.0f", b / 1e6 }') MB); best of $BENCH_RUNS runs (tshark $BENCH_TSHARK_RUNS); page cache warm"
printf '%-38s %9s %9s %9s %6s\n' tool seconds "MB/s" "RSS MiB" "CPU"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
[ -n "$CHECK" ] && echo "$CHECK"
[ -n "${TS_COUNT:-}" ] && echo "tshark + Lua: ${TS_COUNT} long-link frames dissected in the big file"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPU(s)"
awk -v b="$FILE_BYTES" -v s="$ONE_CORE_S" -v r="$ANALYZE_RSS" -v o="$ONE_CORE_RSS" 'BEGIN {
    if (s <= 0) { print "target >= 1 GB/s on one core: no measurement  MISSED"; s = 0 }
    else {
        t = b / 1e9 / s
        printf "target analyze >= 1 GB/s on one core: %.2f GB/s  %s\n", t, (t >= 1 ? "MET" : "MISSED")
    }
    m = (r > o ? r : o) / 1024
    printf "target analyze < 64 MB peak RSS:      %.1f MiB  %s\n", m, (m > 0 && m * 1.048576 < 64 ? "MET" : "MISSED")
}'
exit 0
