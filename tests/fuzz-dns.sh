#!/usr/bin/env bash
# The fuzz target on cell-dns's request path (crates/cell-dns/fuzz: any bytes as a UDP
# packet, parsed, answered from the differential test's zone, encoded), run by libFuzzer
# for a bounded time from the seed queries in crates/cell-dns/fuzz/seeds. A crash, a hang
# (5 s per input) or a leak fails it; the input that did it is kept in
# crates/cell-dns/fuzz/artifacts/request/.
#   tests/fuzz-dns.sh [SECONDS]     (default 60; needs nightly Rust and cargo-fuzz: make deps)
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/check.sh
seconds=${1:-60}
require_tool cargo-fuzz "fuzz-dns: missing cargo-fuzz (make deps)"
rustup toolchain list | grep -q '^nightly' || _check_skip "fuzz-dns: missing the nightly toolchain (make deps)"

cp -r crates/cell-dns/fuzz/seeds/request "$tmp/corpus"
seeds=$(find "$tmp/corpus" -type f | wc -l)
if (cd crates/cell-dns/fuzz && cargo +nightly fuzz run request "$tmp/corpus" -- \
        -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1) >"$tmp/fuzz.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/fuzz.log")
    echo "# $runs inputs in $seconds s from $seeds seeds; corpus grew to $(find "$tmp/corpus" -type f | wc -l)"
    pass "cell-dns's request path survives ${runs:-?} fuzzed packets: no crash, hang or leak"
else
    tail -n 40 "$tmp/fuzz.log"
    fail "the fuzzer found an input that crashes or hangs cell-dns (see crates/cell-dns/fuzz/artifacts/request)"
fi
finish "# fuzzing passed"
