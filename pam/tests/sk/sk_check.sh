#!/usr/bin/env bash
# Proves pam/tests/sk/sk_soft.so with OpenSSH itself: ssh-keygen enrolls ecdsa-sk and ed25519-sk
# keys through it (-w), signs files with them (-Y sign, the middleware named by SSH_SK_PROVIDER),
# and verifies the signatures (-Y verify, whose debug output shows the signed flags and counter).
# Prints one line per scenario and every mismatch; exits 1 on any mismatch, 2 when it cannot run.
#
#   pam/tests/sk/sk_check.sh [SK_SOFT.so]   (default: sk_soft.so next to this script)
set -u

here=$(cd "$(dirname "$0")" && pwd)
sk=${1:-$here/sk_soft.so}
[ -e "$sk" ] || { echo "sk_check.sh: $sk is missing (make -C pam tests/sk/sk_soft.so)" >&2; exit 2; }
command -v ssh-keygen >/dev/null || { echo "sk_check.sh: ssh-keygen is needed (openssh-client)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tf-sk-check.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
failures=0
scenario=""
out=""
log=""
printf 'signed by sk_soft\n' >"$work/message"
# ssh-keygen asks for the PIN of a verify-required key; this answers it (never on argv).
printf '#!/bin/sh\necho 1234\n' >"$work/askpass"
chmod 0700 "$work/askpass"

begin() {
	scenario=$1
	log=$work/$1.log
	echo "scenario: $1"
}

mismatch() {
	echo "FAIL [$scenario]: $1"
	if [ -n "$out" ]; then printf '%s\n' "$out" | sed 's/^/    | /'; fi
	failures=$((failures + 1))
}

# keygen [VAR=value ...] -- ARGS: ssh-keygen ARGS with the middleware's log and these knobs only.
keygen() {
	local knobs=()
	while [ "$1" != "--" ]; do knobs+=("$1"); shift; done
	shift
	out=$(env -i PATH=/usr/bin:/bin TWOFOLD_SK_LOG="$log" SSH_SK_PROVIDER="$sk" \
		SSH_ASKPASS="$work/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=none \
		${knobs[@]+"${knobs[@]}"} ssh-keygen "$@" </dev/null 2>&1)
}

# expect LINE...: each line is in the last output, exactly.
expect() {
	local line
	for line; do
		grep -qxF -- "$line" <<<"$out" || mismatch "expected '$line'"
	done
}

# log_is LINE...: the middleware's log since the last check is exactly these lines.
log_is() {
	local want got
	want=$(printf '%s\n' "$@")
	got=$(cat "$log" 2>/dev/null)
	[ "$got" = "$want" ] || { out="$got"; mismatch "log is not: $*"; }
	: >"$log"
}

# enroll TYPE FILE [-O option...]: a new key through the middleware; its .pub has the sk- type.
enroll() {
	local type=$1 file=$2
	shift 2
	keygen -- -q -t "$type" -w "$sk" -N '' -f "$file" "$@"
	[ -s "$file.pub" ] || { mismatch "ssh-keygen -t $type -w made no key"; return; }
	local want=sk-ecdsa-sha2-nistp256@openssh.com
	[ "$type" = ed25519-sk ] && want=sk-ssh-ed25519@openssh.com
	[ "$(cut -d' ' -f1 "$file.pub")" = "$want" ] || mismatch "$file.pub is not a $want key"
}

# signed KEY FLAGS [knobs...]: signs the message with KEY; -Y verify accepts it, with these flags.
signed() {
	local key=$1 flags=$2
	shift 2
	rm -f "$work/message.sig"
	keygen "$@" -- -Y sign -f "$key" -n file "$work/message"
	[ -s "$work/message.sig" ] || { mismatch "no signature with $key"; return; }
	printf 'tester %s\n' "$(cut -d' ' -f1,2 "$key.pub")" >"$work/allowed"
	out=$(ssh-keygen -vvv -Y verify -f "$work/allowed" -I tester -n file -s "$work/message.sig" <"$work/message" 2>&1)
	grep -q "^Good \"file\" signature for tester with " <<<"$out" || mismatch "-Y verify did not accept the signature"
	grep -qF "signature details: counter = 1, flags = $flags" <<<"$out" || mismatch "the signature's flags are not $flags"
}

# refused ALLOWED_KEY MESSAGE: -Y verify refuses the last signature for that key or message.
refused() {
	printf 'tester %s\n' "$(cut -d' ' -f1,2 "$1.pub")" >"$work/allowed"
	out=$(ssh-keygen -Y verify -f "$work/allowed" -I tester -n file -s "$work/message.sig" <"$2" 2>&1)
	! grep -q "^Good " <<<"$out" || mismatch "-Y verify accepted a signature it should refuse ($1, $2)"
}

for alg in ecdsa ed25519; do
	begin $alg
	enroll $alg-sk "$work/$alg"
	log_is version "enroll $alg flags=0x01 pin=no -> 0"
	signed "$work/$alg" 0x01
	log_is version "sign $alg flags=0x01 pin=no -> flags=0x01"
	signed "$work/$alg" 0x05 TWOFOLD_SK_UV=1
	log_is version "sign $alg flags=0x01 pin=no -> flags=0x05"
	signed "$work/$alg" 0x01 TWOFOLD_SK_UV=0
	: >"$log"
done

begin refused
printf 'not what was signed\n' >"$work/other-message"
signed "$work/ecdsa" 0x01
refused "$work/ed25519" "$work/message"
refused "$work/ecdsa" "$work/other-message"

# verify-required: ssh-keygen asks for the PIN and passes it on; the UV flag still comes only
# from the knob (the soft key never checks a PIN), so a signature without it can be made.
begin verify-required
enroll ed25519-sk "$work/uv" -O verify-required
log_is version "enroll ed25519 flags=0x05 pin=no -> 0"
signed "$work/uv" 0x05 TWOFOLD_SK_UV=1
log_is version "sign ed25519 flags=0x05 pin=yes -> flags=0x05"
signed "$work/uv" 0x01
log_is version "sign ed25519 flags=0x05 pin=yes -> flags=0x01"

begin no-touch-required
enroll ecdsa-sk "$work/notouch" -O no-touch-required
log_is version "enroll ecdsa flags=0x00 pin=no -> 0"
signed "$work/notouch" 0x00
log_is version "sign ecdsa flags=0x00 pin=no -> flags=0x00"

begin resident
keygen -- -K -w "$sk"
out=${out//$'\r'/}  # ssh-keygen's error() ends its line with CR LF
expect "No keys to download"
log_is version "load_resident_keys -> 0 keys"

begin bad-knob
rm -f "$work/message.sig"
keygen TWOFOLD_SK_UV=yes -- -Y sign -f "$work/ecdsa" -n file "$work/message"
expect "sk_soft: TWOFOLD_SK_UV=yes is not 0 or 1"
[ ! -e "$work/message.sig" ] || mismatch "signed with a bad knob"
log_is version "sign ecdsa flags=0x01 pin=no -> error -1"

if [ "$failures" -ne 0 ]; then
	echo "sk_check.sh: $failures mismatch(es)"
	exit 1
fi
echo "sk_check.sh: all scenarios passed"
