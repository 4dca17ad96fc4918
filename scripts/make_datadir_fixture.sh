#!/usr/bin/env bash
# Makes fixtures/datadir-<tag>/: a data directory written by a given build of guidang, so that the
# tests can prove a newer build still starts on it and that its packages still verify (upgrade
# path). It holds two archived cases (one online, one imported), a retention-rule version, the
# filing of 2025, a token of each role (listed in tokens.txt) and the transparency log.
# Usage: scripts/make_datadir_fixture.sh TAG [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
tag="$1"
bin="${2:-target/release/guidang}"
out="fixtures/datadir-$tag"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
export GUIDANG_DATA_DIR="$work/data" GUIDANG_LISTEN=127.0.0.1:18090
unset DATABASE_URL GUIDANG_OBJECT_STORE
: >"$work/tokens.txt"
for role in archivist auditor admin; do
  echo "$role $("$bin" token create --role $role --name "fixture-$role")" >>"$work/tokens.txt"
done
echo "submitter $("$bin" token create --role submitter --org 11370102MB2854637K --name fixture-submitter)" >>"$work/tokens.txt"
tok() { awk -v r="$1" '$1==r {print $2}' "$work/tokens.txt"; }
"$bin" serve >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
curl -sf -X PUT http://127.0.0.1:18090/api/v1/retention/rules -H "Authorization: Bearer $(tok admin)" \
  -H 'Content-Type: application/json' \
  -d '{"rules":[{"task_type":"XK","retention":"Y","basis":"fixture rule: licences permanently"}]}' >/dev/null
curl -sf -X POST http://127.0.0.1:18090/api/v1/cases -H "Authorization: Bearer $(tok submitter)" \
  -H 'Content-Type: application/zip' --data-binary @fixtures/valid/food-licence.zip >"$work/case1.json"
"$bin" import fixtures/valid/with-docx.zip >/dev/null
curl -sf -X POST http://127.0.0.1:18090/api/v1/filings -H "Authorization: Bearer $(tok archivist)" \
  -H 'Content-Type: application/json' -d '{"year":2025}' >"$work/filing.json"
curl -sf http://127.0.0.1:18090/api/v1/keys >"$work/keys.json"
kill -TERM $pid; wait $pid || true
python3 - "$work/data/guidang.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()
PY
rm -rf "$out"; mkdir -p "$out"
cp -r "$work/data/guidang.db" "$work/data/objects" "$work/data/keys" "$out/"
cp "$work/tokens.txt" "$work/keys.json" "$out/"
git -C . rev-parse HEAD >"$out/made-by-commit.txt" 2>/dev/null || true
echo "made $out"; ls -R "$out" | head -30
