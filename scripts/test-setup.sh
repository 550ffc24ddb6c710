#!/usr/bin/env bash
# Accounts the tests run processes as (root; idempotent: an existing account or group is left as it is).
# `make check` runs it before the tests; run it by hand before `swift test` on a fresh machine.
#   twofold-test, twofold-test2   ordinary users: every non-root test case runs as one of them. Never
#                                 `nobody`: a daemon that sees every caller as 65534 (PrivateUsers=yes)
#                                 would pass a test whose non-root caller is nobody.
#   twofold-admins + twofold-admin      a real admin group with a member (admin_group tests)
#   twofold-req + twofold-member        a real required group with a member (require = groups tests)
#   twofold-keys                  the private sshd's AuthorizedKeysCommandUser (sshd runs the keys
#                                 command as it): a system user with no shell, never `nobody`
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  exec sudo bash "$0" "$@"  # it creates system accounts (the tests run as root anyway)
fi

group() {  # group NAME
  getent group "$1" >/dev/null || groupadd --system "$1"
}

user() {  # user NAME [SUPPLEMENTARY_GROUP]
  local name=$1 extra=${2:-}
  if ! getent passwd "$name" >/dev/null; then
    group "$name"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --gid "$name" ${extra:+--groups "$extra"} "$name"
  elif [ -n "$extra" ] && ! id -nG "$name" | tr ' ' '\n' | grep -qx "$extra"; then
    usermod --append --groups "$extra" "$name"
  fi
}

user twofold-test
user twofold-test2
group twofold-admins
user twofold-admin twofold-admins
group twofold-req
user twofold-member twofold-req
user twofold-keys
