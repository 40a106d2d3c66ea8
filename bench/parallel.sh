#!/usr/bin/env bash
# parallel.sh: one core against two (`-j 1` / `-j 2`) for `syncscope analyze`
# and `syncscope frames` on the bench captures, and what Parquet output
# costs: write throughput and the dataset's size against the JSON outputs.
#
#     bash bench/parallel.sh
#
# Environment: BENCH_DIR (default target/bench, shared with the other
# scripts: their captures are reused), BENCH_BYTES (default 1G), BENCH_RUNS
# (default 5: -j 1 and -j 2 are run in turn that many times and the median
# wall time of each is kept; the Parquet run keeps the best), BENCH_REGEN=1.
#
# Prints a table: per file and command, MB/s with -j 1 and -j 2 (medians),
# their ratio and peak RSS; then the Parquet run's MB/s and frame rows per second, and
# the sizes of the Parquet dataset, `analyze --format json` and `frames
# --format ndjson`.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-target/bench}
BENCH_BYTES=${BENCH_BYTES:-1G}
BENCH_RUNS=${BENCH_RUNS:-5}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

# shellcheck source=bench/lib.sh
. bench/lib.sh

SYNCSCOPE=$(release_dir)/syncscope
GENCAP=$(release_dir)/examples/gencap
TIME_FILE=$(mktemp "$BENCH_DIR/time.XXXXXX")
LAKE=$BENCH_DIR/lake
trap 'rm -rf "$TIME_FILE" "$LAKE" "$BENCH_DIR/out.json" "$BENCH_DIR/out.ndjson"' EXIT

bench_setup
FILE=$(gen longlink-1g.pcap "$BENCH_BYTES")
REAL=$(gen longlink-real-1g.pcap "$BENCH_BYTES" real)

mbps() { awk -v b="$1" -v s="$2" 'BEGIN{ if (s <= 0) s = 0.01; printf "%.0f", b / 1e6 / s }'; }

printf '| file | command | -j 1 MB/s | -j 2 MB/s | ratio | RSS MiB (-j 1 / -j 2) |\n|---|---|---:|---:|---:|---:|\n'
for f in "$FILE" "$REAL"; do
    bytes=$(stat -c %s "$f")
    for cmd in "analyze --format json" "frames --format ndjson"; do
        # shellcheck disable=SC2086
        read -r s1 r1 s2 r2 < <(jobs_pair "$BENCH_DIR/out.json" "$f" "$SYNCSCOPE" $cmd -q)
        printf '| %s | %s | %s | %s | %s | %s / %s |\n' "$(basename "$f")" "$cmd" \
            "$(mbps "$bytes" "$s1")" "$(mbps "$bytes" "$s2")" \
            "$(awk -v a="$s1" -v b="$s2" 'BEGIN{printf "%.2f", a / b}')" \
            "$((r1 / 1024))" "$((r2 / 1024))"
    done
done

printf '\n| file | parquet MB/s (-j 2) | frame rows/s | parquet bytes | analyze json bytes | frames ndjson bytes |\n|---|---:|---:|---:|---:|---:|\n'
for f in "$FILE" "$REAL"; do
    bytes=$(stat -c %s "$f")
    rm -rf "$LAKE"
    read -r s r < <(best "$BENCH_DIR/out.json" "$SYNCSCOPE" analyze --format parquet --output "$LAKE" -q -j 2 "$f")
    rows=$("$SYNCSCOPE" frames --format ndjson -q -j 2 "$f" | tee "$BENCH_DIR/out.ndjson" | wc -l)
    "$SYNCSCOPE" analyze --format json -q "$f" > "$BENCH_DIR/out.json"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$(basename "$f")" "$(mbps "$bytes" "$s")" \
        "$(awk -v n="$rows" -v s="$s" 'BEGIN{ if (s <= 0) s = 0.01; printf "%.0f", n / s }')" \
        "$(du -sb "$LAKE" | cut -f1)" "$(stat -c %s "$BENCH_DIR/out.json")" \
        "$(stat -c %s "$BENCH_DIR/out.ndjson")"
done
