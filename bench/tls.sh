#!/usr/bin/env bash
# tls.sh: throughput of `syncscope analyze --keylog` on a large TLS capture
# against tshark with the same key log (`-o tls.keylog_file:`), both
# decrypting every record and dissecting the HTTP inside.
#
#     bash bench/tls.sh            (as root: dumpcap captures on lo)
#
# The capture: curl fetches a BODY_MB body FETCHES times per connection from
# a small HTTPS server (python3's http.server and ssl, HTTP/1.1, a
# self-signed ECDSA certificate) on loopback, one connection over TLS 1.2
# (ECDHE-ECDSA-AES128-GCM-SHA256) and one over TLS 1.3 (AES-256-GCM), with
# curl's SSLKEYLOGFILE; written to $BENCH_DIR/tls-big.pcapng and .keys and
# reused while BODY_MB and FETCHES are the same (BENCH_REGEN=1 makes it
# again).
#
# Environment: BENCH_DIR (default target/bench), BODY_MB (default 100),
# FETCHES (default 2), BENCH_RUNS (default 3: the best wall time is kept),
# PORT (default 8543).
#
# Prints a table: tool, best seconds, MB/s of capture file, peak RSS; and
# what each decrypted (records, application bytes, HTTP responses).
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-target/bench}
BODY_MB=${BODY_MB:-100}
FETCHES=${FETCHES:-2}
BENCH_RUNS=${BENCH_RUNS:-3}
PORT=${PORT:-8543}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

# shellcheck source=bench/lib.sh
. bench/lib.sh

SYNCSCOPE=$(release_dir)/syncscope
CAP=$BENCH_DIR/tls-big.pcapng
KEYS=$BENCH_DIR/tls-big.keys
TMP=$(mktemp -d)
TIME_FILE=$TMP/time
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

say "== machine: $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg) (other jobs lower the figures)"
say "== cargo build --release --bin syncscope"
cargo build --release --quiet --bin syncscope
[ -x /usr/bin/time ] || apt_install time || { say "cannot install 'time'"; exit 1; }
have_tool tshark || { say "tshark (dumpcap) is needed"; exit 1; }

want="body_mb=$BODY_MB fetches=$FETCHES"
if [ "${BENCH_REGEN:-0}" != 1 ] && [ -f "$CAP" ] && [ -f "$KEYS" ] &&
    [ "$(cat "$CAP.params" 2> /dev/null)" = "$want" ]; then
    say "== $CAP exists ($want): not made again"
else
    is_root || { say "making the capture needs root (dumpcap on lo)"; exit 1; }
    say "== recording $CAP ($want)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -addext subjectAltName=DNS:localhost -subj /CN=localhost \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2> /dev/null
    head -c "$((BODY_MB << 20))" /dev/urandom > "$TMP/body"
    cat > "$TMP/server.py" << 'PY'
import http.server, ssl, sys
port, cert, key, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with open(body, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
PY
    python3 "$TMP/server.py" "$PORT" "$TMP/cert.pem" "$TMP/key.pem" "$TMP/body" > "$TMP/server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q ready "$TMP/server.log" && break; sleep 0.1; done
    rm -f "$CAP" "$KEYS" "$CAP.params"
    dumpcap -q -B 512 -i lo -f "tcp port $PORT" -w "$CAP" 2> /dev/null &
    dpid=$!
    pids+=($dpid)
    sleep 1
    url=https://localhost:$PORT/big
    urls=()
    for _ in $(seq "$FETCHES"); do urls+=(-o /dev/null "$url"); done
    for v in "--tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256" "--tlsv1.3"; do
        # shellcheck disable=SC2086
        SSLKEYLOGFILE=$KEYS curl -sS --limit-rate 40M --http1.1 --cacert "$TMP/cert.pem" $v "${urls[@]}"
    done
    sleep 1
    kill -INT "$dpid"
    wait "$dpid" || true
    printf '%s\n' "$want" > "$CAP.params"
fi
cat "$CAP" > /dev/null
bytes=$(stat -c %s "$CAP")
say "== $CAP: $bytes bytes, $(wc -l < "$KEYS") key-log lines"

row() { awk -v t="$1" -v s="$2" -v r="$3" -v b="$bytes" \
    'BEGIN{ if (s <= 0) s = 0.01; printf "| %s | %.2f | %.0f | %.0f |\n", t, s, b / 1e6 / s, r / 1024 }'; }

read -r s1 r1 < <(best "$TMP/out" "$SYNCSCOPE" analyze -q --keylog "$KEYS" --format json "$CAP")
ours=$(python3 - "$TMP/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["tls"]
http = sum(c["http_exchanges"] for c in r["connections"])
print("records %d, decrypted %d, failed %d, application bytes %d, http exchanges %d"
      % (t["records"], t["decrypted"], t["failed"], t["decrypted_bytes"], http))
PY
)
read -r s2 r2 < <(best "$TMP/out" tshark -o "tls.keylog_file:$KEYS" -d "tcp.port==$PORT,tls" -r "$CAP" -Y http.response -T fields -e http.response.code)
theirs="http responses $(wc -l < "$TMP/out")"
printf '| tool | best s | MB/s | RSS MiB |\n|---|---:|---:|---:|\n'
row "syncscope analyze --keylog" "$s1" "$r1"
row "tshark -o tls.keylog_file" "$s2" "$r2"
echo "syncscope: $ours"
echo "tshark: $theirs"
