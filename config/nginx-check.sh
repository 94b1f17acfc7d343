#!/usr/bin/env bash
# Syntax-check both nginx configs with the real nginx binary (`nginx -t`).
# Needs: apt-get install nginx-light openssl gettext-base. Installs nothing itself.
# Works as root or as a normal user; everything it writes goes to a temp dir.
# Single-quoted ${NAME} strings below are literal on purpose.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. The integration-test template, rendered with throwaway values.
export PREFIX=$tmp/test LISTEN_PORT=18080 UPSTREAM_1=127.0.0.1:18101 UPSTREAM_2=127.0.0.1:18102
mkdir -p "$PREFIX"
envsubst '${PREFIX} ${LISTEN_PORT} ${UPSTREAM_1} ${UPSTREAM_2}' \
  <"$here/nginx.test.conf.template" >"$PREFIX/nginx.conf"
if grep -nF '${' "$PREFIX/nginx.conf"; then echo "unrendered placeholder" >&2; exit 1; fi
nginx -t -q -p "$PREFIX" -e "$PREFIX/error.log" -c "$PREFIX/nginx.conf"
echo "ok: nginx.test.conf.template"

# 2. The production example, with a throwaway self-signed cert in place of the
# placeholder paths and log/pid paths moved into the temp dir.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mcp.example.com \
  -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" 2>/dev/null
sed -e "s#/etc/nginx/tls/#$tmp/#" \
    -e "s#/var/log/nginx/#$tmp/#" \
    -e "s#/run/nginx.pid#$tmp/nginx.pid#" \
    "$here/nginx.conf" >"$tmp/nginx.conf"
# As a normal user: drop `user` (root-only) and move 80/443 to free high
# ports, because `nginx -t` really binds the listen sockets.
if [ "$(id -u)" != 0 ]; then
  sed -i -E -e '/^user /d' \
    -e 's/(listen +(\[::\]:)?)80;/\118081;/' \
    -e 's/(listen +(\[::\]:)?)443 /\118443 /' "$tmp/nginx.conf"
fi
nginx -t -q -p "$tmp" -e "$tmp/error.log" -c "$tmp/nginx.conf"
echo "ok: nginx.conf"
