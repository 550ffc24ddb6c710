#!/usr/bin/env bash
# The Debian package's whole life on this machine, for real, checked after every step:
#   build it (make build pam, make deb) and lint it (lintian: errors and warnings fail);
#   read the maintainer scripts dh_installsystemd generated (enable and start the socket, try-restart
#   the service after an upgrade, stop the socket on remove);
#   install it with apt-get and check every file, the conffile, the units (systemd-analyze verify),
#   that /etc/pam.d/common-* did not change and that the socket was enabled;
#   start the installed twofoldd by hand, enroll a user with the installed twofoldctl and log in
#   through the installed module with real libpam (pamtester): a right code passes, a wrong one fails;
#   enable the pam-auth-update profile in a private mount namespace (the machine's PAM stays as it
#   is) and log in through common-auth: password, then code; a wrong password never reaches the code;
#   upgrade it over itself: an admin's edit of the conffile, the key and the database survive, and the
#   user still logs in; remove it (config and state stay, dpkg says rc); purge it (nothing is left).
# Run as root: make deb-test (`make check` runs it as its 'deb' stage).
#
# There is no systemd as PID 1 on CI: the maintainer scripts skip their systemctl calls
# (deb-systemd-invoke needs a running systemd), so twofoldd is started by hand the way the unit
# would: the installed binary and config, the package's state directory /var/lib/twofold in the
# layout DynamicUser= gives it (a link to private/twofold), readiness from READY=1 on $NOTIFY_SOCKET.
#
# It refuses to run where Twofold already is (the package, /etc/twofold, /var/lib/twofold, ...),
# since it purges all of that. It removes what it created, on failure too; the accounts of
# scripts/test-setup.sh, which the test suite shares, stay.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

SERVICE=twofold-deb-test                      # the PAM service this test writes
PAMFILE=/etc/pam.d/$SERVICE
MARK="# written by scripts/deb-test.sh, which deletes it when it ends"
USER1=twofold-test                            # enrolled; logs in through $SERVICE
USER2=twofold-test2                           # enrolled; logs in through common-auth (namespace)
UNENROLLED=twofold-member                     # not enrolled; logs in through common-auth
# Throwaway test secrets (base32), given to twofoldctl and oathtool on stdin, never in argv.
SECRET1=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
SECRET2=KRUGKIDROVUWG2ZAMJZG653OEBTG66BA
STATE_PATHS=(/etc/twofold /var/lib/twofold /var/lib/private/twofold /run/twofold)
# The package's conffiles: the daemon's, the delivery service's and its two commands'.
CONFFILES="/etc/twofold/twofoldd.conf /etc/twofold/deliver.conf /etc/twofold/send-email.conf /etc/twofold/send-sms.conf"
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600)
PROMPT="Verification code"                    # the daemon's code prompt

started=$(date +%s)
step() { printf '\n== deb-test: %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '\ndeb-test: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run it as root: it installs, upgrades, removes and purges the package (sudo make deb-test)"

# Two checkouts on one machine (two CI runs) would install the one package at once: take turns.
# (The lock file stays in /run/lock, a tmpfs, as lock files do.)
exec 9>/run/lock/twofold-deb-test.lock
flock -w 3600 9 || fail "another deb-test has held /run/lock/twofold-deb-test.lock for an hour"

MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
MODULE=/lib/$MA/security/pam_twofold.so
TMP=$(mktemp -d /tmp/twofold-deb-test.XXXXXX)
OWNED=0          # set once the machine is known to hold no Twofold of its own: then cleanup may purge
PRIVATE_CREATED=0
DAEMON_PID=""

package_status() {  # installed, config-files, not-installed, ... ('' when dpkg never heard of it)
  dpkg-query -W -f='${db:Status-Status}' twofold 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT
  set +e
  if [ -n "$DAEMON_PID" ]; then
    term_and_wait "$DAEMON_PID" 30 || kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  if [ "$status" -ne 0 ] && [ -s "$TMP/daemon.log" ]; then
    echo "--- twofoldd's log, last 30 lines ($TMP/daemon.log):" >&2
    tail -n 30 "$TMP/daemon.log" >&2
  fi
  if [ -f "$PAMFILE" ] && [ "$(head -n 1 "$PAMFILE")" = "$MARK" ]; then rm -f "$PAMFILE"; fi
  if [ "$OWNED" = 1 ]; then
    case $(package_status) in
      ""|not-installed) ;;
      *) echo "deb-test: cleanup: purging the twofold package" >&2
         "${APT[@]}" purge twofold </dev/null >/dev/null 2>&1 ;;
    esac
    rm -rf "${STATE_PATHS[@]}"
    [ "$PRIVATE_CREATED" = 1 ] && rmdir /var/lib/private 2>/dev/null
  fi
  rm -rf "$TMP"
  if [ "$status" -eq 0 ]; then echo "deb-test: passed in $(( $(date +%s) - started )) s"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- twofoldd, started by hand ----------------------------------------------------------------------

