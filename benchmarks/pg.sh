#!/usr/bin/env bash
# twofoldd on PostgreSQL against twofoldd on SQLite, side by side in one run (issue 12's benchmark):
# one and three daemons on one local PostgreSQL (a private cluster started here), 10,000 and 1,000,000
# users, 1/8/64 clients: verifies/s, p50/p99, statements and commits per verify, CPU per verify of
# the daemons and of PostgreSQL.
#
#   benchmarks/pg.sh               everything (the 1,000,000-user stores take a few minutes to provision)
#   benchmarks/pg.sh --smoke       1,000 users, 8 clients, one and three daemons: checks the harness
#   options: --no-1m               skip the 1,000,000-user stores
#            --keep                keep the temporary directory (logs, the cluster)
#   environment: TWOFOLDD=/path/to/twofoldd  use this binary instead of building .build/release/twofoldd
#
# Output: a markdown table on stdout, also in benchmarks/out/results/pg-<time>.md; raw lines beside it.
# Needs root (the cluster runs as the postgres user; provisioning is an admin request) and Debian's
# postgresql and postgresql-contrib (pg_stat_statements counts the statements).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/benchmarks
OUT=$BENCH/out
BIN=$OUT/bin
export PATH="/opt/swift/usr/bin:$PATH"

SMOKE=0 DO_1M=1 KEEP=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1; DO_1M=0 ;;
    --no-1m) DO_1M=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "pg.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

. "$BENCH/lib.sh"
bench_workdir tfpg

make -s -C "$BENCH" >&2
build_daemon

# ------------------------------------------------------------------------------------------------
# The cluster: scripts/pg-cluster.sh's, with pg_stat_statements loaded to count statements.

pg_start statements
KEY=$WORK/shared.key
head -c 32 /dev/urandom > "$KEY" && chmod 600 "$KEY"

