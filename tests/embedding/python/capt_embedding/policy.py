"""Loads a ``capt:policy`` component with wasmtime-py (``wasmtime.component``), the way a
Python user would embed it.

Like the Rust host (``host/runtime/src/engine.rs``, ``host/runtime/src/wasm.rs``): the component is compiled
once and linked with the one import, ``capt:policy/log``; every call gets a fresh ``Store`` and
instance with a memory limit and an epoch deadline (a background thread advances the engine's
epoch every 10 ms), so no state survives a call and a runaway call is interrupted.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional

import wasmtime
from wasmtime import component as wc

from .world import ObjectRef

#: Log levels of ``capt:policy/log``, lowest first.
LEVELS = ("trace", "debug", "info", "warn", "error")

LOG_IMPORT = "capt:policy/log"
RECONCILER_EXPORT = "capt:policy/reconciler"
CONTRACT_VERSION = "0.1.0"


@dataclass(frozen=True)
class Limits:
    """The Rust host's default limits (``Limits::default`` in host/runtime/src/engine.rs)."""

    deadline_seconds: float = 1.0
    memory_bytes: int = 64 << 20
    table_elements: int = 100_000
    response_bytes: int = 4 << 20
    log_message_bytes: int = 4 << 10
    log_records: int = 256


EPOCH_TICK_SECONDS = 0.010


