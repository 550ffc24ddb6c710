#!/usr/bin/env bash
# A simulated fleet against a single host, side by side in one run (issue 13's benchmark): relays →
# servers → PostgreSQL, 10,000 and 1,000,000 users, 1/8/64 clients: verifies/s, p50/p99, CPU per
# verify of the relays, the servers and PostgreSQL, with single-host SQLite and one server on
# PostgreSQL without relays beside it; then what one relay-to-server TLS handshake costs, and the
# relays' and servers' RSS.
#
#   benchmarks/fleet.sh            everything: 50 relays, 2 servers (the 1,000,000-user stores take minutes)
#   benchmarks/fleet.sh --smoke    2 relays, 1 server, 1,000 users, 8 clients: checks the harness
#   options: --no-1m               skip the 1,000,000-user stores
#            --relays N            relays in the simulated fleet (default 50, at most 256)
#            --perf                one more fleet run at 64 clients of the first store, under perf
#                                  (cpu-clock, call graphs) on the relays and on the servers, summarized in
#                                  benchmarks/out/results/fleet-<time>-perf.txt
#            --keep                keep the temporary directory (logs, the cluster, the CA)
#   environment: TWOFOLDD=/path/to/twofoldd  use this binary instead of building .build/release/twofoldd
#
# Output: markdown tables on stdout, also in benchmarks/out/results/fleet-<time>.md; raw lines beside
# it. Needs root (the cluster runs as the postgres user; provisioning and host registration are admin
# requests), Debian's postgresql, pgbouncer (scripts/pg-cluster.sh starts one) and openssl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/benchmarks
OUT=$BENCH/out
BIN=$OUT/bin
export PATH="/opt/swift/usr/bin:$PATH"

