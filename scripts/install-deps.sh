#!/usr/bin/env bash
# Installs the Debian packages Twofold builds and tests with, if any is missing. Needs root (or sudo).
set -euo pipefail
packages=(
  pkg-config libssl-dev libsqlite3-dev libpam0g-dev libqrencode-dev libfido2-dev libcbor-dev   # build
  pamtester libpam-wrapper openssh-server openssh-client oathtool      # tests: real peers
  zbar-tools libpam-google-authenticator libpam-oath python3 util-linux
  systemd                                                              # tests: systemd-analyze on the units
  python3-prometheus-client                                            # tests: the metrics parsed by Prometheus's own Python parser
  postgresql pgbouncer                                                 # tests: a private PostgreSQL 15 cluster and PgBouncer 1.18 (scripts/pg-cluster.sh)
  mandoc groff-base                                                    # tests: man pages lint clean
  debhelper dpkg-dev lintian                                           # make deb (Rules-Requires-Root: no, so no fakeroot)
  openssl                                                              # deb-test: a password hash for pam_unix; CLI tests: host certificates
  python3-aiosmtpd msmtp curl                                          # delivery tests: a real SMTP server, msmtp as sendmail, send-sms's curl
  libfuse3-dev fuse3 sqlite3 e2fsprogs                                 # disk fault tests: stallfs (Tests/fuse), the sqlite3 shell's integrity_check, mkfs.ext4
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
