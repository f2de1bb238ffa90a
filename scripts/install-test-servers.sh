#!/usr/bin/env bash
# Installs the real servers the tests talk to (Redis, Dovecot, PostgreSQL) and the browser the console tests drive (Chromium) from Debian's packages when missing.
# Run as root (CI is); elsewhere it says what is missing and leaves the decision to you.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
# The PostgreSQL tests run initdb and pg_ctl themselves; Debian keeps them off PATH.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
# The console's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "the tests need these Debian packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
# The package starts a system Dovecot on the standard ports; the tests run their own, so stop it.
if command -v dovecot >/dev/null 2>&1; then
  (service dovecot stop || pkill -x dovecot || true) >/dev/null 2>&1
fi