SMOKE=0 DO_1M=1 KEEP=0 NRELAYS=50 NSERVERS=2 PERF=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; DO_1M=0; NRELAYS=2; NSERVERS=1 ;;
    --no-1m) DO_1M=0 ;;
    --relays) NRELAYS=$2; shift ;;
    --keep) KEEP=1 ;;
    --perf) PERF=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "fleet.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $NRELAYS =~ ^[0-9]+$ ]] && [ "$NRELAYS" -ge 1 ] && [ "$NRELAYS" -le 256 ] || { echo "fleet.sh: --relays takes 1 to 256 (loadgen's sockets)" >&2; exit 2; }

. "$BENCH/lib.sh"
bench_workdir tffleet

MACHINE_START=$(machine_line)
if [ -n "${TWOFOLDD:-}" ]; then BUILT="TWOFOLDD=$TWOFOLDD"; else
  BUILT="release build of commit $(git -C "$ROOT" rev-parse --short HEAD), $(git -C "$ROOT" status --porcelain -- Sources | wc -l) uncommitted files under Sources/"
fi
make -s -C "$BENCH" >&2
build_daemon
pg_start
KEY=$WORK/shared.key
head -c 32 /dev/urandom > "$KEY" && chmod 600 "$KEY"

# ------------------------------------------------------------------------------------------------
# The fleet's certificates (scripts/fleet-ca.sh, as an admin makes them): each server's certificate
# names 127.0.0.1 in its IP SAN, since the relays name the servers by address (no resolver in the path).

CA=$WORK/ca
log "fleet CA: $NSERVERS server and $NRELAYS host certificates"
bash "$ROOT/scripts/fleet-ca.sh" init "$CA" >/dev/null
PORTS=() SERVER_ADDRS=()
for i in $(seq 1 "$NSERVERS"); do
  bash "$ROOT/scripts/fleet-ca.sh" server "$CA" "tier-$i" 127.0.0.1 >/dev/null
  PORTS+=("$(free_port)")
  SERVER_ADDRS+=("127.0.0.1:${PORTS[-1]}")
done
RELAY_NAMES=()
for i in $(seq 1 "$NRELAYS"); do
  RELAY_NAMES+=("$(printf 'relay-%02d' "$i")")
  bash "$ROOT/scripts/fleet-ca.sh" host "$CA" "${RELAY_NAMES[-1]}" >/dev/null
done

# start_server I TAG DB -> DPID: server I (from 1) of the tier for store TAG, on the same port for
# every store, so the relays need no restart between the stores.
start_server() {
  local i=$1
  start_pg_daemon "$WORK/server$i-$2" "$3" "role = server
listen = ${SERVER_ADDRS[i-1]}
tls_certificate = $CA/servers/tier-$i.pem
tls_key = $CA/servers/tier-$i.key
tls_client_ca = $CA/host-ca.pem"
}

# The relays, started once: no store, no key; relay k lists the servers starting with server
# k mod NSERVERS, since a relay keeps to the first server that answers (TierConnector): the
# fleet's load is spread over the tier only by the relays' configurations, here as in a real fleet.
start_relays() {
  local k name order j
  RELAY_PIDS=() RELAY_SOCKETS=()
  for k in $(seq 0 $(( NRELAYS - 1 ))); do
    name=${RELAY_NAMES[k]} order=()
    for j in $(seq 0 $(( NSERVERS - 1 ))); do order+=("${SERVER_ADDRS[(k + j) % NSERVERS]}"); done
    start_daemon "$WORK/$name" "role = relay
servers = $(IFS=,; echo "${order[*]}" | sed 's/,/, /g')
tls_certificate = $CA/hosts/$name.pem
tls_key = $CA/hosts/$name.key
tls_server_ca = $CA/server-ca.pem"
    RELAY_PIDS+=("$DPID")
    RELAY_SOCKETS+=("$WORK/$name/twofold.sock")
  done
}

# register_hosts SOCKET: every relay's certificate into the registry (hostAdd, what
# `twofoldctl host add NAME --certificate FILE` sends), through a server's own socket.
register_hosts() {
  local name pem
  for name in "${RELAY_NAMES[@]}"; do
    pem=$(< "$CA/hosts/$name.pem")
    "$BIN/tfprov" request -s "$1" "{\"hostAdd\":{\"name\":\"$name\",\"certificatePEM\":\"${pem//$'\n'/\\n}\"}}" > /dev/null \
      || { log "host add $name failed"; return 1; }
  done
}

# run TAG PATH USERS CLIENTS STATE -P... -- SOCKET... : one loadgen run, CPU of each -P group over
# its measured part.
run() {
  local tag=$1 path=$2 n=$3 c=$4 state=$5; shift 5
  local groups=() sockets=() ops warm line
  while [ "$1" != -- ]; do groups+=("$1"); shift; done; shift
  for s in "$@"; do sockets+=(-s "$s"); done
  ops=$(( n / 4 < 20000 ? n / 4 : 20000 )); warm=$(( c * 10 ))
  [ "$c" = 1 ] && ops=$(( ops < 1000 ? ops : 1000 ))   # a lone client's rate is steady early, and slow
  [ "$SMOKE" = 1 ] && ops=300
  # The write transactions around the run (warmup included): how well the servers' group commit batches.
  local k0=0 commits=-
  [ "$path" = sqlite ] || k0=$(next_xid)
  local perfs=()
  if [ "$path" = profiled ]; then
    perf record -e cpu-clock -F 2000 -g -p "$(csv "${RELAY_PIDS[@]}")" -o "$WORK/perf-relays.data" 2> "$WORK/perf-relays.log" & perfs+=($!)
    perf record -e cpu-clock -F 2000 -g -p "$(csv "${SERVER_PIDS[@]}")" -o "$WORK/perf-servers.data" 2> "$WORK/perf-servers.log" & perfs+=($!)
  fi
  line=$("$BIN/loadgen" "${sockets[@]}" "${groups[@]}" -S "$state" -N "$n" -m verify -c "$c" -n "$ops" -w "$warm" -d 120 \
    --label "$path-$tag") || { log "loadgen failed: $path $tag $c clients"; FAILED=$(( FAILED + 1 )); [ "$SMOKE" = 0 ] || exit 1; }
  if [ ${#perfs[@]} -gt 0 ]; then kill -INT "${perfs[@]}"; wait "${perfs[@]}" 2>/dev/null || true; fi
  [ "$path" = sqlite ] || commits=$(( $(next_xid) - k0 ))
  line="$line write_xacts=$commits"
  # The profiled run is not a row: perf's sampling costs CPU of its own.
  [ -n "$line" ] && echo "$([ "$path" = profiled ] && echo PROFILED || echo FLEET) store=$tag path=$path $line" >> "$RAW"
  return 0
}

# rss LABEL PID... -> a RSS line: the largest VmRSS now (with its anonymous and file-backed parts)
# and the largest VmHWM (peak since start) among them.
rss() {
  local label=$1 pid r h mr=0 mh=0 anon=0 file=0; shift
  for pid in "$@"; do
    r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"); h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    if [ "$r" -gt "$mr" ]; then
      mr=$r
      anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status"); file=$(awk '/^RssFile:/ { print $2 }' "/proc/$pid/status")
    fi
    [ "$h" -gt "$mh" ] && mh=$h
  done
  echo "RSS what=$label count=$# rss_kib=$mr hwm_kib=$mh anon_kib=$anon file_kib=$file" >> "$RAW"
}

# idle TAG SERVER_PID... : what the relays, the servers and PostgreSQL burn with no load, over 5 s
# (it is inside every per-verify figure, most at 1 client).
idle() {
  local tag=$1 r0 s0 p0; shift
  r0=$(cpu_of "${RELAY_PIDS[@]}"); s0=$(cpu_of "$@"); p0=$(cpu_of $(postgres_pids))
  sleep 5
  echo "IDLE store=$tag secs=5 relays_ticks=$(( $(cpu_of "${RELAY_PIDS[@]}") - r0 )) servers_ticks=$(( $(cpu_of "$@") - s0 ))" \
    "postgres_ticks=$(( $(cpu_of $(postgres_pids)) - p0 ))" >> "$RAW"
}

# The next transaction id the cluster will assign: every write transaction takes one, read-only ones
# none, and reading it takes none. Exact at once, unlike pg_stat_database's counters, which backends
# flush on their own schedule (a run of a second or two misses part of its commits).
next_xid() { su_psql -d "$DB" -c "SELECT pg_snapshot_xmax(pg_current_snapshot())"; }
pg_group() { echo "-P" "postgres:+$POSTMASTER"; }
csv() { local IFS=,; echo "$*"; }

FAILED=0
COUNTS="1 8 64"
[ "$SMOKE" = 1 ] && COUNTS="8"
suite() {
  local n=$1 tag=$2 c i
  # Single-host SQLite: the reference.
  log "$tag: SQLite, provisioning $n users"
  start_daemon "$WORK/sqlite-$tag"
  local single=$DPID
  provision_bulk "$WORK/sqlite-$tag/twofold.sock" 0 "$n" "sqlite-$tag"
  sync

  # The tier on one database per store: provisioned and the hosts registered through server 1.
  local db=bench_${tag,,}   # unquoted identifiers are lower case in PostgreSQL
  DB=$db
  su_psql -d postgres -c "CREATE DATABASE $db OWNER twofold" >/dev/null
  local servers=()
  for i in $(seq 1 "$NSERVERS"); do start_server "$i" "$tag" "$db"; servers+=("$DPID"); done
  SERVER_PIDS=("${servers[@]}")
  log "$tag: PostgreSQL, provisioning $n users through server 1"
  provision_bulk "$WORK/server1-$tag/twofold.sock" 0 "$n" "pg-$tag"
  su_psql -d "$db" -c "VACUUM ANALYZE" >/dev/null
  register_hosts "$WORK/server1-$tag/twofold.sock"
  [ -n "${RELAY_PIDS:-}" ] || start_relays
  sync
  idle "$tag" "${servers[@]}"

  # The three paths one after the other at each client count, so that each ratio compares runs
  # close in time (the machine is shared: its other work moves whole minutes).
  for c in $COUNTS; do
    # Single-host SQLite, the reference.
    run "$tag" sqlite "$n" "$c" "$WORK/sqlite-$tag.lg.state" -P "server:$single" $(pg_group) -- "$WORK/sqlite-$tag/twofold.sock"
    # One server on PostgreSQL, its own Unix socket: pg.sh's path, no relay.
    run "$tag" direct "$n" "$c" "$WORK/$db.lg.state" -P "server:${servers[0]}" $(pg_group) -- "$WORK/server1-$tag/twofold.sock"
    # The fleet: the clients spread over every relay's socket (user i on relay i mod NRELAYS).
    # Each server on its own too (server_1, ...): whether the relays' orders spread the load.
    local each=()
    for i in $(seq 1 "$NSERVERS"); do each+=(-P "server_$i:${servers[i-1]}"); done
    run "$tag" fleet "$n" "$c" "$WORK/$db.lg.state" -P "relays:$(csv "${RELAY_PIDS[@]}")" -P "server:$(csv "${servers[@]}")" "${each[@]}" \
      $(pg_group) -- "${RELAY_SOCKETS[@]}"
  done
  # --perf: one more fleet run at the most clients, under perf (not a row of the table).
  if [ "$PERF" = 1 ] && [ "$tag" = "$FIRST_TAG" ]; then
    run "$tag" profiled "$n" "${COUNTS##* }" "$WORK/$db.lg.state" -P "relays:$(csv "${RELAY_PIDS[@]}")" -P "server:$(csv "${servers[@]}")" \
      $(pg_group) -- "${RELAY_SOCKETS[@]}"
  fi
  stop_daemon "$single"

  # One handshake, alone (1 client) and with 8 at once: relay-01's certificate against server 1.
  if [ "$tag" = "${FIRST_TAG}" ]; then
    local hs
    for c in 1 8; do
      [ "$SMOKE" = 1 ] && [ "$c" = 8 ] && continue
      hs=$(( SMOKE ? 200 : 3000 ))
      line=$("$BIN/tlsloop" -a "${SERVER_ADDRS[0]}" --cert "$CA/hosts/${RELAY_NAMES[0]}.pem" --key "$CA/hosts/${RELAY_NAMES[0]}.key" \
        --ca "$CA/server-ca.pem" -c "$c" -n "$hs" -d 60 -p "${servers[0]}" --label "handshake") \
        || { log "tlsloop failed"; FAILED=$(( FAILED + 1 )); [ "$SMOKE" = 0 ] || exit 1; }
      echo "TLS $line" >> "$RAW"
    done
  fi

  rss "relay ($tag)" "${RELAY_PIDS[@]}"
  # Each server apart: server 1 also took the import of every user.
  for i in $(seq 1 "$NSERVERS"); do rss "server $i ($tag)" "${servers[i-1]}"; done
  for i in "${servers[@]}"; do stop_daemon "$i"; done
}

RELAY_PIDS=
if [ "$SMOKE" = 1 ]; then
  FIRST_TAG=1k
  suite 1000 1k
else
  FIRST_TAG=10k
  suite 10000 10k
  [ "$DO_1M" = 1 ] && suite 1000000 1M
fi
# What the relays and servers said that was not routine: warnings and errors in their logs.
LOG_PROBLEMS=$(cat "$WORK"/relay-*/daemon.log "$WORK"/server*/daemon.log | grep -ciE 'warning|error' || true)

# ------------------------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/results"
TABLE=$OUT/results/fleet-$STAMP.md
cp "$RAW" "$OUT/results/fleet-$STAMP.raw"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`benchmarks/fleet.sh$([ "$SMOKE" = 1 ] && echo ' --smoke')\`; $("$DAEMON" --version 2>/dev/null | head -1 || echo 'twofoldd ?') ($BUILT); PostgreSQL $("$TWOFOLD_PG_BIN/postgres" --version | awk '{ print $3 }') on the same machine (fsync on, synchronous_commit on); $NRELAYS relays, $NSERVERS server(s), loadgen, PostgreSQL and the single-host daemon all on one machine."
  echo
  echo "**Machine:** $MACHINE_START at the start; $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo
  echo "| users | path | clients | verifies/s | vs SQLite | p50 ms | p99 ms | relays CPU ms/verify | servers CPU ms/verify | PostgreSQL CPU ms/verify | loadgen CPU ms/verify | all CPU ms/verify | write transactions/verify | unexpected |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  grep '^FLEET ' "$RAW" | while read -r l; do
    tag=$(field "$l" store); path=$(field "$l" path); c=$(field "$l" clients); ops=$(field "$l" ops)
    base=$(grep "^FLEET store=$tag path=sqlite .* clients=$c " "$RAW" | head -1)
    ratio=$(awk -v a="$(field "$l" rate)" -v b="$(field "$base" rate)" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }')
    per() { awk -v x="$1" -v n="$ops" 'BEGIN { if (x == "") print "-"; else printf "%.3f", 1000 * x / n }'; }
    relays=$(per "$(field "$l" cpu_s_relays)"); server=$(per "$(field "$l" cpu_s_server)"); pg=$(per "$(field "$l" cpu_s_postgres)")
    lgc=$(awk -v x="$(field "$l" lg_cpu_ms_per_op)" 'BEGIN { printf "%.3f", x }')
    all=$(awk -v a="$relays" -v b="$server" -v c="$pg" -v d="$lgc" 'BEGIN { printf "%.3f", (a == "-" ? 0 : a) + b + c + d }')
    cpv=$(awk -v k="$(field "$l" write_xacts)" -v n="$(( ops + $(field "$l" warmup) ))" 'BEGIN { if (k == "-") print "-"; else printf "%.2f", k / n }')
    printf '| %s | %s | %s | %.0f | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s |\n' "$tag" "$path" "$c" "$(field "$l" rate)" "$ratio" \
      "$(field "$l" p50_ms)" "$(field "$l" p99_ms)" "$relays" "$server" "$pg" "$lgc" "$all" "$cpv" "$(field "$l" unexpected)"
  done
  echo
  echo "CPU: utime+stime from /proc over each run's measured part (warmup and any wait for a fresh 30 s step excluded), divided by its verifies; relays and servers summed over all of them; PostgreSQL is the postmaster with its children (backends, WAL writer, checkpointer). \"all\" adds loadgen's own. Write transactions per verify: transaction ids the cluster assigned during the run (every transaction that wrote, the audit's included; warmup included and divided accordingly): fewer means larger group commits."
  shares=$(grep '^FLEET .* path=fleet ' "$RAW" | while read -r l; do
    printf '%s/%s clients: %s; ' "$(field "$l" store)" "$(field "$l" clients)" \
      "$(for i in $(seq 1 "$NSERVERS"); do printf '%.0f%% ' "$(awk -v a="$(field "$l" "cpu_s_server_$i")" -v t="$(field "$l" cpu_s_server)" 'BEGIN { print (t > 0 ? 100 * a / t : 0) }')"; done)"
  done)
  echo
  echo "Each server's share of the servers' CPU in the fleet runs (server 1, 2, ...): ${shares%; }."
  echo
  echo "One TLS handshake (\`tlsloop\`: TCP connect, TLS 1.3 with relay-01's certificate and ALPN twofold-relay/1, close_notify, the server's close; no dialog), against server 1:"
  echo
  echo "| clients | handshakes/s | p50 ms | p99 ms | server CPU ms/handshake | client (OpenSSL) CPU ms/handshake | errors |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  grep '^TLS ' "$RAW" | while read -r l; do
    n=$(field "$l" handshakes)
    printf '| %s | %.0f | %.2f | %.2f | %.3f | %.3f | %s |\n' "$(field "$l" clients)" "$(field "$l" rate)" "$(field "$l" p50_ms)" "$(field "$l" p99_ms)" \
      "$(awk -v x="$(field "$l" server_cpu_s)" -v n="$n" 'BEGIN { printf "%.3f", n ? 1000 * x / n : 0 }')" \
      "$(awk -v x="$(field "$l" client_cpu_s)" -v n="$n" 'BEGIN { printf "%.3f", n ? 1000 * x / n : 0 }')" "$(field "$l" errors)"
  done
  echo
  mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
  echo "| process | count | largest RSS after the runs, MiB | of which anonymous / file-backed, MiB | largest peak RSS (VmHWM since start), MiB | target |"
  echo "|---|---:|---:|---:|---:|---|"
  grep '^RSS ' "$RAW" | while read -r l; do
    what=$(sed -n 's/^RSS what=\(.*\) count=.*/\1/p' <<< "$l")
    target=$([[ $what == relay* ]] && echo "< 30 MiB" || echo "< 60 MiB")
    printf '| %s | %s | %s | %s / %s | %s | %s |\n' "$what" "$(field "$l" count)" "$(mib "$(field "$l" rss_kib)")" \
      "$(mib "$(field "$l" anon_kib)")" "$(mib "$(field "$l" file_kib)")" "$(mib "$(field "$l" hwm_kib)")" "$target"
  done
  echo
  grep '^IDLE ' "$RAW" | while read -r l; do
    pct() { awk -v t="$1" -v k="$TICKS" -v s="$(field "$l" secs)" 'BEGIN { printf "%.1f", 100 * t / k / s }'; }
    echo "Idle ($(field "$l" store), no load, $(field "$l" secs) s): the $NRELAYS relays together $(pct "$(field "$l" relays_ticks)") % of a core, the servers $(pct "$(field "$l" servers_ticks)") %, PostgreSQL $(pct "$(field "$l" postgres_ticks)") %."
  done
  echo
  echo "Lines with a warning or an error in the relays' and servers' logs: $LOG_PROBLEMS."
} > "$TABLE"
cat "$TABLE"

# The profiles: inclusive shares by component (the largest matching frame; components overlap), self
# time by shared object and by symbol.
if [ "$PERF" = 1 ] && [ -s "$WORK/perf-relays.data" ]; then
  PROFILE=$OUT/results/fleet-$STAMP-perf.txt
  for who in relays servers; do
    echo "# perf record -e cpu-clock -F 2000 -g on the $who, fleet path, ${COUNTS##* } clients, $FIRST_TAG users (a run of its own, after the table's)"
    echo "# run: $(grep '^PROFILED ' "$RAW" | head -1)"
    echo "## inclusive share of the $who' CPU samples by component"
    perf_components "$WORK/perf-$who.data" <<'PATTERNS'
NIO event loop threads|SelectableEventLoop.run()
NIO thread pool (the relay's NSS lookups)|NIOThreadPool
Swift concurrency jobs|swift_job_run
kernel: all syscalls|entry_SYSCALL_64_after_hwframe
kernel: scheduler|__schedule
TLS handshake (BoringSSL SSL_do_handshake)|SSL_do_handshake
TLS records (BoringSSL SSL_read)|CNIOBoringSSL_SSL_read
TLS records (BoringSSL SSL_write)|CNIOBoringSSL_SSL_write
certificate chain verification|X509_verify_cert
ECDSA sign|ECDSA_sign
ECDSA verify|ECDSA_verify
X25519|X25519
certificate parsing (X509 d2i)|d2i_X509
NIOSSLHandler|NIOSSLHandler
TCP connect to a server (ClientBootstrap)|ClientBootstrap
accept + child channel setup|ServerSocketChannel.readFromSocket()
NSS lookups (Accounts)|Accounts.
relay handler|RelayHandler
tier gate (registry, admission)|TierGate
login dialog (LoginDialogRunner.run)|LoginDialogRunner.run
Authenticator.check (code check + commit)|Authenticator.check
PostgreSQL client (PostgresNIO)|PostgresNIO
logging (JournalLogHandler)|JournalLogHandler.log
PATTERNS
    # perf's frame-pointer call chains break inside BoringSSL's assembly, so the inclusive TLS shares
    # above are lower bounds; the self time of every BoringSSL symbol together is the crypto's share.
    perf report -i "$WORK/perf-$who.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep '%' > "$WORK/self-$who.txt"
    awk '$2 == "twofoldd" && /CNIOBoringSSL|ecp_nistz256|mlkem|keccak|fiat_|x25519|bssl::|sha256_block|beeu_|bn_|p256/ { s += $1 + 0 }
      END { printf "  %6.2f%%  self time in BoringSSL (TLS crypto: P-256, X25519, ML-KEM, SHA-256, bignums)\n", s }' "$WORK/self-$who.txt"
    echo
    echo "## self, by thread name"
    perf report -i "$WORK/perf-$who.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep '%' | sed 's/  */ /g' | sed -n 1,8p
    echo
    echo "## self, by shared object"
    perf report -i "$WORK/perf-$who.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | sed 's/  */ /g' | sed -n 1,12p
    echo
    echo "## self, by symbol"
    perf report -i "$WORK/perf-$who.data" --no-children --sort dso,symbol --stdio --percent-limit 0.5 -g none 2>/dev/null \
      | grep '%' | swift-demangle --simplified | sed 's/  */ /g' | cut -c1-180 | sed -n 1,40p
    echo
  done > "$PROFILE"
  log "profiles: $PROFILE"
fi
[ "$FAILED" = 0 ] || { log "$FAILED runs failed"; exit 1; }
