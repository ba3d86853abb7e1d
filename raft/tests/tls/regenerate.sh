#!/usr/bin/env bash
# Writes the bus TLS test certificates (valid for 100 years, EC P-256): ca.crt; node.crt
# (IP 127.0.0.1) and elsewhere.crt (IP 10.9.9.9, another address: names are not checked),
# both from ca; rogue.crt from other-ca.crt. The CA keys are thrown away.
set -euo pipefail
cd "$(dirname "$0")"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ca() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$T/$1.key" -out "$1.crt" -days 36500 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
node() {
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:%s\n' "$3" > "$T/ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$T/$1.csr" -subj "/CN=$1"
  openssl x509 -req -in "$T/$1.csr" -CA "$2.crt" -CAkey "$T/$2.key" -CAcreateserial \
    -CAserial "$T/serial" -out "$1.crt" -days 36500 -extfile "$T/ext"
}
ca ca "shardai test cluster CA"
ca other-ca "another CA"
node node ca 127.0.0.1
node elsewhere ca 10.9.9.9
node rogue other-ca 127.0.0.1