# Binds the notify socket, says "bound", reads twofoldd's pid on stdin, then says READY when
# READY=1 arrives, or why not (twofoldd exited first, or 60 s passed).
WAIT_READY_PY='
import os, select, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
pid = int(sys.stdin.readline())
try:
    pidfd = os.pidfd_open(pid)
except ProcessLookupError:  # gone (and reaped by the shell) already
    print("twofoldd exited before it sent READY=1", flush=True)
    sys.exit()
deadline = time.monotonic() + 60
while True:
    left = deadline - time.monotonic()
    ready = select.select([s, pidfd], [], [], max(left, 0))[0]
    if s in ready:
        if "READY=1" in s.recv(4096).decode(errors="replace").split("\n"):
            print("READY", flush=True)
            break
    elif pidfd in ready:
        print("twofoldd exited before it sent READY=1", flush=True)
        break
    elif left <= 0:
        print("no READY=1 from twofoldd within 60 s", flush=True)
        break
'

start_daemon() {
  rm -f "$TMP/notify.sock"
  coproc WAITER { python3 -c "$WAIT_READY_PY" "$TMP/notify.sock"; }
  local line="" waiter=$WAITER_PID
  read -r -t 30 line <&"${WAITER[0]}" || true
  [ "$line" = bound ] || fail "the READY=1 listener did not start"
  # Only the environment systemd would give it: nothing from /opt/swift (the runtime is inside).
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$TMP/notify.sock" \
    /usr/sbin/twofoldd --config /etc/twofold/twofoldd.conf </dev/null >>"$TMP/daemon.log" 2>&1 9>&- &
  DAEMON_PID=$!
  echo "$DAEMON_PID" >&"${WAITER[1]}"
  read -r line <&"${WAITER[0]}" || line="the READY=1 listener failed"
  wait "$waiter" || true
  [ "$line" = READY ] || fail "$line (its log follows)"
  [ -S /run/twofold/twofold.sock ] || fail "twofoldd is ready but /run/twofold/twofold.sock is not a socket"
  ok "twofoldd (pid $DAEMON_PID) sent READY=1; listening on /run/twofold/twofold.sock"
}

# term_and_wait PID SECONDS: SIGTERM to PID, then whether it exits within SECONDS. Through a pidfd:
# no polling, and no signal to another process should the shell have reaped PID already.
TERM_AND_WAIT_PY='
import os, select, signal, sys
try:
    fd = os.pidfd_open(int(sys.argv[1]))
except ProcessLookupError:
    sys.exit(0)  # exited, and reaped by the shell
signal.pidfd_send_signal(fd, signal.SIGTERM)
sys.exit(0 if select.select([fd], [], [], float(sys.argv[2]))[0] else 1)
'
term_and_wait() { python3 -c "$TERM_AND_WAIT_PY" "$1" "$2"; }

stop_daemon() {  # SIGTERM, then at most 30 s for a graceful exit (status 0)
  local pid=$DAEMON_PID status=0
  DAEMON_PID=""
  if ! term_and_wait "$pid" 30; then
    kill -KILL "$pid"; wait "$pid" || true
    fail "twofoldd did not exit within 30 s of SIGTERM"
  fi
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || fail "twofoldd exited with status $status on SIGTERM"
  ok "twofoldd stopped (SIGTERM, exit 0)"
}

# --- codes and logins -------------------------------------------------------------------------------

totp() {  # totp SECRET STEP: the code (oathtool reads the secret on stdin)
  local code
  code=$(printf '%s\n' "$1" | oathtool --totp -b -N "@$(( $2 * 30 ))" -) && [[ $code =~ ^[0-9]{6}$ ]] ||
    fail "oathtool gave no code: $code"
  printf '%s' "$code"
}

declare -A LAST_STEP=()
CODE=""
# CODE := a code of USER's for a step after the last one used: a code is accepted once, and only
# within one step of the current one (window = 1), so at most two logins of a user fit in 30 s.
next_code() {  # next_code USER SECRET
  local now step
  now=$(( $(date +%s) / 30 ))
  step=$(( ${LAST_STEP[$1]:-0} + 1 ))
  (( step < now )) && step=$now
  (( step <= now + 1 )) || fail "more than two logins of $1 in one 30 s step: use another user"
  LAST_STEP[$1]=$step
  CODE=$(totp "$2" "$step")
}

WRONG=""
wrong_code() {  # WRONG := a 6-digit code that is none of SECRET's codes for the steps around now
  local now valid=" " k
  now=$(( $(date +%s) / 30 ))
  for k in -2 -1 0 1 2; do valid+="$(totp "$1" $(( now + k ))) "; done
  for WRONG in 000000 111111 222222 333333 444444 555555; do
    [[ $valid == *" $WRONG "* ]] || return 0
  done
  fail "no wrong code found (cannot happen)"
}

