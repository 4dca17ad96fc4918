#!/usr/bin/env bash
# Filing benchmark (issue 4): generate N synthetic cases of 2025 (each pointing at one real,
# signed package), then time `guidang filing run --year 2025` — the real binary, its seal check
# of every package, the coding, the register and the form — and its peak memory. Run for two
# sizes to show that memory does not grow with the case count; SQLite, then PostgreSQL.
#
#   bash scripts/bench_filing.sh [N] [SMALL_N]      (defaults 1000000 and 100000; BACKENDS="postgres" for one)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
SMALL="${2:-100000}"
cargo build --release --quiet --bin guidang --example filing_gen
BIN=target/release/guidang
GEN=target/release/examples/filing_gen

run() { # backend cases
  local backend=$1 n=$2 dir url
  dir=$(mktemp -d)
  if [ "$backend" = postgres ]; then
    local name="guidang_bench_$$_$n"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
    url="postgres://postgres@127.0.0.1:5432/$name"
  else
    url="sqlite://$dir/guidang.db?mode=rwc"
  fi
  export GUIDANG_DATA_DIR="$dir" DATABASE_URL="$url" GUIDANG_LOG=warn
  "$GEN" "$n"
  /usr/bin/time -f "%e %M" -o "$dir/time" "$BIN" filing run --year 2025 >"$dir/out"
  read -r secs kib <"$dir/time"
  local cps
  cps=$(python3 -c "print(round($n / $secs))")
  echo "RESULT backend=$backend cases=$n seconds=$secs cases_per_s=$cps peak_rss_mib=$((kib / 1024))"
  grep -E "^filed" "$dir/out" | cut -c1-160
  if [ "$backend" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $name"
  fi
  rm -rf "$dir"
}

for backend in ${BACKENDS:-sqlite postgres}; do
  run "$backend" "$SMALL"
  run "$backend" "$N"
done
