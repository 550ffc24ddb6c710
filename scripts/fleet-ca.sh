#!/usr/bin/env bash
# A small certificate authority for a Twofold fleet (README, "A fleet"), with openssl only.
#
#   fleet-ca.sh init DIR             two CAs in DIR: server-ca (signs the tier's servers) and host-ca
#                                    (signs every other host); separate, so a host's certificate can
#                                    never serve and a server's can never pose as a host
#   fleet-ca.sh server DIR NAME [IP] a server certificate: DIR/servers/NAME.pem and .key, SAN DNS:NAME
#                                    (and IP:IP), extended key usage serverAuth
#   fleet-ca.sh host DIR NAME        a host certificate: DIR/hosts/NAME.pem and .key, SAN DNS:NAME,
#                                    extended key usage clientAuth; register it on a server with
#                                    `twofoldctl host add NAME --certificate DIR/hosts/NAME.pem`
#
# Keys are EC P-256, written mode 0600. DAYS sets a certificate's lifetime (default 397; CAs 3650).
# Keep DIR's *-ca.key files off the hosts: copy each host only its own .pem and .key and the other
# side's CA certificate (servers get host-ca.pem as tls_client_ca, hosts get server-ca.pem as tls_server_ca).
set -euo pipefail
umask 077

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1 dir=$2
days=${DAYS:-397}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {
  local name=$1
  [ -e "$dir/$name.pem" ] && { echo "$dir/$name.pem exists; not replaced" >&2; return; }
  key "$dir/$name.key"
  openssl req -x509 -new -key "$dir/$name.key" -out "$dir/$name.pem" -days 3650 -subj "/CN=Twofold $name" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 0644 "$dir/$name.pem"
  echo "$dir/$name.pem"
}

leaf() {
  local ca=$1 folder=$2 name=$3 usage=$4 san=$5
  [[ $name =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] || { echo "not a host name: $name" >&2; exit 2; }
  [ -e "$dir/$ca.pem" ] || { echo "no $dir/$ca.pem: run '$0 init $dir' first" >&2; exit 1; }
  mkdir -p "$dir/$folder"
  key "$dir/$folder/$name.key"
  openssl req -new -key "$dir/$folder/$name.key" -subj "/CN=$name" -out "$dir/$folder/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$san" "$usage" \
    > "$dir/$folder/$name.ext"
  openssl x509 -req -in "$dir/$folder/$name.csr" -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" -CAcreateserial \
    -days "$days" -extfile "$dir/$folder/$name.ext" -out "$dir/$folder/$name.pem" 2>/dev/null
  rm -f "$dir/$folder/$name.csr" "$dir/$folder/$name.ext"
  chmod 0644 "$dir/$folder/$name.pem"
  echo "$dir/$folder/$name.pem ($(openssl x509 -in "$dir/$folder/$name.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f))"
}

case $command in
  init)
    mkdir -p "$dir"
    ca server-ca
    ca host-ca
    ;;
  server)
    [ $# -ge 3 ] || usage
    san="DNS:$3"
    [ $# -ge 4 ] && san="$san,IP:$4"
    leaf server-ca servers "$3" serverAuth "$san"
    ;;
  host)
    [ $# -eq 3 ] || usage
    leaf host-ca hosts "$3" clientAuth "DNS:$3"
    ;;
  *) usage ;;
esac
