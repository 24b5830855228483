#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, see docs/fuzzing.md) for a bounded time each, with cargo-fuzz on
# the nightly toolchain. Fails when a target crashes, and says where the crash artifact is.
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 60) each, one after another
#   scripts/fuzz.sh saml            one target
#   FUZZ_SECONDS=600 scripts/fuzz.sh   the long run
#
# FUZZ_JOBS (default 1): libFuzzer -jobs/-workers. FUZZ_SANITIZER (default none): cargo fuzz
# -s; the code under test is safe Rust and the C libraries (libxml2, xmlsec) are not
# instrumented either way, so address sanitizer mostly costs speed here.
#
# The committed seeds in fuzz/corpus/<target> are only read; what the fuzzer finds goes to
# fuzz/target/corpus/<target> (git-ignored), crashes to fuzz/artifacts/<target>/. To keep a
# crash as a regression seed, fix the bug, then copy the artifact into fuzz/corpus/<target>/:
# the stable replay (scripts/test.sh) runs it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

mapfile -t all < <(cargo +nightly fuzz list --fuzz-dir fuzz)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

echo "==> building ${targets[*]} (nightly, sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
  cargo +nightly fuzz build --fuzz-dir fuzz -s "$sanitizer" "$target"
done

failed=()
for target in "${targets[@]}"; do
  work=fuzz/target/corpus/$target
  artifacts=fuzz/artifacts/$target
  mkdir -p "$work" "$artifacts"
  log=fuzz/target/fuzz-$target.log
  before=$(find "$artifacts" -type f | wc -l)
  # Several jobs run as child processes, each logging to fuzz-<n>.log in the working directory.
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  echo "==> $target: ${seconds}s, $jobs job(s), log $log"
  # The first corpus directory receives what the fuzzer finds; the seeds are only read.
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb: 2 GiB is unbounded allocation.
  set +e
  cargo +nightly fuzz run --fuzz-dir fuzz -s "$sanitizer" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" "${parallel[@]}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  for job_log in fuzz-*.log; do
    [ -e "$job_log" ] || continue
    cat "$job_log" >>"$log"
    rm -f "$job_log"
  done
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tail -n 2 || true
  echo "    corpus: $(find "$work" -type f | wc -l) inputs found, $(find "fuzz/corpus/$target" -type f | wc -l) seeds"
  crashes=$(($(find "$artifacts" -type f | wc -l) - before))
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    echo "!!! $target failed (exit $status); crash artifacts in $artifacts/:" >&2
    find "$artifacts" -type f >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (reproduce: cargo +nightly fuzz run --fuzz-dir fuzz -s $sanitizer TARGET ARTIFACT)" >&2
  exit 1
fi
echo "no crash in ${targets[*]} (${seconds}s each)"
