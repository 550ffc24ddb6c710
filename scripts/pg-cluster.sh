#!/usr/bin/env bash
# A private PostgreSQL cluster and a PgBouncer in front of it, for the tests (issue 12):
#   pg-cluster.sh start DIR   initdb (once) under DIR/data, start PostgreSQL and PgBouncer, wait for both
#   pg-cluster.sh env DIR     the TWOFOLD_PG_* lines the tests read (shell syntax: eval "$(... env DIR)")
#   pg-cluster.sh stop DIR    stop PgBouncer and PostgreSQL (pg_ctl stop -m fast); nothing running is fine
# Runs as root; the servers run as the `postgres` user. DIR is created 0700 and owned by postgres; its
# parent must be searchable by postgres. PostgreSQL listens on 127.0.0.1 and a socket in DIR only,
# each server on a port the kernel picked as free (a collision at start is retried with another).
# The role `twofold` gets a random password in DIR/password (0600): it never appears on a command line
# or in a log. The server and PgBouncer get only its SCRAM-SHA-256 verifier (computed here by python3,
# read by psql from a file with \set `cat`), and libpq clients read it from DIR/pgpass (PGPASSFILE).
# `start` run twice is fine (a running cluster is left running), and so is `stop`.
set -euo pipefail

usage() { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2
[ -n "$dir" ] || usage
case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
dir=${dir%/}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-cluster: no PostgreSQL under /usr/lib/postgresql (run scripts/install-deps.sh)" >&2
  exit 1
fi
command -v pgbouncer >/dev/null || { echo "pg-cluster: no pgbouncer (run scripts/install-deps.sh)" >&2; exit 1; }
data="$dir/data"

as_pg() { runuser -u postgres -- "$@"; }

# A port the kernel considers free on 127.0.0.1 (bind port 0, read it back, release it).
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_running() { [ -f "$data/postmaster.pid" ] && as_pg "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; }
bouncer_pid() {
  local pid
  [ -f "$dir/pgbouncer.pid" ] || return 1
  pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
pg_port() { sed -n 's/^port = \([0-9]*\)$/\1/p' "$data/twofold-port.conf"; }
bouncer_port() { sed -n 's/^listen_port = \([0-9]*\)$/\1/p' "$dir/pgbouncer.ini"; }

stop_all() {
  local mode=${1:-fast} pid
  if pid=$(bouncer_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    timeout 10 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pgbouncer.pid"
  if pg_running; then
    as_pg "$bin/pg_ctl" stop -D "$data" -m "$mode" -w -t 30 >/dev/null
  fi
}

# The SCRAM-SHA-256 verifier of the password in $1 (RFC 5802 / 7677, PostgreSQL's format).
scram_verifier() {
  python3 - "$1" <<'EOF'
import base64, hashlib, hmac, os, sys
password = open(sys.argv[1], "rb").read().strip()
salt, iterations = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
stored_key = hashlib.sha256(client_key).digest()
server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}")
EOF
}

# initdb, configuration, role, database, grants, PgBouncer's configuration: once per DIR.
initialize() {
  rm -rf "$data"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  as_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF

# scripts/pg-cluster.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
include = 'twofold-port.conf'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 16MB
# The test suites start every test at once: about 165 of them hold a connection in the first
# seconds (measured with pg_stat_activity), and a test's psql or a stopped daemon's pool comes on top.
max_connections = 300
password_encryption = 'scram-sha-256'
log_min_error_statement = panic
logging_collector = off
EOF
  # The password: 32 random bytes, URL-safe, straight into a 0600 file (never argv).
  as_pg bash -c 'umask 077; python3 -c "import secrets; print(secrets.token_urlsafe(32))" >"$1/password"' _ "$dir"
  as_pg bash -c 'umask 077; v=$(cat); printf "%s\n" "$v" >"$1/scram"' _ "$dir" < <(scram_verifier "$dir/password")
  grep -q '^SCRAM-SHA-256\$4096:' "$dir/scram" || { echo "pg-cluster: no SCRAM verifier" >&2; return 1; }
  as_pg bash -c 'umask 077; printf "127.0.0.1:*:*:twofold:%s\n" "$(cat "$1/password")" >"$1/pgpass"' _ "$dir"
  as_pg bash -c 'umask 077; printf "\"twofold\" \"%s\"\n" "$(cat "$1/scram")" >"$1/userlist.txt"' _ "$dir"
}

# Role, database and grants (the server must be running; psql as postgres over the socket in DIR).
create_role() {
  as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(pg_port)" -d postgres >/dev/null <<EOF
\\set verifier \`cat $dir/scram\`
CREATE ROLE twofold LOGIN CREATEDB;
ALTER ROLE twofold PASSWORD :'verifier';
ALTER ROLE twofold SET synchronous_commit = on;
-- Functions' privileges live in each database: template1 passes the grant on to every new one.
\\c template1
GRANT EXECUTE ON FUNCTION pg_control_checkpoint() TO twofold;
CREATE DATABASE twofold OWNER twofold;
\\c twofold
GRANT EXECUTE ON FUNCTION pg_control_checkpoint() TO twofold;
EOF
}

start_postgres() {
  local attempt port
  for attempt in 1 2 3 4 5; do
    # A restart keeps its port (PgBouncer and the tests know it) unless it has been taken meanwhile.
    port=$( ( [ "$attempt" -eq 1 ] && pg_port 2>/dev/null ) || true)
    [ -n "$port" ] || port=$(free_port)
    echo "port = $port" | as_pg tee "$data/twofold-port.conf" >/dev/null
    if as_pg "$bin/pg_ctl" start -D "$data" -l "$dir/postgresql.log" -w -t 60 >/dev/null 2>&1; then
      as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 && return 0
    fi
    if grep -q "could not bind\|Address already in use" "$dir/postgresql.log" 2>/dev/null; then
      echo "pg-cluster: port $port taken, trying another" >&2
      : | as_pg tee "$dir/postgresql.log" >/dev/null
      continue
    fi
    tail -n 20 "$dir/postgresql.log" >&2 || true
    return 1
  done
  echo "pg-cluster: no free port for PostgreSQL after 5 attempts" >&2
  return 1
}

write_bouncer_ini() {
  as_pg tee "$dir/pgbouncer.ini" >/dev/null <<EOF
[databases]
* = host=127.0.0.1 port=$(pg_port)

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
server_reset_query =
# Every scratch database the suites open through PgBouncer is a pool of its own; at PgBouncer's
# default (600 s) their idle server connections outlive their tests by minutes and, a hundred
# databases later, use up PostgreSQL's max_connections. Close them once idle for a few seconds.
server_idle_timeout = 5
# An outage (the tests stop PostgreSQL) must not hold clients for PgBouncer's defaults (120 s waiting
# for a server, 15 s refusing logins after a failed server login): resume within a second of a restart.
query_wait_timeout = 10
server_connect_timeout = 5
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
EOF
}

# Connects to 127.0.0.1:$1 until it accepts, for at most $2 seconds.
wait_listening() {
  python3 - "$1" "$2" <<'EOF'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
EOF
}

start_bouncer() {
  local attempt port pid
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    write_bouncer_ini "$port"
    : | as_pg tee "$dir/pgbouncer.log" >/dev/null
    # -d: it forks after reading its configuration and opening its listening socket.
    if as_pg pgbouncer -q -d "$dir/pgbouncer.ini" 2>>"$dir/pgbouncer.log" && wait_listening "$port" 10 \
      && pid=$(bouncer_pid); then
      return 0
    fi
    if grep -q "Address already in use" "$dir/pgbouncer.log"; then
      echo "pg-cluster: port $port taken, trying another for PgBouncer" >&2
      if pid=$(bouncer_pid); then kill -TERM "$pid"; timeout 10 tail --pid="$pid" -f /dev/null || true; fi
      continue
    fi
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    return 1
  done
  echo "pg-cluster: no free port for PgBouncer after 5 attempts" >&2
  return 1
}

print_env() {
  cat <<EOF
TWOFOLD_PG_URL=postgresql://twofold@127.0.0.1:$(pg_port)/twofold
TWOFOLD_PG_PASSWORD_FILE=$dir/password
TWOFOLD_PG_PASSFILE=$dir/pgpass
TWOFOLD_PGBOUNCER_URL=postgresql://twofold@127.0.0.1:$(bouncer_port)/twofold
TWOFOLD_PG_BIN=$bin
TWOFOLD_PG_DATA=$data
TWOFOLD_PG_SOCKET_DIR=$dir
EOF
}

case "$action" in
  start)
    id postgres >/dev/null 2>&1 || { echo "pg-cluster: no postgres user (install postgresql)" >&2; exit 1; }
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 0700 "$dir"
    as_pg test -x "$dir" || { echo "pg-cluster: postgres cannot reach $dir (a parent is not searchable)" >&2; exit 1; }
    trap 'status=$?; echo "pg-cluster: start failed, stopping what was started" >&2; stop_all immediate || true; exit $status' ERR
    set -E
    if [ ! -f "$dir/initialized" ]; then
      stop_all immediate
      initialize
      start_postgres
      create_role
      as_pg touch "$dir/initialized"
    elif ! pg_running; then
      start_postgres
    fi
    if ! bouncer_pid >/dev/null; then
      start_bouncer
    fi
    trap - ERR
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    [ -f "$data/twofold-port.conf" ] || exit 0
    stop_all fast
    ;;
  env)
    [ -f "$dir/initialized" ] || { echo "pg-cluster: no cluster in $dir (run: $0 start $dir)" >&2; exit 1; }
    print_env
    ;;
  *) usage ;;
esac