counters() { # database -> "commits statements sessions"
  local commits statements=0 sessions
  commits=$(su_psql -d "$1" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'")
  sessions=$(su_psql -d "$1" -c "SELECT sessions FROM pg_stat_database WHERE datname = '$1'")
  [ "$STATEMENTS" = 1 ] && statements=$(su_psql -d "$1" -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1'")
  echo "$commits $statements $sessions"
}

# run_pg TAG DB USERS CLIENTS OPS WARMUP SOCKET... : one loadgen run over the daemons, with the
# database's commits and statements and every process's CPU around it.
run_pg() {
  local tag=$1 db=$2 n=$3 c=$4 ops=$5 warm=$6; shift 6
  local sockets=() s
  for s in "$@"; do sockets+=(-s "$s"); done
  local before after dcpu0 dcpu1 pcpu0 pcpu1 line
  before=$(counters "$db")
  dcpu0=$(cpu_of "${DPIDS[@]}"); pcpu0=$(cpu_of $(postgres_pids))
  line=$("$BIN/loadgen" "${sockets[@]}" -S "$WORK/$db.lg.state" -N "$n" -m verify -c "$c" -n "$ops" -w "$warm" -d 120 --label "$tag") \
    || { log "loadgen failed: $tag $c clients"; FAILED=$(( FAILED + 1 )); [ "$SMOKE" = 0 ] || exit 1; }
  dcpu1=$(cpu_of "${DPIDS[@]}"); pcpu1=$(cpu_of $(postgres_pids))
  after=$(counters "$db")
  # Warmup dialogs are inside the counters too: divide by ops + warmup.
  local b=($before) a=($after)
  echo "PG store=$tag $line daemons=$# commits=$(( a[0] - b[0] )) statements=$(( a[1] - b[1] )) sessions=$(( a[2] - b[2] ))" \
       "daemon_cpu_s=$(awk -v a="$dcpu0" -v b="$dcpu1" -v t="$TICKS" 'BEGIN { print (b - a) / t }')" \
       "pg_cpu_s=$(awk -v a="$pcpu0" -v b="$pcpu1" -v t="$TICKS" 'BEGIN { print (b - a) / t }')" >> "$RAW"
}

FAILED=0
suite() {
  local n=$1 tag=$2 c ops warm
  local counts="1 8 64"
  [ "$SMOKE" = 1 ] && counts="8"
  # SQLite, the single-host reference.
  log "$tag: SQLite, provisioning $n users"
  start_daemon "$WORK/sqlite-$tag"
  provision "$WORK/sqlite-$tag/twofold.sock" 0 "$n" "sqlite-$tag"
  sync
  DPIDS=("$DPID")
  for c in $counts; do
    ops=$(( n / 4 < 20000 ? n / 4 : 20000 )); warm=$(( c * 10 ))
    [ "$SMOKE" = 1 ] && ops=300
    line=$("$BIN/loadgen" -s "$WORK/sqlite-$tag/twofold.sock" -p "$DPID" -S "$WORK/sqlite-$tag.lg.state" -N "$n" -m verify \
      -c "$c" -n "$ops" -w "$warm" -d 120 --label "sqlite-$tag") || { FAILED=$(( FAILED + 1 )); [ "$SMOKE" = 0 ] || exit 1; }
    echo "PG store=sqlite-$tag $line daemons=1 commits=- statements=- daemon_cpu_s=- pg_cpu_s=-" >> "$RAW"
  done
  stop_daemon "$DPID"

  # PostgreSQL: one database per size, one daemon, then three.
  local db=bench_${tag,,}   # unquoted identifiers are lower case in PostgreSQL
  su_psql -d postgres -c "CREATE DATABASE $db OWNER twofold" >/dev/null
  [ "$STATEMENTS" = 1 ] && su_psql -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  log "$tag: PostgreSQL, provisioning $n users"
  start_pg_daemon "$WORK/pg1-$tag" "$db"
  local first=$DPID
  provision "$WORK/pg1-$tag/twofold.sock" 0 "$n" "pg-$tag"
  su_psql -d "$db" -c "VACUUM ANALYZE" >/dev/null
  DPIDS=("$first")
  for c in $counts; do
    ops=$(( n / 4 < 20000 ? n / 4 : 20000 )); warm=$(( c * 10 ))
    [ "$SMOKE" = 1 ] && ops=300
    run_pg "pg1-$tag" "$db" "$n" "$c" "$ops" "$warm" "$WORK/pg1-$tag/twofold.sock"
  done
  start_pg_daemon "$WORK/pg2-$tag" "$db"; local second=$DPID
  start_pg_daemon "$WORK/pg3-$tag" "$db"; local third=$DPID
  DPIDS=("$first" "$second" "$third")
  for c in $counts; do
    ops=$(( n / 4 < 20000 ? n / 4 : 20000 )); warm=$(( c * 10 ))
    [ "$SMOKE" = 1 ] && ops=300
    run_pg "pg3-$tag" "$db" "$n" "$c" "$ops" "$warm" "$WORK/pg1-$tag/twofold.sock" "$WORK/pg2-$tag/twofold.sock" "$WORK/pg3-$tag/twofold.sock"
  done
  for p in "$first" "$second" "$third"; do stop_daemon "$p"; done
}

if [ "$SMOKE" = 1 ]; then
  suite 1000 1k
else
  suite 10000 10k
  [ "$DO_1M" = 1 ] && suite 1000000 1M
fi

# ------------------------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/results"
TABLE=$OUT/results/pg-$STAMP.md
cp "$RAW" "$OUT/results/pg-$STAMP.raw"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`benchmarks/pg.sh\` on $(nproc) CPUs; PostgreSQL $("$TWOFOLD_PG_BIN/postgres" --version | awk '{ print $3 }') on the same machine (fsync on, synchronous_commit on)."
  echo
  echo "| store | daemons | clients | verifies/s | vs SQLite | p50 ms | p99 ms | commits/verify | statements/verify | daemons' CPU µs/verify | PostgreSQL CPU µs/verify | unexpected |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  grep '^PG ' "$RAW" | while read -r l; do
    store=$(field "$l" store); c=$(field "$l" clients); size=${store#*-}
    base=$(grep "^PG store=sqlite-$size .* clients=$c " "$RAW" | head -1)
    total=$(( $(field "$l" ops) + $(field "$l" warmup) ))
    ratio=$(awk -v a="$(field "$l" rate)" -v b="$(field "$base" rate)" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }')
    per() { awk -v x="$1" -v n="$total" -v k="$2" 'BEGIN { if (x == "-" || x == "") print "-"; else printf "%.2f", k * x / n }'; }
    dcpu=$(per "$(field "$l" daemon_cpu_s)" 1000000)
    # SQLite: loadgen's own measure of the daemon (-p), over the measured dialogs.
    [ "$dcpu" = "-" ] && dcpu=$(awk -v x="$(field "$l" cpu_ms_per_op)" 'BEGIN { printf "%.2f", x * 1000 }')
    printf '| %s | %s | %s | %.0f | %s | %.2f | %.2f | %s | %s | %s | %s | %s |\n' "$store" "$(field "$l" daemons)" "$c" "$(field "$l" rate)" "$ratio" \
      "$(field "$l" p50_ms)" "$(field "$l" p99_ms)" "$(per "$(field "$l" commits)" 1)" "$(per "$(field "$l" statements)" 1)" \
      "$dcpu" "$(per "$(field "$l" pg_cpu_s)" 1000000)" "$(field "$l" unexpected)"
  done
  echo
  echo "Commits and statements per verify count every transaction and statement of the database during the run (warmup included, divided accordingly), so the audit records' share is in them. CPU of PostgreSQL: the postmaster and its live children (backends, WAL writer, checkpointer), utime+stime."
} > "$TABLE"
cat "$TABLE"
[ "$FAILED" = 0 ] || { log "$FAILED loadgen runs failed"; exit 1; }