LOGIN_OUT=""
login() {  # login SERVICE USER ANSWER... : pamtester reads one answer per prompt from stdin
  local service=$1 user=$2
  shift 2
  LOGIN_OUT=$(printf '%s\n' "$@" | pamtester "$service" "$user" authenticate 2>&1)
}

expect_login() {  # expect_login pass|fail WHAT SERVICE USER ANSWER...
  local want=$1 what=$2 status=0
  shift 2
  login "$@" || status=$?
  if [ "$want" = pass ]; then
    [ "$status" -eq 0 ] && [[ $LOGIN_OUT == *"successfully authenticated"* ]] ||
      fail "$what: the login failed (pamtester exit $status): $LOGIN_OUT"
  else
    [ "$status" -ne 0 ] && [[ $LOGIN_OUT == *"Authentication failure"* ]] ||
      fail "$what: expected 'Authentication failure', got exit $status: $LOGIN_OUT"
  fi
  ok "$what"
}

# --- checks -----------------------------------------------------------------------------------------

pam_sums() { md5sum /etc/pam.d/common-auth /etc/pam.d/common-account /etc/pam.d/common-password /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive; }
pam_seen() { cat /var/lib/pam/seen 2>/dev/null || true; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
must_exist() { local p; for p in "$@"; do [ -e "$p" ] || fail "$p is missing"; done; }
must_not_exist() { local p; for p in "$@"; do [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p is still there"; done; }

pam_unchanged() {  # WHEN
  [ "$(pam_sums)" = "$PAM_BEFORE" ] || { pam_sums; fail "/etc/pam.d/common-* changed ($1)"; }
  ! grep -q pam_twofold /etc/pam.d/common-auth || fail "common-auth names pam_twofold ($1)"
  ok "/etc/pam.d/common-* unchanged ($1)"
}

status_is() {  # status_is EXPECTED WHEN
  local s
  s=$(package_status)
  [ "$s" = "$1" ] || fail "dpkg: twofold is '${s:-unknown}', expected '$1' ($2)"
}

units_enabled_links() {  # what deb-systemd-helper made for twofoldd's and twofold-deliver's units
  find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    \( -name 'twofoldd.*' -o -name 'twofold-deliver.*' \) 2>/dev/null | sort
}

# ====================================================================================================
step "preconditions: no Twofold on this machine"
case $(package_status) in
  ""|not-installed) ;;
  *) fail "the twofold package is on this machine ($(package_status)): this test installs and purges it; purge it first (apt-get purge twofold)" ;;
esac
for p in "${STATE_PATHS[@]}" /usr/sbin/twofoldd /usr/bin/twofoldctl "$MODULE" /usr/share/pam-configs/twofold \
         /lib/systemd/system/twofoldd.service /lib/systemd/system/twofoldd.socket /usr/sbin/twofold-deliver /usr/lib/twofold \
         /lib/systemd/system/twofold-deliver.service /lib/systemd/system/twofold-deliver.socket; do
  [ ! -e "$p" ] && [ ! -L "$p" ] || fail "$p exists (a Twofold installed with make install?): this test would replace or purge it; remove it first (make uninstall; the state is yours to keep or delete)"
done
[ -z "$(units_enabled_links)" ] || fail "twofoldd's units are enabled here: $(units_enabled_links | tr '\n' ' ')"
if [ -e "$PAMFILE" ]; then
  [ "$(head -n 1 "$PAMFILE")" = "$MARK" ] || fail "$PAMFILE exists and is not this test's"
  rm -f "$PAMFILE"  # left by a run that was killed
fi
OWNED=1
bash scripts/test-setup.sh
PAM_BEFORE=$(pam_sums)
SEEN_BEFORE=$(pam_seen)
ok "nothing of Twofold here; /etc/pam.d/common-* recorded"

# ====================================================================================================
step "build: make build pam (the release build), make deb"
make build pam
make deb
VERSION=$(dpkg-parsechangelog -S Version)
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
DEB=$ROOT/dist/twofold_${VERSION}_${ARCH}.deb
CHANGES=$ROOT/dist/twofold_${VERSION}_${ARCH}.changes
must_exist "$DEB" "$CHANGES"
if [ -f Sources/TwofoldProtocol/Version.swift ]; then
  grep -q "\"$VERSION\"" Sources/TwofoldProtocol/Version.swift ||
    fail "debian/changelog says $VERSION, Sources/TwofoldProtocol/Version.swift does not"
fi
ok "$DEB ($(du -h "$DEB" | cut -f1)), version $VERSION"

# ====================================================================================================
step "lintian (errors and warnings fail; overrides, if any: debian/twofold.lintian-overrides)"
# One run that also shows the overridden tags (O:) with their justification (N:); lintian 2.116
# counts overridden tags in --fail-on when --show-overrides is given, so the verdict is read from
# its output: a line "E: ..." or "W: ..." is an error or warning no override covers.
lintian_out=$(lintian --fail-on none --display-info --show-overrides "$CHANGES" 2>&1) ||
  fail "lintian did not run: $lintian_out"
printf '%s\n' "$lintian_out" | grep -v -e '^running with root privileges' -e 'spelling-error-in-binary' | sed 's/^/   /' || true
echo "   (and $(grep -c 'spelling-error-in-binary' <<<"$lintian_out" || true) spelling-error-in-binary infos: words in the statically linked ICU and Foundation)"
! grep -q '^[EW]: ' <<<"$lintian_out" ||
  fail "lintian found errors or warnings (E:/W: above) that no override in debian/twofold.lintian-overrides justifies"
ok "lintian: no error or warning; overridden: $(grep -c '^O: ' <<<"$lintian_out" || true)"

# ====================================================================================================
step "maintainer scripts (dpkg-deb -e): what dh_installsystemd and debian/twofold.* put in them"
dpkg-deb -e "$DEB" "$TMP/control"
# Each command is checked with the conditions of the if/case branches around it.
python3 - "$TMP/control" <<'PY'
import os, re, sys

def commands(path):
    """(command, [enclosing conditions]) for every line of a maintainer script."""
    out, stack = [], []
    if not os.path.exists(path):
        return out
    for raw in open(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("if ") or line.startswith("elif "):
            if line.startswith("elif "): stack.pop()
            stack.append(re.sub(r";\s*then$", "", line.split(" ", 1)[1]))
        elif line == "else":
            stack.append("not (" + stack.pop() + ")")
        elif line in ("fi", "esac", ";;"):
            stack.pop()
        elif line.startswith("case "):
            stack.append(line)
        elif re.fullmatch(r"[\w|*-]+\)", line):
            stack.append('"$1" = ' + line[:-1])
        else:
            out.append((line, list(stack)))
    return out

control = sys.argv[1]
scripts = {n: commands(os.path.join(control, n)) for n in ("preinst", "postinst", "prerm", "postrm")}
errors = []

def find(script, pattern):
    return [(c, conds) for c, conds in scripts[script] if re.search(pattern, c)]

def expect(script, pattern, *conditions, what):
    hits = find(script, pattern)
    if not any(all(any(k in c for c in conds) for k in conditions) for _, conds in hits):
        errors.append(f"{script}: {what}: no /{pattern}/ under {conditions}; found {hits or 'none'}")
    else:
        print(f"   ok: {script}: {what}")

def forbid(script, pattern, what):
    hits = find(script, pattern)
    if hits:
        errors.append(f"{script}: {what}: {hits}")
    else:
        print(f"   ok: {script}: {what}")

SOCK, SERV = r"'?twofoldd\.socket'?", r"'?twofoldd\.service'?"
expect("postinst", r"^pam-auth-update --package$", '"$1" = configure', what="registers the pam-auth-update profile on configure")
expect("postinst", rf"deb-systemd-helper enable {SOCK}", '"$1" = "configure"', "was-enabled", what="enables twofoldd.socket on install (and keeps an admin's disable)")
expect("postinst", rf"deb-systemd-invoke start {SOCK}", '"$1" = "configure"', "-d /run/systemd/system", what="starts twofoldd.socket (when systemd runs)")
forbid("postinst", rf"deb-systemd-invoke (restart|try-restart|stop|\$_dh_action) .*{SOCK}", "never restarts the socket: it keeps listening through an upgrade")
expect("postinst", rf"deb-systemd-invoke try-restart {SERV}", '"$1" = "configure"', '-n "$2"', what="restarts twofoldd.service after an upgrade, only if it runs")
forbid("postinst", rf"deb-systemd-invoke (start|restart|\$_dh_action) .*{SERV}", "never starts the service itself: the socket does")
expect("postinst", rf"deb-systemd-helper enable {SERV}", "debian-installed", "was-enabled", what="enables the service only where an admin had enabled it")
expect("prerm", rf"deb-systemd-invoke stop {SOCK}", '"$1" = remove', what="stops twofoldd.socket on remove (and with it twofoldd: Requires=)")
forbid("prerm", r"deb-systemd-invoke (?!stop)", "starts or restarts nothing")
expect("prerm", r"^pam-auth-update --package --remove twofold$", '"$1" = remove', what="takes the profile out of common-* on remove, before the module goes")
forbid("preinst", r"deb-systemd-invoke", "stops nothing before an upgrade")
for unit in (SOCK, SERV):
    expect("postrm", rf"deb-systemd-helper purge {unit}", '"$1" = "purge"', what=f"forgets {unit.strip(chr(39)+'?')}'s enablement on purge")
expect("postrm", r"^rm -rf /etc/twofold$", '"$1" = purge', what="purge deletes /etc/twofold")
expect("postrm", r"^rm -rf /var/lib/twofold /var/lib/private/twofold$", '"$1" = purge', what="purge deletes the state")
expect("postrm", r"^pam-auth-update --package --remove twofold$", '"$1" = purge', what="purge unregisters the profile")
if errors:
    print("\n".join("deb-test: FAIL: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
PY
for conf in $CONFFILES; do
  grep -qx "$conf" "$TMP/control/conffiles" || fail "conffiles does not list $conf"
done
ok "conffiles: $CONFFILES"
# The delivery service: its user made by systemd-sysusers; its units neither enabled nor started.
grep -q "systemd-sysusers.* twofold.conf" "$TMP/control/postinst" || fail "postinst does not run systemd-sysusers twofold.conf"
# dh_installsystemd --no-enable still re-enables a unit the admin had enabled (inside `was-enabled`):
# an `enable` anywhere else, or a start, would turn delivery on by itself.
awk '/was-enabled .twofold-deliver/ { guarded = $0; next }
     /deb-systemd-helper enable .?twofold-deliver/ { if (guarded == "" || index(guarded, $3) == 0) bad = 1; guarded = ""; next }
     /deb-systemd-invoke (start|restart) .?twofold-deliver/ { bad = 1 }
     END { exit bad }' "$TMP/control/postinst" ||
  fail "postinst enables or starts a twofold-deliver unit: the admin turns delivery on"
grep -Eq "deb-systemd-invoke stop '?twofold-deliver.socket" "$TMP/control/prerm" || fail "prerm does not stop twofold-deliver.socket"
ok "twofold-deliver: its user from sysusers, its units not enabled, the socket stopped on remove"

# ====================================================================================================
step "install: apt-get install $DEB"
"${APT[@]}" install "$DEB" </dev/null
status_is installed "after install"
[ "$(dpkg-query -W -f='${Version}' twofold)" = "$VERSION" ] || fail "installed version is not $VERSION"
dpkg -L twofold > "$TMP/files"
must_exist /usr/sbin/twofoldd /usr/bin/twofoldctl "$MODULE" /lib/systemd/system/twofoldd.service /lib/systemd/system/twofoldd.socket \
  /etc/twofold/twofoldd.conf /usr/share/pam-configs/twofold \
  /usr/share/bash-completion/completions/twofoldctl /usr/share/zsh/vendor-completions/_twofoldctl \
  /usr/share/fish/vendor_completions.d/twofoldctl.fish \
  /usr/share/doc/twofold/README.md /usr/share/doc/twofold/copyright /usr/share/doc/twofold/examples/sshd \
  /usr/share/doc/twofold/examples/sshd_config.hardware-keys /usr/share/doc/twofold/examples/postgresql.conf /usr/share/doc/twofold/examples/server.conf \
  /usr/share/doc/twofold/examples/relay.conf /usr/share/doc/twofold/examples/fleet-ca.sh \
  /usr/sbin/twofold-deliver /usr/lib/twofold/send-email /usr/lib/twofold/send-sms \
  /lib/systemd/system/twofold-deliver.service /lib/systemd/system/twofold-deliver.socket $CONFFILES \
  /usr/lib/sysusers.d/twofold.conf /usr/share/doc/twofold/delivery.md /usr/share/doc/twofold/examples/twofold-deliver-hardening.conf
[ -x /usr/sbin/twofoldd ] && [ -x /usr/bin/twofoldctl ] && [ -x /usr/sbin/twofold-deliver ] || fail "the binaries are not executable"
[ -x /usr/lib/twofold/send-email ] && [ -x /usr/lib/twofold/send-sms ] || fail "the delivery commands are not executable"
getent passwd twofold-deliver >/dev/null || fail "systemd-sysusers did not create the user twofold-deliver"
grep -q '^u twofold-keys ' /usr/lib/sysusers.d/twofold.conf && getent passwd twofold-keys >/dev/null ||
  fail "the package does not create twofold-keys, sshd's AuthorizedKeysCommandUser"
[ "$(/usr/sbin/twofold-deliver --config /etc/twofold/deliver.conf --check-config | tail -n 1)" = "configuration OK" ] ||
  fail "the installed deliver.conf does not check OK"
for b in /usr/sbin/twofoldd /usr/bin/twofoldctl /usr/sbin/twofold-deliver "$MODULE"; do
  deps=$(ldd "$b")
  ! grep -q -e 'not found' -e /opt/swift <<<"$deps" || fail "$b needs a library that is missing or in /opt/swift: $deps"
done
ok "binaries in /usr/sbin and /usr/bin, the module in $MODULE; none needs /opt/swift"
grep -q '^complete .*twofoldctl$' /usr/share/bash-completion/completions/twofoldctl || fail "no bash completion for twofoldctl"
[ "$(head -c 2 /usr/share/bash-completion/completions/twofoldctl)" != "#!" ] || fail "the bash completion starts with #!"
grep -q '^#compdef twofoldctl' /usr/share/zsh/vendor-completions/_twofoldctl || fail "no zsh completion for twofoldctl"
grep -q "^complete -c 'twofoldctl'" /usr/share/fish/vendor_completions.d/twofoldctl.fish || fail "no fish completion for twofoldctl"
ok "completions for bash, zsh and fish"
pages=0
for page in docs/man/*.[158]; do
  [ -e "$page" ] || continue
  name=$(basename "$page"); section=${name##*.}
  must_exist "/usr/share/man/man$section/$name.gz"
  pages=$((pages + 1))
done
[ "$pages" -gt 0 ] || fail "docs/man has no manual page"
ok "$pages manual page(s): every docs/man/*.[158]"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' twofold)
grep -q "^ /etc/twofold/twofoldd.conf $(md5sum < systemd/twofoldd.conf | cut -d' ' -f1)\$" <<<"$conffiles" ||
  fail "dpkg does not list /etc/twofold/twofoldd.conf (systemd/twofoldd.conf) as a conffile: $conffiles"
cmp -s /etc/twofold/twofoldd.conf systemd/twofoldd.conf || fail "/etc/twofold/twofoldd.conf is not systemd/twofoldd.conf"
[ "$(/usr/sbin/twofoldd --config /etc/twofold/twofoldd.conf --check-config | tail -n 1)" = "configuration OK" ] || fail "the installed config does not check OK"
ok "conffile /etc/twofold/twofoldd.conf (dpkg-query Conffiles), checks OK"
verify=$(systemd-analyze verify /lib/systemd/system/twofoldd.socket /lib/systemd/system/twofoldd.service \
  /lib/systemd/system/twofold-deliver.socket /lib/systemd/system/twofold-deliver.service 2>&1) ||
  fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
grep -q '^Requires=.*twofoldd\.socket' /lib/systemd/system/twofoldd.service ||
  fail "twofoldd.service does not Require= twofoldd.socket: stopping the socket on remove would leave twofoldd running"
ok "systemd-analyze verify: the four installed units; twofoldd.service Requires= its socket"
link=/etc/systemd/system/sockets.target.wants/twofoldd.socket
[ "$(readlink "$link")" = /lib/systemd/system/twofoldd.socket ] || fail "$link does not point to the socket unit: the socket was not enabled"
must_not_exist /etc/systemd/system/multi-user.target.wants/twofoldd.service
must_not_exist /etc/systemd/system/sockets.target.wants/twofold-deliver.socket /etc/systemd/system/multi-user.target.wants/twofold-deliver.service
ok "twofoldd.socket enabled (sockets.target.wants), twofoldd.service not; twofold-deliver's units not"
pam_unchanged "after install"
grep -qx twofold /var/lib/pam/seen || fail "pam-auth-update did not register the profile (/var/lib/pam/seen)"
ok "profile /usr/share/pam-configs/twofold registered, not enabled (Default: no)"

# ====================================================================================================
step "the installed daemon, an enrollment and logins through the installed module"
# The package's state directory in DynamicUser='s layout: /var/lib/twofold -> private/twofold.
if [ ! -d /var/lib/private ]; then mkdir -m 0700 /var/lib/private; PRIVATE_CREATED=1; fi
mkdir -m 0700 /var/lib/private/twofold
ln -s private/twofold /var/lib/twofold
start_daemon
must_exist /var/lib/private/twofold/twofold.key /var/lib/private/twofold/twofold.sqlite
for u in "$USER1:$SECRET1" "$USER2:$SECRET2"; do
  out=$(printf 'otpauth://totp/Twofold:%s?secret=%s&issuer=Twofold\n' "${u%%:*}" "${u#*:}" |
        /usr/bin/twofoldctl import "${u%%:*}" --uri - 2>&1) || fail "twofoldctl import ${u%%:*}: $out"
  [[ $out == "Imported 2FA for ${u%%:*} "*": active"* ]] || fail "twofoldctl import ${u%%:*}: $out"
done
ok "twofoldctl import: $USER1 and $USER2 enrolled (URI on stdin)"
printf '%s\nauth     required   pam_twofold.so\naccount  required   pam_permit.so\n' "$MARK" > "$PAMFILE"
next_code "$USER1" "$SECRET1"
expect_login pass "$SERVICE: $USER1 with the right code logs in" "$SERVICE" "$USER1" "$CODE"
[[ $LOGIN_OUT == *"$PROMPT"* ]] || fail "pamtester never showed the daemon's prompt: $LOGIN_OUT"
wrong_code "$SECRET1"
expect_login fail "$SERVICE: $USER1 with a wrong code is refused" "$SERVICE" "$USER1" "$WRONG"

# ====================================================================================================
step "pam-auth-update --enable twofold, in a private mount namespace: password, then code"
# Copies of /etc/pam.d, /var/lib/pam, debconf's database and /etc/shadow (with passwords for two
# test users) are mounted over the real ones in a namespace of its own: the machine's PAM stack never
# changes. Inside: the generated common-auth, then logins through it with real pam_unix.
PASSWORD=$(head -c 12 /dev/urandom | base64)
cat > "$TMP/namespace.sh" <<'NS'
set -euo pipefail
source "$1"                       # the functions and settings of deb-test.sh it needs
for d in /etc/pam.d /var/lib/pam /var/cache/debconf; do
  mkdir -p "$TMP/ns$d"; cp -a "$d/." "$TMP/ns$d/"; mount --bind "$TMP/ns$d" "$d"
done
hash=$(printf '%s' "$PASSWORD" | openssl passwd -6 -stdin)
cp -a /etc/shadow "$TMP/ns/shadow"
awk -F: -v OFS=: -v h="$hash" -v a="$USER2" -v b="$UNENROLLED" '$1 == a || $1 == b { $2 = h } { print }' /etc/shadow > "$TMP/ns/shadow"
mount --bind "$TMP/ns/shadow" /etc/shadow

original=$(md5sum < /etc/pam.d/common-auth)
pam-auth-update --enable twofold
stack=$(grep -v -e '^#' -e '^$' /etc/pam.d/common-auth)
printf '%s\n' "$stack" | sed 's/^/   | /'
order=$(printf '%s\n' "$stack" | grep -o 'pam_[a-z_]*\.so' | tr '\n' ' ')
[[ $order == "pam_unix.so pam_deny.so pam_permit.so pam_twofold.so"* ]] ||
  fail "common-auth with the profile is not pam_unix, pam_deny, pam_permit, pam_twofold, ...: $order"
grep -qP '^auth\trequisite\tpam_twofold\.so\s*$' /etc/pam.d/common-auth || fail "common-auth has no 'auth requisite pam_twofold.so' line"
ok "common-auth: pam_twofold (requisite) first in the Additional block, after pam_unix, pam_deny and pam_permit"

printf '%s\n@include common-auth\naccount  required   pam_permit.so\n' "$MARK" > "/etc/pam.d/$SERVICE"
wrong_code "$SECRET2"
expect_login fail "common-auth: a wrong password fails before any code is asked" "$SERVICE" "$USER2" "not-$PASSWORD" "$WRONG"
[[ $LOGIN_OUT != *"$PROMPT"* ]] || fail "the code was asked for after a wrong password: $LOGIN_OUT"
expect_login pass "common-auth: $USER2, password then the right code, logs in" "$SERVICE" "$USER2" "$PASSWORD" "$CODE2"
[[ $LOGIN_OUT == *"Password"*"$PROMPT"* ]] || fail "expected the password prompt, then the code prompt: $LOGIN_OUT"
wrong_code "$SECRET2"
expect_login fail "common-auth: $USER2, right password and a wrong code, is refused" "$SERVICE" "$USER2" "$PASSWORD" "$WRONG"
expect_login pass "common-auth: $UNENROLLED (not enrolled, not required) logs in with the password alone" "$SERVICE" "$UNENROLLED" "$PASSWORD"
[[ $LOGIN_OUT != *"$PROMPT"* ]] || fail "$UNENROLLED was asked for a code: $LOGIN_OUT"

pam-auth-update --package --remove twofold
[ "$(md5sum < /etc/pam.d/common-auth)" = "$original" ] || fail "pam-auth-update --remove twofold (what prerm runs) did not restore common-auth"
ok "pam-auth-update --package --remove twofold (prerm's) restores common-auth"
NS
next_code "$USER2" "$SECRET2"
{ declare -f step ok fail login expect_login totp wrong_code
  declare -p TMP PASSWORD USER2 UNENROLLED SECRET2 SERVICE MARK PROMPT
  printf 'CODE2=%q\n' "$CODE"
} > "$TMP/namespace.env"
unshare --mount --propagation private bash "$TMP/namespace.sh" "$TMP/namespace.env"
pam_unchanged "after the namespace"

# ====================================================================================================
step "upgrade: the same package over itself, with an admin's edit in the conffile"
printf '\n# an admin was here (deb-test)\nissuer = Twofold deb-test\n' >> /etc/twofold/twofoldd.conf
conf_sum=$(sha /etc/twofold/twofoldd.conf)
key_sum=$(sha /var/lib/twofold/twofold.key)
# Standard input is /dev/null: a conffile question from dpkg would fail the upgrade, not wait.
# No --force-confold: an unchanged package conffile must never need it.
"${APT[@]}" install --reinstall "$DEB" </dev/null
status_is installed "after the upgrade"
[ "$(sha /etc/twofold/twofoldd.conf)" = "$conf_sum" ] || fail "the admin's edit of /etc/twofold/twofoldd.conf did not survive the upgrade"
[ "$(/usr/sbin/twofoldd --config /etc/twofold/twofoldd.conf --check-config | tail -n 1)" = "configuration OK" ] || fail "the edited config does not check OK"
ok "the edited /etc/twofold/twofoldd.conf is kept, without a question"
[ "$(sha /var/lib/twofold/twofold.key)" = "$key_sum" ] || fail "the sealing key changed in the upgrade"
must_exist /var/lib/twofold/twofold.sqlite
ok "the state (key, database) is untouched"
pam_unchanged "after the upgrade"
# What the postinst's try-restart does under systemd: the new twofoldd takes over the same state.
stop_daemon
start_daemon
next_code "$USER1" "$SECRET1"
expect_login pass "$SERVICE: $USER1 still logs in after the upgrade and a restart" "$SERVICE" "$USER1" "$CODE"

# ====================================================================================================
step "remove: apt-get remove twofold (the daemon stopped first, as prerm's stop of the socket does)"
stop_daemon
remove_out=$("${APT[@]}" remove twofold </dev/null 2>&1) || { printf '%s\n' "$remove_out"; fail "apt-get remove failed"; }
printf '%s\n' "$remove_out"
status_is config-files "after remove"
[[ $remove_out == *"WARNING: pam_twofold.so is being removed"*"$PAMFILE"* ]] ||
  fail "prerm did not warn that $PAMFILE still uses pam_twofold.so"
ok "prerm warned that $PAMFILE still uses the module"
[[ $(dpkg -l twofold | tail -n 1) == rc* ]] || fail "dpkg -l twofold does not say rc: $(dpkg -l twofold | tail -n 1)"
left=()
while read -r f; do
  [ -d "$f" ] && continue
  [ -e "$f" ] || [ -L "$f" ] || continue
  [[ " $CONFFILES " == *" $f "* ]] || left+=("$f")
done < "$TMP/files"
[ ${#left[@]} -eq 0 ] || fail "remove left files of the package: ${left[*]}"
must_not_exist /usr/sbin/twofoldd /usr/bin/twofoldctl "$MODULE" /lib/systemd/system/twofoldd.service /lib/systemd/system/twofoldd.socket /usr/share/pam-configs/twofold \
  /usr/sbin/twofold-deliver /usr/lib/twofold /lib/systemd/system/twofold-deliver.service /lib/systemd/system/twofold-deliver.socket
ok "binaries, module, units, profile and the rest are gone (dpkg -l: rc)"
[ "$(sha /etc/twofold/twofoldd.conf)" = "$conf_sum" ] || fail "remove changed /etc/twofold/twofoldd.conf"
[ "$(sha /var/lib/twofold/twofold.key)" = "$key_sum" ] || fail "remove changed the key"
must_exist /var/lib/twofold/twofold.sqlite
ok "configuration (with the admin's edit) and state (key, database) kept"
pam_unchanged "after remove"
! grep -qx twofold /var/lib/pam/seen || fail "the profile is still registered with pam-auth-update after remove"
ok "profile unregistered (prerm: pam-auth-update --package --remove twofold)"

# ====================================================================================================
step "purge: apt-get purge twofold"
"${APT[@]}" purge twofold </dev/null
case $(package_status) in ""|not-installed) ;; *) fail "dpkg still knows twofold after purge: $(package_status)" ;; esac
! dpkg -L twofold >/dev/null 2>&1 || fail "dpkg -L twofold still lists files after purge"
must_not_exist "${STATE_PATHS[@]}" /usr/share/pam-configs/twofold /etc/systemd/system/sockets.target.wants/twofoldd.socket \
  /usr/share/doc/twofold
while read -r f; do
  [ -d "$f" ] && continue
  must_not_exist "$f"
done < "$TMP/files"
[ -z "$(units_enabled_links)" ] || fail "deb-systemd-helper left: $(units_enabled_links | tr '\n' ' ')"
ok "nothing left: files, /etc/twofold, /var/lib/twofold, /var/lib/private/twofold, /run/twofold, unit links"
pam_unchanged "after purge"
[ "$(pam_seen)" = "$SEEN_BEFORE" ] || fail "/var/lib/pam/seen is not what it was before the test"
ok "/var/lib/pam/seen as before"
