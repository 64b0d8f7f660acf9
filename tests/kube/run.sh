#!/usr/bin/env bash
# Every test that needs the real kube-apiserver and etcd: builds or reuses the binaries
# (tests/kube/build.sh; minutes the first time, then cached outside the clone), runs the
# real-server tests (capt-host's tests/real, and the tests of tests/operator that run on both
# backends, their `::real` half), and ends with the plain line `N passed, M failed`.
# Extra arguments go to the test binaries (a name filter, --nocapture...); in tests/operator a
# name filter selects tests in addition to `::real`.
set -uo pipefail
cd "$(dirname "$0")/../.."

bash tests/kube/build.sh >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test -p capt-host --test real -- "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
cargo test -p capt-host --test operator -- ::real "$@" 2>&1 | tee -a "$log"
operator_status=${PIPESTATUS[0]}
if [[ $status -eq 0 ]]; then
    status=$operator_status
fi
# Sum the `test result:` lines of every test binary (and doc tests).
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
        if ($(i) ~ /^passed;?$/) p += $(i - 1)
        if ($(i) ~ /^failed;?$/) f += $(i - 1)
    }
} END { print p + 0, f + 0 }' "$log")
if [[ $status -ne 0 && $failed -eq 0 ]]; then
    failed=1 # the build or a test binary failed before reporting
fi
echo "$passed passed, $failed failed"
exit "$status"
