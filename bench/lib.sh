# bench/lib.sh: shared by the bench scripts (sourced, not run).
# bench_setup and gen expect BENCH_DIR (absolute) and GENCAP to be set by the caller
# (SYNCSCOPE too for duplicate_requests); release_dir gives where cargo puts them.

say() { printf '%s\n' "$*" >&2; }

# release_dir: cargo's release output directory (CARGO_TARGET_DIR when set).
release_dir() { printf '%s/release\n' "${CARGO_TARGET_DIR:-$PWD/target}"; }

# raise_nofile WANT: raises the open-file limit to the hard limit (each
# connection is a descriptor) and warns when it stays below WANT.
raise_nofile() {
    ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$1" ]; then
        say "!! open-file limit $(ulimit -n) (hard $(ulimit -Hn)) is below $1: expect refused connections"
    fi
    say "== open-file limit: $(ulimit -n)"
}

# wait_listening PID LOG: waits (10 s at most) until the server PID has
# written 'listening on' to LOG; exits with its log if it died.
wait_listening() {
    for _ in $(seq 100); do
        grep -q 'listening on' "$2" 2> /dev/null && return 0
        kill -0 "$1" 2> /dev/null || { cat "$2" >&2; exit 1; }
        sleep 0.1
    done
}

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    # apt_install PKG...: true when installed. Refreshes the package lists once
    # if the first attempt fails (a fresh machine has none).
    is_root || return 1
    command -v apt-get > /dev/null || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null 2>&1 && return 0
    apt-get update -qq > /dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null 2>&1
}

# compare_tools: sets HAVE_TSHARK and HAVE_TCPFLOW (1 when the tool is there,
# installed with apt-get when missing and root), honouring BENCH_NO_COMPARE=1
# (neither) and BENCH_NO_TSHARK=1 (tcpflow only).
compare_tools() {
    HAVE_TSHARK=0
    HAVE_TCPFLOW=0
    [ "${BENCH_NO_COMPARE:-0}" = 1 ] && return 0
    if [ "${BENCH_NO_TSHARK:-0}" != 1 ] && have_tool tshark; then HAVE_TSHARK=1; fi
    if have_tool tcpflow; then HAVE_TCPFLOW=1; fi
}

# have_tool NAME: true when NAME is on the PATH, after installing it with
# apt-get when missing and root; says so when it stays missing.
have_tool() {
    command -v "$1" > /dev/null && return 0
    if is_root; then
        say "== installing $1 (apt-get)"
        apt_install "$1" && command -v "$1" > /dev/null && return 0
        say "== apt-get install $1 failed: $1 skipped"
    else
        say "== $1 missing and not root: $1 skipped"
    fi
    return 1
}

# bench_setup: prints the machine and its load, builds the binary and the
# generator, makes sure /usr/bin/time is there.
bench_setup() {
    say "== machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    say "== load before: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs on the machine lower the figures)"
    say "== cargo build --release --bin syncscope --example gencap"
    cargo build --release --quiet --bin syncscope --example gencap
    if [ ! -x /usr/bin/time ]; then
        say "== /usr/bin/time missing: installing package 'time'"
        apt_install time || { say "cannot install 'time'; giving up"; exit 1; }
    fi
}

# gen NAME SIZE [MIX]: generates $BENCH_DIR/NAME unless a file made with the
# same parameters is there; reads it into the page cache; prints its path.
# MIX `uniform` (the default): 64 long-link connections to port 8080 with
# uniform frames; `real`: gencap --mix real, 50 long links that look like real
# use (heartbeats, newsendmsg, pushes and large newsyncs, a SYN scan, HTTP).
# Seed 1 for both. The generator is deterministic, so a rebuilt gencap does
# not force a new file; BENCH_REGEN=1 does.
gen() {
    local file=$BENCH_DIR/$1 size=$2 mix=${3:-uniform}
    local conns=64 want
    if [ "$mix" = real ]; then
        conns=50
        want="bytes=$size mix=real conns=$conns port=8080 seed=1"
    else
        want="bytes=$size conns=$conns port=8080 seed=1"
    fi
    local have=""
    if [ -f "$file" ] && [ -f "$file.params" ]; then
        have=$(sed 's/ gencap=.*//' "$file.params")
    fi
    if [ "${BENCH_REGEN:-0}" != 1 ] && [ "$have" = "$want" ]; then
        say "== $file exists ($want): not regenerated"
    else
        say "== generating $file ($size, mix $mix)"
        rm -f "$file.params"
        "$GENCAP" --out "$file" --bytes "$size" --conns "$conns" --port 8080 --seed 1 --mix "$mix"
        printf '%s gencap=%s\n' "$want" "$(stat -c %s "$GENCAP")" > "$file.params"
    fi
    say "== reading $file into the page cache"
    cat "$file" > /dev/null
    printf '%s\n' "$file"
}