class PolicyError(Exception):
    """Why a call failed, worded like the Rust host's ``PolicyError``; ``kind`` is its short
    name (``rejected``, ``trap``, ``deadline``, ...)."""

    def __init__(self, kind: str, message: str, variant: Any = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.variant = variant


class LoadError(Exception):
    pass


_ERROR_PREFIX = {
    "invalid-input": "invalid input",
    "unsupported-kind": "unsupported kind",
    "internal": "internal error",
}


def _compatible(name: str, interface: str) -> bool:
    """``interface@x.y.z`` with the contract's major version (and minor, while it is 0)."""
    found, sep, version = name.partition("@")
    if not sep or found != interface:
        return False
    parts = version.split("-")[0].split("+")[0].split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return False
    major, minor = int(parts[0]), int(parts[1])
    ours = [int(p) for p in CONTRACT_VERSION.split(".")]
    return (major, minor if major == 0 else 0) == (ours[0], ours[1] if ours[0] == 0 else 0)


def _record(**fields: Any) -> wc.Record:
    """A WIT record for wasmtime-py: fields are attributes named as in WIT (kebab-case)."""
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _field(record: Any, name: str) -> Any:
    return getattr(record, name.replace("_", "-"))


def _ref_to_wit(ref: ObjectRef) -> wc.Record:
    return _record(api_version=ref.api_version, kind=ref.kind, namespace=ref.namespace, name=ref.name)


def _ref_from_wit(r: Any) -> ObjectRef:
    return ObjectRef(_field(r, "api_version"), r.kind, r.namespace, r.name)


class _Ticker:
    """Advances the engine's epoch every tick while the engine lives."""

    @staticmethod
    def start(engine: wasmtime.Engine) -> None:
        ref = weakref.ref(engine)

        def run() -> None:
            while True:
                e = ref()
                if e is None:
                    return
                e.increment_epoch()
                del e
                time.sleep(EPOCH_TICK_SECONDS)

        threading.Thread(target=run, name="policy-epoch", daemon=True).start()


class _CallState:
    def __init__(self, limits: Limits) -> None:
        self.left = limits.log_records
        self.last_error: Optional[str] = None


class WasmPolicy:
    """A loaded policy: ``metadata`` (read once) and ``reconcile(request)``, one round."""

    def __init__(
        self,
        component_bytes: bytes,
        log_level: str = "warn",
        log: Optional[Callable[[str, str], None]] = None,
        limits: Limits = Limits(),
    ) -> None:
        if log_level not in LEVELS:
            raise ValueError(f"unknown log level {log_level}")
        self.limits = limits
        self._threshold = LEVELS.index(log_level)
        self._sink = log or (lambda level, message: print(f"policy {level}: {message}", file=sys.stderr))
        self._state: Optional[_CallState] = None

        config = wasmtime.Config()
        config.epoch_interruption = True
        # Guest recursion depth: 512 KiB of native stack per call, as in the Rust host.
        config.max_wasm_stack = 512 << 10
        self.engine = wasmtime.Engine(config)
        _Ticker.start(self.engine)
        try:
            self.component = wc.Component(self.engine, component_bytes)
        except wasmtime.WasmtimeError as e:
            raise LoadError(f"the component is invalid or could not be compiled: {e}") from None
        self._reconciler_name = self._check_world()

        self.linker = wc.Linker(self.engine)
        with self.linker.root() as root:
            with root.add_instance(f"{LOG_IMPORT}@{CONTRACT_VERSION}") as log_instance:
                log_instance.add_func("log", self._log)

        metadata = self._call(self._metadata_in)
        self.metadata = {
            "name": metadata.name,
            "version": metadata.version,
            "triggers": [self._kind(k) for k in metadata.triggers],
            "reads": [self._kind(k) for k in metadata.reads],
            "default_settings": _field(metadata, "default_settings"),
        }

    @staticmethod
    def _kind(k: Any) -> dict:
        return {"api_version": _field(k, "api_version"), "kind": k.kind, "namespaced": k.namespaced}

    def _check_world(self) -> str:
        """Checks the imports and exports against the contract; returns the reconciler's
        versioned export name."""
        ty = self.component.type
        for name in ty.imports(self.engine):
            if not _compatible(name, LOG_IMPORT):
                raise LoadError(f"the component imports `{name}`, but a policy may import only `{LOG_IMPORT}@0.1.x`")
        exports = list(ty.exports(self.engine))
        for name in exports:
            if name.partition("@")[0] == RECONCILER_EXPORT:
                if not _compatible(name, RECONCILER_EXPORT):
                    raise LoadError(f"the component exports `{name}`, but this host runs `{RECONCILER_EXPORT}@0.1.x`")
                return name
        raise LoadError(f"the component does not export `{RECONCILER_EXPORT}` (its exports: {', '.join(exports) or 'none'})")

    # ---- calls ----------------------------------------------------------------------------

    def reconcile(self, request: dict) -> dict:
        """Calls ``reconcile`` once (one round), in a fresh store, with a request in this host's
        model: ``{trigger, now_epoch_millis, objects: [(ObjectRef, manifest text)], missing,
        settings}``. Returns ``{patches, events, requeue_after_millis, requirements}`` or raises
        :class:`PolicyError`."""
        return self._call(lambda funcs, store: self._reconcile_in(funcs, store, request))

    def instance(self) -> Callable[[dict], dict]:
        """One store and instance for many calls (for benchmarks; the runner never reuses)."""
        store, funcs = self._instantiate()
        state = _CallState(self.limits)

        def reconcile(request: dict) -> dict:
            state.left = self.limits.log_records
            self._state = state
            try:
                store.set_epoch_deadline(self._deadline_ticks())
                return self._reconcile_in(funcs, store, request)
            except wasmtime.WasmtimeError as e:
                raise self._classify(e, state) from None
            finally:
                self._state = None

        return reconcile

    @staticmethod
    def _metadata_in(funcs: dict, store: wasmtime.Store) -> Any:
        metadata = funcs["metadata"](store)
        funcs["metadata"].post_return(store)
        return metadata

    def _reconcile_in(self, funcs: dict, store: wasmtime.Store, request: dict) -> dict:
        wit_request = _record(
            trigger=_ref_to_wit(request["trigger"]),
            now_epoch_millis=request["now_epoch_millis"],
            objects=[_record(ref=_ref_to_wit(ref), manifest=manifest) for ref, manifest in request["objects"]],
            missing=[_ref_to_wit(ref) for ref in request["missing"]],
            settings=request["settings"],
        )
        result = funcs["reconcile"](store, wit_request)
        funcs["reconcile"].post_return(store)
        # `result<response, error>`: wasmtime-py returns the response record itself, or the
        # error variant (cases `invalid-input`, `unsupported-kind`, `internal`).
        if isinstance(result, wc.Variant) and result.tag in ("ok", "err"):
            result = result.payload  # the tagged form, should a version return it
        if isinstance(result, wc.Variant):
            prefix = _ERROR_PREFIX.get(result.tag, result.tag)
            raise PolicyError("rejected", f"the policy rejected the request: {prefix}: {result.payload}", result)
        response = {
            "patches": [
                {
                    "target": _ref_from_wit(p.target),
                    "subresource": p.subresource,
                    "merge_patch": _field(p, "merge_patch"),
                    "resource_version": _field(p, "resource_version"),
                }
                for p in result.patches
            ],
            "events": [
                {
                    "regarding": _ref_from_wit(e.regarding),
                    "event_type": _field(e, "event_type"),
                    "reason": e.reason,
                    "message": e.message,
                }
                for e in result.events
            ],
            "requeue_after_millis": _field(result, "requeue_after_millis"),
            "requirements": [_ref_from_wit(r) for r in result.requirements],
        }
        size = _response_text_bytes(response)
        if size > self.limits.response_bytes:
            raise PolicyError(
                "response_too_large",
                f"the policy's response is too large ({size} bytes of text; limit: {self.limits.response_bytes})",
            )
        return response

    def _deadline_ticks(self) -> int:
        return max(1, -(-int(self.limits.deadline_seconds * 1000) // int(EPOCH_TICK_SECONDS * 1000)))

    def _instantiate(self) -> tuple[wasmtime.Store, dict]:
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=self.limits.memory_bytes, table_elements=self.limits.table_elements)
        store.set_epoch_deadline(self._deadline_ticks())
        try:
            instance = self.linker.instantiate(store, self.component)
        except wasmtime.WasmtimeError as e:
            raise PolicyError("instantiate", f"the policy could not be instantiated: {e}") from None
        interface = instance.get_export_index(store, self._reconciler_name)
        funcs = {
            name: instance.get_func(store, instance.get_export_index(store, name, interface))
            for name in ("metadata", "reconcile")
        }
        return store, funcs

    def _call(self, f: Callable[[dict, wasmtime.Store], Any]) -> Any:
        """``f(funcs, store)`` on a fresh store and instance with a fresh log budget; failures
        sorted like the Rust host sorts them."""
        state = _CallState(self.limits)
        self._state = state
        try:
            store, funcs = self._instantiate()
            return f(funcs, store)
        except wasmtime.WasmtimeError as e:
            raise self._classify(e, state) from None
        finally:
            self._state = None

    def _classify(self, error: Exception, state: _CallState) -> PolicyError:
        text = str(error)
        if "interrupt" in text:
            return PolicyError(
                "deadline",
                f"the policy did not answer within its deadline of {self.limits.deadline_seconds:g}s",
            )
        logged = "" if state.last_error is None else f" after logging: {state.last_error}"
        first_line = text.strip().splitlines()[0] if text.strip() else "trap"
        return PolicyError("trap", f"the policy trapped{logged}: {first_line}")

    def _log(self, _store: Any, level: str, message: str) -> None:
        state = self._state
        if state is None or state.left == 0:
            return
        state.left -= 1
        text = _truncate_utf8(message, self.limits.log_message_bytes)
        if level == "error":
            state.last_error = text
        if LEVELS.index(level) >= self._threshold:
            self._sink(level, text)
        if state.left == 0 and LEVELS.index("warn") >= self._threshold:
            self._sink("warn", "log budget of this call spent; further records dropped")


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def _response_text_bytes(response: dict) -> int:
    """Bytes of text a response carries (the Rust host's ``response_text_bytes``)."""

    def n(s: Optional[str]) -> int:
        return len(s.encode("utf-8")) if s else 0

    def ref(r: ObjectRef) -> int:
        return n(r.api_version) + n(r.kind) + n(r.name) + n(r.namespace)

    total = sum(ref(p["target"]) + n(p["merge_patch"]) + n(p["resource_version"]) for p in response["patches"])
    total += sum(ref(e["regarding"]) + n(e["reason"]) + n(e["message"]) for e in response["events"])
    total += sum(ref(r) for r in response["requirements"])
    return total
