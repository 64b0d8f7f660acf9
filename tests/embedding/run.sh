#!/usr/bin/env bash
# Embeds the capt-status policy component in Node.js (jco) and Python (wasmtime-py), runs the
# scenario files through both, and checks that they agree with each other and with the Rust
# host, scenario by scenario and patch by patch. See docs/embedding.md.
#
#   tests/embedding/run.sh
#
# Installs pinned dependencies reproducibly and only inside the repository: `npm ci` from
# tests/embedding/node/package-lock.json into tests/embedding/node/node_modules, and
# `pip install --require-hashes` from tests/embedding/python/requirements.lock into
# tests/embedding/python/.venv (caches under target/embedding/). Builds the component with cargo
# (a no-op when it is up to date). Writes into target/embedding/:
#   node.txt, python.txt, rust.txt         each runner's output
#   node.jsonl, python.jsonl, rust.jsonl   the patch streams
# Exits non-zero if a runner fails a scenario, or if the hosts disagree.
#
# Environment:
#   CAPT_POLICY_MODULE=FILE   run this component instead of building the guest
#   CAPT_SCENARIOS=DIR        the scenarios (default: policies/capt-status/scenarios)
#   CAPT_EMBEDDING_RUST=0     skip the comparison with the Rust host (`capt-host test`)
#   CAPT_HOST_BIN=FILE        the capt-host binary to compare with (default: built with cargo)
#   CAPT_EMBEDDING_EXAMPLE=1  also build and run the Rust example host of docs/embedding.md
#                             (tests/embedding/rust; a release build of wasmtime: minutes)
#   CAPT_EMBEDDING_BENCH=N    also time N reconcile calls in each host, the Rust example included
#                             (numbers only, no assertion)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

scenarios="${CAPT_SCENARIOS:-policies/capt-status/scenarios}"
out="target/embedding"
mkdir -p "$out"
export npm_config_cache="$repo/$out/npm-cache"
export PIP_CACHE_DIR="$repo/$out/pip-cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '==> %s\n' "$*"; }

# A stamp of a lock file, so an unchanged installation is not redone.
stamp_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---- the component -------------------------------------------------------------------------------
if [[ -n "${CAPT_POLICY_MODULE:-}" ]]; then
  module="$CAPT_POLICY_MODULE"
else
  module="target/wasm32-unknown-unknown/guest/capt_status.wasm"
  step "building the component ($module)"
  cargo build --quiet -p capt-status --target wasm32-unknown-unknown --profile guest
fi
[[ -f "$module" ]] || { echo "error: no component at $module" >&2; exit 2; }

# ---- Node.js: npm ci from the lock file ----------------------------------------------------------
node_dir="tests/embedding/node"
node_stamp="$node_dir/node_modules/.capt-lock-sha256"
if [[ ! -f "$node_stamp" || "$(cat "$node_stamp")" != "$(stamp_of "$node_dir/package-lock.json")" ]]; then
  step "installing the Node.js dependencies (npm ci)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  stamp_of "$node_dir/package-lock.json" > "$node_stamp"
fi

# ---- Python: a venv inside the repository, hash-checked install ----------------------------------
py_dir="tests/embedding/python"
venv="$py_dir/.venv"
python="$(command -v python3.11 || command -v python3)"
if [[ ! -x "$venv/bin/python" ]]; then
  step "creating $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi
py_stamp="$venv/.capt-lock-sha256"
if [[ ! -f "$py_stamp" || "$(cat "$py_stamp")" != "$(stamp_of "$py_dir/requirements.lock")" ]]; then
  step "installing the Python dependencies (pip install --require-hashes)"
  "$venv/bin/python" -m pip install --quiet --require-hashes -r "$py_dir/requirements.lock"
  stamp_of "$py_dir/requirements.lock" > "$py_stamp"
fi

# ---- the runners ----------------------------------------------------------------------------------
passed=0
failed=0
check() { # check NAME STATUS
  if [[ "$2" == 0 ]]; then
    passed=$((passed + 1))
    echo "ok   $1"
  else
    failed=$((failed + 1))
    echo "FAIL $1"
  fi
}

run_host() { # run_host NAME COMMAND... : output to $out/NAME.txt, stream to $out/NAME.jsonl
  local name="$1"
  shift
  step "$name: $*"
  local status=0
  "$@" --patch-stream "$out/$name.jsonl" "$scenarios" > "$out/$name.txt" 2>&1 || status=$?
  # Failure details (everything but the per-scenario and closing lines), if any.
  grep -v -E '^(ok|FAIL) |^[0-9]+ passed, [0-9]+ failed$' "$out/$name.txt" | sed 's/^/    /' | head -n 60 || true
  tail -n 1 "$out/$name.txt"
  check "$name runner passes every scenario" "$status"
}

