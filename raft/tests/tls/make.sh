#!/usr/bin/env bash
# Writes the bus TLS test certificates into folder $1 (EC P-256, valid 2 days): ca.crt;
# node.crt (IP 127.0.0.1) and elsewhere.crt (IP 10.9.9.9, another address: names are not
# checked), both from ca; rogue.crt from other-ca.crt. The tests run it once per run, so no
# key is ever committed.
set -euo pipefail
out=$1
mkdir -p "$out"
cd "$out"
ca() {
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
node() {
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:%s\n' "$3" > "$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$1"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
    -CAserial serial -out "$1.crt" -days 2 -extfile "$1.ext"
}
ca ca "shardai test cluster CA" 2>/dev/null
ca other-ca "another CA" 2>/dev/null
node node ca 127.0.0.1 2>/dev/null
node elsewhere ca 10.9.9.9 2>/dev/null
node rogue other-ca 127.0.0.1 2>/dev/null
