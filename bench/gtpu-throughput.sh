#!/usr/bin/env bash
# gtpu-throughput.sh: `syncscope flows` on a GTP-U capture (a mobile core's
# user plane) of realistic size, beside the same traffic without the tunnel
# and beside tshark on both.
#
#     bash bench/gtpu-throughput.sh
#
# Environment:
#   BENCH_DIR    where captures and scratch files go (default target/bench)
#   BENCH_BYTES  size of the plain capture (default 256M; K/M/G suffixes, powers of 1024)
#   BENCH_RUNS   runs per tool, the best wall time is kept (default 3)
#   BENCH_NO_TSHARK=1  skip tshark
#   BENCH_REGEN=1  regenerate the captures
#
# What it does:
#   1. cargo build --release (syncscope, examples/gencap.rs, examples/gtpwrap.rs);
#   2. generates $BENCH_DIR/longlink-real-gtpu-base.pcap (gencap --mix real: 50
#      long links with heartbeats, pushes, newsyncs of 16 KiB to 1 MiB, a SYN
#      scan, HTTP) and wraps every packet in Ethernet/IPv4/UDP/GTP-U with
#      gtpwrap (64 base stations, a TEID per connection and direction: +50
#      bytes a packet) into longlink-real-gtpu.pcap; checks that `flows
#      --hash` gives the same connections and bytes on both;
#   3. runs, BENCH_RUNS times each, on both files:
#        syncscope flows FILE --format json --quiet
#        syncscope flows FILE --format json --quiet (taskset -c 0)
#        tshark -n -q -r FILE -z conv,tcp
#      and prints seconds, MB/s, peak RSS and CPU%, and the ratios that
#      matter on a noisy machine: tunnel over plain, tshark over syncscope.
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench}
BENCH_BYTES=${BENCH_BYTES:-256M}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_NO_TSHARK=${BENCH_NO_TSHARK:-0}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

# shellcheck source=bench/lib.sh
. bench/lib.sh

SYNCSCOPE=$(release_dir)/syncscope
GENCAP=$(release_dir)/examples/gencap
GTPWRAP=$(release_dir)/examples/gtpwrap
TIME_FILE=$(mktemp "$BENCH_DIR/time.XXXXXX")
trap 'rm -f "$TIME_FILE" "$BENCH_DIR/stderr.txt"' EXIT

bench_setup
cargo build --release --quiet --example gtpwrap

PLAIN=$(gen longlink-real-gtpu-base.pcap "$BENCH_BYTES" real)
GTPU=$BENCH_DIR/longlink-real-gtpu.pcap
if [ "${BENCH_REGEN:-0}" = 1 ] || [ ! -f "$GTPU" ] || [ "$GTPU" -ot "$PLAIN" ]; then
    say "== wrapping $PLAIN in GTP-U"
    "$GTPWRAP" "$PLAIN" "$GTPU"
fi
cat "$GTPU" > /dev/null
say "== the same connections and bytes through the tunnel"
A=$("$SYNCSCOPE" flows "$PLAIN" --hash --format json -q | grep sha256)
B=$("$SYNCSCOPE" flows "$GTPU" --hash --format json -q | grep sha256)
if [ "$A" != "$B" ]; then
    say "!! the tunnel changed what flows delivers"
    exit 1
fi
say "   $(printf '%s\n' "$A" | wc -l) direction hashes equal"

HAVE_TSHARK=0
if [ "$BENCH_NO_TSHARK" != 1 ] && have_tool tshark; then HAVE_TSHARK=1; fi

# measure LABEL FILE CMD...: best wall time of BENCH_RUNS runs; prints a row
# and sets BEST_S.
measure() {
    local label=$1 file=$2
    shift 2
    local best="" rss=0 cpu="" i e m p bytes
    bytes=$(stat -c %s "$file")
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        /usr/bin/time -o "$TIME_FILE" -f '%e %M %P' "$@" > /dev/null 2> "$BENCH_DIR/stderr.txt" || {
            say "!! $label failed"
            tail -5 "$BENCH_DIR/stderr.txt" >&2
            BEST_S=0
            return 0
        }
        read -r e m p < <(tail -1 "$TIME_FILE")
        say "   $label run $i: ${e}s, ${m} KB, CPU $p"
        if [ -z "$best" ] || awk -v a="$e" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$e
            cpu=$p
        fi
        if [ "$m" -gt "$rss" ]; then rss=$m; fi
    done
    BEST_S=$best
    awk -v l="$label" -v s="$best" -v b="$bytes" -v r="$rss" -v c="$cpu" 'BEGIN {
        if (s <= 0) s = 0.005
        printf "%-44s %9.2f %9.0f %9.1f %6s\n", l, s, b / 1e6 / s, r / 1024, c }'
}

echo
echo "plain: $PLAIN ($(stat -c %s "$PLAIN") bytes); GTP-U: $GTPU ($(stat -c %s "$GTPU") bytes)"
echo "best of $BENCH_RUNS runs, page cache warm; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-44s %9s %9s %9s %6s\n" tool seconds "MB/s" "RSS MiB" "CPU"
measure "syncscope flows (plain)" "$PLAIN" "$SYNCSCOPE" flows "$PLAIN" --format json --quiet
S_PLAIN=$BEST_S
measure "syncscope flows (GTP-U)" "$GTPU" "$SYNCSCOPE" flows "$GTPU" --format json --quiet
S_GTPU=$BEST_S
measure "syncscope flows (plain, taskset -c 0)" "$PLAIN" taskset -c 0 "$SYNCSCOPE" flows "$PLAIN" --format json --quiet
measure "syncscope flows (GTP-U, taskset -c 0)" "$GTPU" taskset -c 0 "$SYNCSCOPE" flows "$GTPU" --format json --quiet
T_PLAIN=0
T_GTPU=0
if [ "$HAVE_TSHARK" = 1 ]; then
    measure "tshark -z conv,tcp (plain)" "$PLAIN" tshark -n -q -r "$PLAIN" -z conv,tcp
    T_PLAIN=$BEST_S
    measure "tshark -z conv,tcp (GTP-U)" "$GTPU" tshark -n -q -r "$GTPU" -z conv,tcp
    T_GTPU=$BEST_S
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPU(s)"
awk -v sp="$S_PLAIN" -v sg="$S_GTPU" -v tp="$T_PLAIN" -v tg="$T_GTPU" 'BEGIN {
    printf "syncscope: GTP-U takes %.2fx the time of plain\n", sg / sp
    if (tg > 0) {
        printf "tshark:    GTP-U takes %.2fx the time of plain\n", tg / tp
        printf "on the GTP-U file tshark takes %.1fx syncscope'"'"'s time\n", tg / sg
    }
}'
exit 0