run_host node node "$node_dir/run-scenarios.mjs" --module "$module"
run_host python "$venv/bin/python" "$py_dir/run_scenarios.py" --module "$module"

# Per-scenario results: the `ok`/`FAIL` lines and the closing line.
results() { grep -E '^(ok|FAIL) |^[0-9]+ passed, [0-9]+ failed$' "$1" || true; }

agree() { # agree NAME A B : same per-scenario results and identical patch streams
  local status=0
  step "comparing $2 and $3"
  if ! diff <(results "$out/$2.txt") <(results "$out/$3.txt") > "$out/$2-$3.diff"; then
    echo "    per-scenario results differ:"
    head -n 40 "$out/$2-$3.diff" | sed 's/^/    /'
    status=1
  fi
  if [[ -f "$out/$2.jsonl" && -f "$out/$3.jsonl" ]]; then
    if ! cmp -s "$out/$2.jsonl" "$out/$3.jsonl"; then
      echo "    patch streams differ (first differing lines):"
      diff "$out/$2.jsonl" "$out/$3.jsonl" | head -n 6 | cut -c1-400 | sed 's/^/    /'
      status=1
    fi
  fi
  check "$1" "$status"
}

agree "node and python agree scenario by scenario and patch by patch" node python

if [[ "${CAPT_EMBEDDING_RUST:-1}" != 0 ]]; then
  step "rust: capt-host test --module $module"
  if [[ -n "${CAPT_HOST_BIN:-}" ]]; then
    capt_host="$CAPT_HOST_BIN"
  else
    cargo build --quiet -p capt-host
    capt_host="target/debug/capt-host"
  fi
  rm -f "$out/rust.jsonl"
  rust_status=0
  "$capt_host" test --module "$module" --patch-stream "$out/rust.jsonl" "$scenarios" > "$out/rust.txt" 2>&1 \
    || rust_status=$?
  tail -n 1 "$out/rust.txt"
  # The Rust runner's own failures are its tests' business; here only agreement counts.
  [[ "$rust_status" == 0 || "$rust_status" == 1 ]] || { cat "$out/rust.txt" >&2; check "rust runner ran" 1; }
  agree "node agrees with the rust host" rust node
  agree "python agrees with the rust host" rust python
fi

example="$out/rust-target/release/capt-embed-rust"
if [[ "${CAPT_EMBEDDING_EXAMPLE:-0}" != 0 || -n "${CAPT_EMBEDDING_BENCH:-}" ]]; then
  step "the Rust example host (tests/embedding/rust)"
  (cd tests/embedding/rust && cargo build --quiet --release --locked --target-dir "$repo/$out/rust-target")
  example_status=0
  "$example" "$module" metadata > "$out/rust-example-metadata.json" || example_status=$?
  # Its metadata() must be what the Node and Python hosts read (and a request must round-trip).
  node "$node_dir/run-scenarios.mjs" --module "$module" --bench 1 --bench-request "$out/bench-request.json" > /dev/null \
    || example_status=$?
  "$example" "$module" reconcile "$out/bench-request.json" > "$out/rust-example-response.json" || example_status=$?
  grep -q '"patches":\[{' "$out/rust-example-response.json" || example_status=1
  check "the Rust example host loads the component and reconciles" "$example_status"
fi

if [[ -n "${CAPT_EMBEDDING_BENCH:-}" ]]; then
  n="$CAPT_EMBEDDING_BENCH"
  step "per-call latency of reconcile, $n calls per host, on the same request"
  node "$node_dir/run-scenarios.mjs" --module "$module" --bench "$n" --bench-request "$out/bench-request.json" \
    | tee "$out/bench-node.txt"
  "$venv/bin/python" "$py_dir/run_scenarios.py" --module "$module" --bench "$n" --bench-request "$out/bench-request-python.json" \
    | tee "$out/bench-python.txt"
  cmp -s "$out/bench-request.json" "$out/bench-request-python.json" \
    || echo "    (warning: the Node and Python benchmark requests differ)"
  "$example" "$module" bench "$out/bench-request.json" "$n" | tee "$out/bench-rust.txt"
fi

echo "embedding: $passed passed, $failed failed"
[[ "$failed" == 0 ]]
