#!/usr/bin/env bash
# Proves pam/tests/fake_fido.so with libfido2 itself: runs fake_fido_check
# (libfido2 as the module and twofoldctl use it, results checked with
# libfido2's verify functions) with the fake preloaded, once per knob, and
# compares what comes out.  Prints one line per scenario and every mismatch;
# exits 1 on any mismatch, 2 when it cannot run at all.
#
#   pam/tests/fake_fido_check.sh [DIR]   DIR holds fake_fido.so and fake_fido_check
#                                        (default: this script's directory)
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here}
fake=$dir/fake_fido.so
check=$dir/fake_fido_check
for f in "$fake" "$check"; do
	[ -e "$f" ] || { echo "fake_fido_check.sh: $f is missing (make -C pam tests/fake_fido.so tests/fake_fido_check)" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "fake_fido_check.sh: openssl is needed for the attestation CA" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tf-fake-fido.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
failures=0
scenario=""
out=""

# begin NAME: a fresh key (state file) and log for the scenario.
begin() {
	scenario=$1
	state=$work/$1.state
	log=$work/$1.log
	echo "scenario: $1"
}

# key [VAR=value ...] -- ARGS: runs fake_fido_check ARGS with the fake and only these knobs; output in $out.
key() {
	local knobs=()
	while [ "$1" != "--" ]; do knobs+=("$1"); shift; done
	shift
	out=$(env -i PATH=/usr/bin:/bin TWOFOLD_FAKE_FIDO_STATE="$state" TWOFOLD_FAKE_FIDO_LOG="$log" \
		${knobs[@]+"${knobs[@]}"} LD_PRELOAD="$fake" "$check" "$@" 2>&1)
}

mismatch() {
	echo "FAIL [$scenario]: $1"
	if [ -n "$out" ]; then printf '%s\n' "$out" | sed 's/^/    | /'; fi
	failures=$((failures + 1))
}

# expect LINE...: each line is in the last output, exactly.
expect() {
	local line
	for line; do
		grep -qxF -- "$line" <<<"$out" || mismatch "expected '$line'"
	done
}

# lacks PREFIX...: no line of the last output starts with PREFIX.
lacks() {
	local p
	for p; do
		! grep -q "^$p" <<<"$out" || mismatch "did not expect a line starting '$p'"
	done
}

# log_is LINE...: the scenario's log is exactly these lines (the calls and commands the key saw).
log_is() {
	local want got
	want=$(printf '%s\n' "$@")
	got=$(cat "$log" 2>/dev/null)
	[ "$got" = "$want" ] || { out="$got"; mismatch "log is not: $*"; }
	: >"$log"
}

value() { sed -n "s/^$1=//p" <<<"$out"; }

# A credential for rp pam://twofold.test in the scenario's key: ALG FILE [knobs...]
registered() {
	local alg=$1 file=$2
	shift 2
	key "$@" -- register "$alg" "$file"
	expect "make_cred=FIDO_ERR_SUCCESS"
	: >"$log"
}

default_aaguid=74776f666f6c642d66616b652d6b6579

begin present
key -- info
expect "devices=1" "open=FIDO_ERR_SUCCESS" "fido2=1" "has_uv=1" "supports_pin=0" "info_aaguid=$default_aaguid"
log_is manifest open getInfo getInfo close
key -- dlopen
expect "dlopen=ok" "dlopen_devices=1" "dlopen_path=twofold-fake-fido:0"
log_is "dlopen libfido2.so.1" manifest

begin es256
key -- register es256 "$work/es256.cred"
expect "make_cred=FIDO_ERR_SUCCESS" "fmt=packed" "flags=0x41" "count=0" "aaguid=$default_aaguid" \
	"verify_self=FIDO_ERR_SUCCESS" "verify_x5c=FIDO_ERR_INVALID_ARGUMENT" "x5c_len=0"
log_is manifest open getInfo makeCredential close
key -- assert "$work/es256.cred"
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x01" "count=1" "id_match=1" "verify=FIDO_ERR_SUCCESS"
log_is manifest open getInfo "getAssertion up=1 uv=0" close
key -- assert "$work/es256.cred" uv=1
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x05" "count=2" "verify=FIDO_ERR_SUCCESS"
log_is manifest open getInfo "getAssertion up=1 uv=1" close
key -- assert "$work/es256.cred" up=0
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x00" "count=3" "verify=FIDO_ERR_SUCCESS"
log_is manifest open getInfo "getAssertion up=0 uv=0" close
key -- register es256 "$work/es256-uv.cred" uv=1
expect "make_cred=FIDO_ERR_SUCCESS" "flags=0x45" "verify_self=FIDO_ERR_SUCCESS"

begin eddsa
key TWOFOLD_FAKE_FIDO_ALG=eddsa -- register es256 "$work/unused.cred"
expect "make_cred=FIDO_ERR_UNSUPPORTED_ALGORITHM"
key TWOFOLD_FAKE_FIDO_ALG=eddsa -- register eddsa "$work/eddsa.cred"
expect "make_cred=FIDO_ERR_SUCCESS" "flags=0x41" "verify_self=FIDO_ERR_SUCCESS"
key -- assert "$work/eddsa.cred"
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x01" "count=1" "verify=FIDO_ERR_SUCCESS"

begin exclude
registered es256 "$work/exclude.cred"
key -- register es256 "$work/unused.cred" exclude="$work/exclude.cred"
expect "make_cred=FIDO_ERR_CREDENTIAL_EXCLUDED"
log_is manifest open getInfo makeCredential close
# The exclude list only names credentials of the same relying party.
key -- register es256 "$work/other-rp.cred" exclude="$work/exclude.cred" rpid=pam://other.test
expect "make_cred=FIDO_ERR_SUCCESS"

begin unknown
registered es256 "$work/unknown.cred"
key -- assert "$work/unknown.cred" unknown=1
expect "get_assert=FIDO_ERR_NO_CREDENTIALS"
log_is manifest open getInfo "getAssertion up=1 uv=0" close
key -- assert "$work/unknown.cred" rpid=pam://other.test
expect "get_assert=FIDO_ERR_NO_CREDENTIALS"
key -- assert "$work/es256.cred"
expect "get_assert=FIDO_ERR_NO_CREDENTIALS"

begin absent
key TWOFOLD_FAKE_FIDO=absent -- info
expect "manifest=FIDO_ERR_SUCCESS" "devices=0"
lacks "open="
log_is manifest

begin nolib
key TWOFOLD_FAKE_FIDO=nolib -- dlopen
expect "dlopen=failed"
log_is "dlopen libfido2.so.1"

# hang ARGS...: the key never answers; libfido2 gives up after the timeout set with
# fido_dev_set_timeout (here 1.5 s), with FIDO_ERR_RX as for a silent USB key.
hangs() {
	local result ms
	key TWOFOLD_FAKE_FIDO=hang -- "$@" timeout=1500
	expect "open=FIDO_ERR_SUCCESS"
	result=$(sed -n 's/^\(make_cred\|get_assert\)=//p' <<<"$out")
	[ "$result" = FIDO_ERR_RX ] || mismatch "$1: expected FIDO_ERR_RX, got '$result'"
	ms=$(value elapsed_ms)
	if [ -z "$ms" ] || [ "$ms" -lt 1000 ] || [ "$ms" -gt 3000 ]; then
		mismatch "$1: gave up after '$ms' ms, not about 1500"
	fi
}

begin hang
registered es256 "$work/hang.cred"
hangs register es256 "$work/unused.cred"
hangs assert "$work/hang.cred"
log_is manifest open getInfo makeCredential close manifest open getInfo "getAssertion up=1 uv=0" close

begin up-missing
registered es256 "$work/up.cred"
key TWOFOLD_FAKE_FIDO_UP=0 -- assert "$work/up.cred"
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x00" "verify=FIDO_ERR_INVALID_PARAM"
key TWOFOLD_FAKE_FIDO_UP=0 -- assert "$work/up.cred" uv=1
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x04" "verify=FIDO_ERR_INVALID_PARAM"

begin counter
registered es256 "$work/counter.cred"
for step in normal:1 normal:2 backwards:1 backwards:0 backwards:0 zero:0 normal:1 zero:0 normal:2; do
	key TWOFOLD_FAKE_FIDO_COUNTER="${step%:*}" -- assert "$work/counter.cred"
	expect "get_assert=FIDO_ERR_SUCCESS" "count=${step#*:}" "verify=FIDO_ERR_SUCCESS"
done

begin rpid-wrong
registered es256 "$work/rpid.cred"
key TWOFOLD_FAKE_FIDO_RPID=wrong -- assert "$work/rpid.cred"
expect "get_assert=FIDO_ERR_SUCCESS" "verify=FIDO_ERR_INVALID_PARAM"
key TWOFOLD_FAKE_FIDO_RPID=wrong -- register es256 "$work/rpid-wrong.cred"
expect "make_cred=FIDO_ERR_SUCCESS" "verify_self=FIDO_ERR_INVALID_PARAM"

begin uv-none
key TWOFOLD_FAKE_FIDO_UV=none -- info
expect "has_uv=0" "supports_pin=0"
key TWOFOLD_FAKE_FIDO_UV=none -- register es256 "$work/unused.cred" uv=1
expect "make_cred=FIDO_ERR_UNSUPPORTED_OPTION"
key TWOFOLD_FAKE_FIDO_UV=none -- register es256 "$work/uv-none.cred"
expect "make_cred=FIDO_ERR_SUCCESS" "flags=0x41" "verify_self=FIDO_ERR_SUCCESS"
key TWOFOLD_FAKE_FIDO_UV=none -- assert "$work/uv-none.cred" uv=1
expect "get_assert=FIDO_ERR_UNSUPPORTED_OPTION"
key TWOFOLD_FAKE_FIDO_UV=none -- assert "$work/uv-none.cred"
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x01" "verify=FIDO_ERR_SUCCESS"

begin uv-pin
pin=(TWOFOLD_FAKE_FIDO_UV=pin)
key "${pin[@]}" -- info
expect "has_uv=0" "supports_pin=1" "has_pin=1"
key "${pin[@]}" -- register es256 "$work/unused.cred"
expect "make_cred=FIDO_ERR_PIN_REQUIRED"
: >"$log"
key "${pin[@]}" -- register es256 "$work/pin.cred" uv=1 pin=123456
expect "make_cred=FIDO_ERR_SUCCESS" "flags=0x45" "verify_self=FIDO_ERR_SUCCESS"
log_is manifest open getInfo "clientPIN sub=2" "clientPIN sub=5" makeCredential close
key "${pin[@]}" -- assert "$work/pin.cred" uv=1 pin=123456
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x05" "verify=FIDO_ERR_SUCCESS"
log_is manifest open getInfo "clientPIN sub=2" "clientPIN sub=5" "getAssertion up=1 uv=1" close
key "${pin[@]}" -- assert "$work/pin.cred" uv=1
expect "get_assert=FIDO_ERR_UNSUPPORTED_OPTION"
key "${pin[@]}" -- assert "$work/pin.cred"
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x01"
key "${pin[@]}" TWOFOLD_FAKE_FIDO_PIN=2468 -- assert "$work/pin.cred" uv=1 pin=2468
expect "get_assert=FIDO_ERR_SUCCESS" "flags=0x05" "verify=FIDO_ERR_SUCCESS"
# Eight wrong PINs block it (the last answer is PIN_BLOCKED); then even the right one is refused.
for attempt in 1 2 3 4 5 6 7 8; do
	key "${pin[@]}" -- assert "$work/pin.cred" uv=1 pin=000000
	if [ "$attempt" -lt 8 ]; then
		expect "get_assert=FIDO_ERR_PIN_INVALID"
	else
		expect "get_assert=FIDO_ERR_PIN_BLOCKED"
	fi
done
key "${pin[@]}" -- assert "$work/pin.cred" uv=1 pin=123456
expect "get_assert=FIDO_ERR_PIN_BLOCKED"

begin aaguid
aaguid=00112233445566778899aabbccddeeff
key TWOFOLD_FAKE_FIDO_AAGUID=$aaguid -- info
expect "info_aaguid=$aaguid"
key TWOFOLD_FAKE_FIDO_AAGUID=$aaguid -- register es256 "$work/aaguid.cred"
expect "make_cred=FIDO_ERR_SUCCESS" "aaguid=$aaguid" "verify_self=FIDO_ERR_SUCCESS"

begin bad-knob
key TWOFOLD_FAKE_FIDO_AAGUID=0011 -- info
expect "fake_fido: TWOFOLD_FAKE_FIDO_AAGUID=0011 is not 32 hex digits"
lacks "devices="
key TWOFOLD_FAKE_FIDO_COUNTER=sideways -- info
expect "fake_fido: TWOFOLD_FAKE_FIDO_COUNTER=sideways is not a known value"

# Full attestation: a test CA, an attestation certificate with the FIDO AAGUID extension.
begin attestation
ca=$work/ca
mkdir "$ca"
aaguid_der=$(sed 's/../&:/g; s/:$//' <<<"$default_aaguid")
printf 'basicConstraints=critical,CA:FALSE\n1.3.6.1.4.1.45724.1.1.4=DER:04:10:%s\n' "$aaguid_der" >"$ca/att.ext"
if ! openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$ca/ca.key" \
	-out "$ca/ca.pem" -days 30 -subj "/CN=Twofold Test Attestation CA" 2>"$ca/err" ||
	! openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$ca/att.key" \
	-out "$ca/att.csr" -subj "/C=SE/O=Twofold Test/OU=Authenticator Attestation/CN=Twofold Fake Key" 2>>"$ca/err" ||
	! openssl x509 -req -in "$ca/att.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -set_serial 1 -days 30 \
	-extfile "$ca/att.ext" -outform DER -out "$ca/att.der" 2>>"$ca/err"; then
	out=$(cat "$ca/err")
	mismatch "openssl could not make the test CA"
fi
for alg in es256 eddsa; do
	key TWOFOLD_FAKE_FIDO_ALG=$alg TWOFOLD_FAKE_FIDO_ATTESTATION="$ca/att.key:$ca/att.der" -- \
		register $alg "$work/att-$alg.cred" x5c="$work/x5c-$alg.der"
	expect "make_cred=FIDO_ERR_SUCCESS" "fmt=packed" "verify_x5c=FIDO_ERR_SUCCESS" \
		"verify_self=FIDO_ERR_INVALID_ARGUMENT" "x5c_len=$(wc -c <"$ca/att.der")"
	cmp -s "$ca/att.der" "$work/x5c-$alg.der" || mismatch "$alg: x5c is not the attestation certificate"
	verified=$(openssl verify -CAfile "$ca/ca.pem" <(openssl x509 -inform DER -in "$work/x5c-$alg.der") 2>&1)
	[ "${verified##*: }" = OK ] || { out=$verified; mismatch "$alg: x5c does not chain to the test CA"; }
	key -- assert "$work/att-$alg.cred"
	expect "get_assert=FIDO_ERR_SUCCESS" "verify=FIDO_ERR_SUCCESS"
done

if [ "$failures" -ne 0 ]; then
	echo "fake_fido_check.sh: $failures mismatch(es)"
	exit 1
fi
echo "fake_fido_check.sh: all scenarios passed"
