#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh machine of this kind,
# makes sure PostgreSQL runs, then runs the whole suite on SQLite and again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v clamscan >/dev/null || need+=(clamav)
# The console's browser test: Debian's Chromium and its WebDriver, and CJK fonts for the pages.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Python tools in a virtual environment, never the system's Python: bagit-python (an independent
# BagIt validator), cryptography (the independent checker of log proofs, tests/interop/),
# openapi-spec-validator and schemathesis (the OpenAPI description checked and fuzzed against a
# live server), selenium (the console driven in Chromium). Its bin/ goes first on PATH, so the
# tests' `python3` is the venv's (the standard library is the same).
PY_VENV="${GUIDANG_PY_VENV:-$PWD/target/py-venv}"
PY_TOOLS=(bagit cryptography 'openapi-spec-validator==0.9.*' 'schemathesis==4.32.*' 'selenium==4.*')
if [ ! -x "$PY_VENV/bin/python3" ] || ! "$PY_VENV/bin/python3" -c 'import bagit, cryptography, selenium' 2>/dev/null \
  || [ ! -x "$PY_VENV/bin/schemathesis" ] || [ ! -x "$PY_VENV/bin/openapi-spec-validator" ]; then
  python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/pip" install -q "${PY_TOOLS[@]}"
fi
export PATH="$PY_VENV/bin:$PATH"
# An S3-compatible server for the object-store test (moto's, from PyPI), in its own venv.
MOTO_VENV="${GUIDANG_MOTO_VENV:-$PWD/target/moto-venv}"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q 'moto[server]'
fi
export GUIDANG_MOTO_SERVER="$MOTO_VENV/bin/moto_server"

# PostgreSQL on 127.0.0.1:5432 with trust auth (the machine provides it; start it if it is down).
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
# Each test creates its own database; drop those an earlier run left behind.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'guidang_test_%'" |
  while read -r db; do psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS \"$db\"" || true; done

echo "== tests on SQLite"
GUIDANG_TEST_DB=sqlite cargo test --all-targets
echo "== tests on PostgreSQL"
GUIDANG_TEST_DB=postgres cargo test --tests
