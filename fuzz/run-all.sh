#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60).
#
#   fuzz/run-all.sh [SECONDS]
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP lets it take the
# nightly-only flags cargo-fuzz passes (sanitizers, coverage). Set
# GLINT_FUZZ_SANITIZER=none where the sanitizer runtime is missing.
# Inputs a target finds interesting go to fuzz/corpus/TARGET (gitignored);
# the seeds under fuzz/seeds/TARGET are read, never written. A crash
# leaves its input in fuzz/artifacts/TARGET and makes this script fail.
set -uo pipefail

secs="${1:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
sanitizer="${GLINT_FUZZ_SANITIZER:-address}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet || exit 1
fi

cargo fuzz build --sanitizer "$sanitizer" || exit 1

mapfile -t targets < <(cargo fuzz list)
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  dirs=("corpus/$t")
  [ -d "seeds/$t" ] && dirs+=("seeds/$t")
  log="$(mktemp)"
  echo "fuzz: $t for ${secs}s" >&2
  if cargo fuzz run --sanitizer "$sanitizer" "$t" "${dirs[@]}" -- -max_total_time="$secs" >"$log" 2>&1; then
    summary="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
    echo "fuzz: $t ok: ${summary:-no summary}; corpus $(find "corpus/$t" -type f | wc -l) inputs" >&2
  else
    failed+=("$t")
    echo "fuzz: $t FAILED; the last of its output:" >&2
    tail -n 60 "$log" >&2
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s each without a crash" >&2
