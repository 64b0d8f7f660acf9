#!/usr/bin/env python3
"""Runs scenario files against the capt-status policy component in Python, through wasmtime-py's
component API, with the semantics of ``capt-host test`` (docs/scenarios.md): one line per
scenario (``ok`` or ``FAIL``), the failures of a failed one, then ``N passed, M failed``. Exits 1
if any failed.

    python run_scenarios.py [--module FILE] [--patch-stream FILE] [--log-level LEVEL] [-v] PATH...
    python run_scenarios.py [--module FILE] --bench N [--bench-scenario FILE] [--bench-request FILE]

See docs/embedding.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Optional

from capt_embedding.jsonvalue import canonical
from capt_embedding.policy import LEVELS, LoadError, PolicyError, WasmPolicy
from capt_embedding.scenario import EmptySuite, ScenarioError, load_scenario, run_scenario, scenario_files, stream_line

REPO = Path(__file__).resolve().parents[3]
DEFAULT_MODULE = REPO / "target/wasm32-unknown-unknown/guest/capt_status.wasm"
DEFAULT_BENCH_SCENARIO = (
    REPO / "policies/capt-status/scenarios/happy-path/from-nothing-to-both-ready-with-the-cluster-updated.yaml"
)


def _indent(text: str, by: int) -> str:
    pad = " " * by
    return "\n".join(pad + line for line in text.split("\n"))


def _arguments(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Runs scenario files (or directories, searched recursively for .yaml/.yml) "
        "against a capt:policy component loaded with wasmtime-py, like `capt-host test`."
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="scenario files or directories")
    parser.add_argument("--module", default=str(DEFAULT_MODULE), metavar="FILE", help="the policy component (default: %(default)s)")
    parser.add_argument("--patch-stream", metavar="FILE", help="write one JSON line per final reconcile response (docs/embedding.md)")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("CAPT_POLICY_LOG", "warn"),
        choices=LEVELS,
        help="policy log records at or above this level go to stderr (default: $CAPT_POLICY_LOG or warn)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also print what every reconcile produced")
    parser.add_argument("--bench", type=int, metavar="N", help="time N reconcile calls of one realistic request and print the median")
    parser.add_argument("--bench-scenario", default=str(DEFAULT_BENCH_SCENARIO), metavar="FILE", help="the scenario the benchmark request comes from")
    parser.add_argument("--bench-request", metavar="FILE", help="also write the benchmark request as JSON (for other hosts' benchmarks)")
    args = parser.parse_args(argv)
    if args.bench is None and not args.paths:
        parser.error("give at least one scenario file or directory")
    if args.bench is not None and args.bench < 1:
        parser.error("--bench takes a positive number of calls")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = _arguments(argv)
    try:
        with open(args.module, "rb") as handle:
            policy = WasmPolicy(handle.read(), log_level=args.log_level)
    except (OSError, LoadError, PolicyError) as e:
        print(f"error: could not load the policy {args.module}: {e}", file=sys.stderr)
        return 2
    if args.bench is not None:
        return bench(policy, args.bench, args.bench_scenario, args.bench_request)
    return test(policy, args.paths, args.patch_stream, args.verbose)


def test(policy: WasmPolicy, paths: list[str], patch_stream: Optional[str], verbose: bool) -> int:
    try:
        files = scenario_files(paths)
    except EmptySuite as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stream = open(patch_stream, "w", encoding="utf-8", newline="\n") if patch_stream else None
    passed = failed = 0
    try:
        for path, relative in files:
            try:
                scenario = load_scenario(path)
            except (ScenarioError, ValueError, OSError) as e:
                failed += 1
                print(f"FAIL {path}: (not a valid scenario)")
                print(_indent(f"{path} is not a valid scenario\ncaused by: {e}", 4))
                continue
            outcome = run_scenario(scenario, policy)
            if outcome.passed:
                passed += 1
                print(f"ok   {path}: {outcome.name}")
            else:
                failed += 1
                print(f"FAIL {path}: {outcome.name}")
                for step, message in outcome.failures:
                    place = "setup" if step == 0 else f"step {step}"
                    print(_indent(f"{place}: {message}", 4))
            if verbose:
                for record in outcome.records:
                    print(f"    step {record.step}: reconcile {record.trigger}")
                    shown = f"error: {record.error}" if record.error is not None else stream_line(relative, record)
                    print(_indent(shown, 6))
            if stream:
                for record in outcome.records:
                    stream.write(stream_line(relative, record) + "\n")
            sys.stdout.flush()
    finally:
        if stream:
            stream.close()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def bench(policy: WasmPolicy, n: int, scenario_path: str, request_file: Optional[str] = None) -> int:
    """Times ``n`` calls of the largest request (by manifest bytes) that the scenario's
    reconciles send in a final round: the same input in every host."""
    scenario = load_scenario(scenario_path)
    largest: dict = {}
    largest_bytes = -1

    class Observing:
        metadata = policy.metadata

        @staticmethod
        def reconcile(request: dict) -> dict:
            nonlocal largest, largest_bytes
            response = policy.reconcile(request)
            size = sum(len(manifest.encode("utf-8")) for _, manifest in request["objects"])
            if not response["requirements"] and size > largest_bytes:
                largest, largest_bytes = copy.deepcopy(request), size
            return response

    run_scenario(scenario, Observing())
    if not largest:
        print(f"error: no reconcile of {scenario_path} completed", file=sys.stderr)
        return 2

    if request_file:
        with open(request_file, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(request_json(largest) + "\n")

    def timed(call) -> dict:
        for _ in range(min(50, n)):  # warm-up
            call()
        samples = []
        for _ in range(n):
            start = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - start) / 1e6)
        samples.sort()
        return {
            "median": statistics.median(samples),
            "p90": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
            "min": samples[0],
            "max": samples[-1],
        }

    fresh = timed(lambda: policy.reconcile(largest))
    reuse = policy.instance()
    reused = timed(lambda: reuse(largest))

    def fmt(s: dict) -> str:
        return f"median {s['median']:.3f} ms, p90 {s['p90']:.3f} ms, min {s['min']:.3f} ms, max {s['max']:.3f} ms"

    trigger = largest["trigger"]
    print(
        f"bench: python {platform.python_version()}, wasmtime-py {importlib_metadata.version('wasmtime')}; "
        f"request: {trigger} with {len(largest['objects'])} objects ({largest_bytes} bytes of manifests), "
        f"{len(largest['missing'])} missing"
    )
    print(f"bench: reconcile, fresh store and instance per call (as the runner does), n={n}: {fmt(fresh)}")
    print(f"bench: reconcile, one reused instance, n={n}: {fmt(reused)}")
    return 0


def request_json(request: dict) -> str:
    """A request as JSON: ``{trigger, nowEpochMillis, objects: [{ref, manifest}], missing,
    settings}`` (references ``{apiVersion, kind, namespace, name}``; manifests and settings as
    JSON text)."""

    def ref(r) -> dict:
        return {"apiVersion": r.api_version, "kind": r.kind, "namespace": r.namespace, "name": r.name}

    return canonical(
        {
            "trigger": ref(request["trigger"]),
            "nowEpochMillis": request["now_epoch_millis"],
            "objects": [{"ref": ref(r), "manifest": manifest} for r, manifest in request["objects"]],
            "missing": [ref(r) for r in request["missing"]],
            "settings": request["settings"],
        }
    )


if __name__ == "__main__":
    sys.exit(main())
