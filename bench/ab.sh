#!/usr/bin/env bash
# ab.sh: two builds of syncscope on the same capture, run alternately, so
# that a noisy shared machine affects both alike (compare the ratio, not the
# absolute times). For each command: best wall time of N runs, MB/s and peak
# RSS, on both cores and pinned to one (taskset -c 0).
#
#     bash bench/ab.sh OLD_BINARY NEW_BINARY [CAPTURE]
#
# CAPTURE defaults to target/bench/longlink-1g.pcap (made by
# bench/flows-throughput.sh). AB_RUNS (default 3) sets N. To build the
# baseline: git worktree add /tmp/base REV && cargo build --release
# --manifest-path /tmp/base/Cargo.toml, then use /tmp/base/target/release/syncscope.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/ab.sh OLD_BINARY NEW_BINARY [CAPTURE]}
NEW=${2:?usage: bench/ab.sh OLD_BINARY NEW_BINARY [CAPTURE]}
FILE=${3:-target/bench/longlink-1g.pcap}
N=${AB_RUNS:-3}
[ -f "$FILE" ] || { echo "no capture $FILE: run bench/flows-throughput.sh first or name one" >&2; exit 2; }
TIME_FILE=$(mktemp)
trap 'rm -f "$TIME_FILE"' EXIT
cat "$FILE" > /dev/null
BYTES=$(stat -c %s "$FILE")
echo "capture: $FILE ($BYTES bytes); best of $N alternating runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-32s %-13s %-4s %8s %9s %9s\n' command cpus bin seconds "MB/s" "RSS MiB"
for cmd in "flows --format json -q" "flows --hash --format json -q" "analyze --format json -q" "frames --format ndjson -q"; do
    for pin in "" "taskset -c 0"; do
        declare -A best=() rss=()
        for ((i = 1; i <= N; i++)); do
            for bin in old new; do
                exe=$OLD
                [ "$bin" = new ] && exe=$NEW
                # shellcheck disable=SC2086
                /usr/bin/time -o "$TIME_FILE" -f '%e %M' $pin "$exe" $cmd "$FILE" > /dev/null 2>&1
                read -r e m < "$TIME_FILE"
                if [ -z "${best[$bin]:-}" ] || awk -v a="$e" -v b="${best[$bin]}" 'BEGIN { exit !(a < b) }'; then
                    best[$bin]=$e
                fi
                [ "$m" -gt "${rss[$bin]:-0}" ] && rss[$bin]=$m
            done
        done
        for bin in old new; do
            awk -v c="$cmd" -v p="${pin:-2 cores}" -v b="$bin" -v s="${best[$bin]}" -v n="$BYTES" -v r="${rss[$bin]}" \
                'BEGIN { if (s <= 0) s = 0.005; printf "%-32s %-13s %-4s %8.2f %9.0f %9.1f\n", c, p, b, s, n / 1e6 / s, r / 1024 }'
        done
        unset best rss
    done
done