# duplicate_requests FILE: the sum of `duplicate_requests` over the
# connections of `syncscope analyze FILE --format json` (Mars-style echoed
# heartbeats count as a second request until pairing knows them).
duplicate_requests() {
    "$SYNCSCOPE" analyze "$1" --format json -q |
        grep -o '"duplicate_requests": *[0-9]*' | awk -F: '{ s += $2 } END { print s + 0 }'
}

# print_rows WIDTH TITLE ROW...: one file's table (the header line, then the
# rows as measure() formatted them) after a title line.
print_rows() {
    local width=$1 title=$2
    shift 2
    echo "$title"
    printf "%-${width}s %9s %9s %9s %6s\n" tool seconds "MB/s" "RSS MiB" "CPU"
    local r
    for r in "$@"; do echo "$r"; done
}

# run LABEL CMD...: runs CMD (output discarded) under /usr/bin/time and prints
# one row: label, wall seconds, peak RSS in MiB ("failed" when CMD fails).
# Needs TIME_FILE (a scratch file) set by the caller.
run() {
    local label=$1
    shift
    if /usr/bin/time -o "$TIME_FILE" -f '%e %M' "$@" > /dev/null 2>&1; then
        read -r e m < "$TIME_FILE"
        printf '%-40s %8.2f s %9.1f MiB\n' "$label" "$e" "$(awk -v m="$m" 'BEGIN { print m / 1024 }')"
    else
        printf '%-40s failed\n' "$label"
    fi
}

# best OUT CMD...: runs CMD BENCH_RUNS times, stdout to OUT, timed by
# /usr/bin/time into TIME_FILE; prints "secs rss_kib" (the best wall time,
# the largest peak RSS).
best() {
    local out=$1 b="" m=0
    shift
    for _ in $(seq "$BENCH_RUNS"); do
        /usr/bin/time -f '%e %M' -o "$TIME_FILE" "$@" > "$out"
        read -r e r < "$TIME_FILE"
        if [ -z "$b" ] || awk "BEGIN{exit !($e < $b)}"; then b=$e; fi
        [ "$r" -gt "$m" ] && m=$r
    done
    printf '%s %s\n' "$b" "$m"
}

# jobs_pair OUT FILE CMD...: runs `CMD -j 1 FILE` and `CMD -j 2 FILE` in turn,
# BENCH_RUNS rounds (interleaved, so that the machine's swings fall on both
# alike); prints the median wall seconds and the peak RSS (KiB) of each:
# "s1 rss1 s2 rss2".
jobs_pair() {
    local out=$1 file=$2 t1="" t2="" m1=0 m2=0 e r
    shift 2
    for _ in $(seq "$BENCH_RUNS"); do
        /usr/bin/time -f '%e %M' -o "$TIME_FILE" "$@" -j 1 "$file" > "$out"
        read -r e r < "$TIME_FILE"
        t1="$t1 $e"
        [ "$r" -gt "$m1" ] && m1=$r
        /usr/bin/time -f '%e %M' -o "$TIME_FILE" "$@" -j 2 "$file" > "$out"
        read -r e r < "$TIME_FILE"
        t2="$t2 $e"
        [ "$r" -gt "$m2" ] && m2=$r
    done
    printf '%s %s %s %s\n' "$(median $t1)" "$m1" "$(median $t2)" "$m2"
}

# median X...: the middle value (the lower middle of an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
