"""Scenario files (docs/scenarios.md; ``host/core/src/scenario/``): reading them with the Rust
host's exact rules, running them over an in-memory :class:`World`, checking expectations."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import yaml

from .jsonvalue import canonical, loads, merge, mismatches
from .timeutil import epoch_millis, format_millis, parse_duration, parse_time
from .world import ObjectRef, World, WorldError, group_of

MAX_ROUNDS = 8

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# ---- finding files -----------------------------------------------------------------------------


def _components(path: str) -> list[str]:
    """The components of a path as Rust's ``Path::components`` sees them: ``/`` separated, empty
    and interior ``.`` components dropped (a leading ``.`` and a leading root are kept)."""
    parts = [c for i, c in enumerate(path.split("/")) if c != "" and (c != "." or i == 0)]
    return ["/", *parts] if path.startswith("/") else parts


def _path_key(path: str) -> list[bytes]:
    """Rust's ``Path`` order: component by component, each by bytes."""
    return [os.fsencode(c) for c in _components(path)]


def _relative_name(roots: list[str], file: str) -> str:
    """``file`` relative to the first directory argument it is under, ``/``-separated; a file
    given directly is named by its file name (as ``capt-host test`` names it)."""
    parts = _components(file)
    for root in roots:
        prefix = _components(root)
        if parts[: len(prefix)] == prefix:
            return "/".join(parts[len(prefix):])
    return parts[-1] if parts else file


class EmptySuite(Exception):
    """A folder without scenario files: a failed suite (exit 1), as in the Rust host."""


def scenario_files(paths: list[str]) -> list[tuple[str, str]]:
    """The scenario files under ``paths``: files as given, directories searched recursively for
    ``.yaml``/``.yml``; sorted like the Rust host sorts them, without duplicates. Each comes
    with its relative name: the ``file`` of the patch stream."""
    found: set[str] = set()
    roots: list[str] = []

    def walk(directory: str) -> None:
        for entry in os.scandir(directory):
            path = os.path.join(directory, entry.name)
            if entry.is_dir():
                walk(path)
            elif entry.name.endswith((".yaml", ".yml")):
                found.add(path)

    for path in paths:
        if os.path.isdir(path):
            roots.append(path)
            before = len(found)
            walk(path)
            if len(found) == before:
                raise EmptySuite(f"{path} holds no scenario files (.yaml or .yml)")
        else:
            if not os.path.exists(path):
                raise FileNotFoundError(f"could not read {path}")
            found.add(path)
    return [(path, _relative_name(roots, path)) for path in sorted(found, key=_path_key)]


# ---- reading a scenario: serde_yaml_ng's rules, node by node -----------------------------------


class ScenarioError(Exception):
    pass


def _fail(where: str, message: str) -> None:
    raise ScenarioError(f"{where}: {message}" if where else message)


def _is_plain(node: Any) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style in (None, "")


def _is_null_text(text: str) -> bool:
    return text in ("", "~", "null", "Null", "NULL")


def _is_null_node(node: Any) -> bool:
    return node is None or (_is_plain(node) and _is_null_text(node.value))


_DIGITS_BUT_NOT_NUMBER = re.compile(r"[-+]?0[0-9]+", re.ASCII)
_RUST_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", re.ASCII)
_RADIX = {"x": (16, re.compile(r"[0-9a-fA-F]+", re.ASCII)), "o": (8, re.compile(r"[0-7]+")), "b": (2, re.compile(r"[01]+"))}


def _parse_int(text: str) -> Optional[int]:
    """An integer as serde_yaml_ng reads a plain scalar (``12``, ``+1``, ``0x1F``, ``-0o7``,
    ``0b11``). Leading zeros (``0123``) make a string."""
    m = re.fullmatch(r"([-+]?)0([xob])(.*)", text, flags=re.ASCII | re.DOTALL)
    if m:
        radix, digits = _RADIX[m.group(2)]
        if digits.fullmatch(m.group(3)):
            value = int(m.group(3), radix)
            return -value if m.group(1) == "-" else value
    if _DIGITS_BUT_NOT_NUMBER.fullmatch(text) or not re.fullmatch(r"[-+]?[0-9]+", text, flags=re.ASCII):
        return None
    return int(text)


def _parse_float(text: str) -> Optional[float]:
    """A float as serde_yaml_ng reads a plain scalar (its ``parse_f64``)."""
    unpositive = text
    if text.startswith("+"):
        unpositive = text[1:]
        if unpositive.startswith(("+", "-")):
            return None
    if unpositive in (".inf", ".Inf", ".INF"):
        return float("inf")
    if text in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    if _RUST_FLOAT.fullmatch(unpositive):
        value = float(unpositive)
        if value not in (float("inf"), float("-inf")):
            return value
    return None


def _resolve_plain(text: str) -> Any:
    """A plain scalar resolved the way serde_yaml_ng resolves it into a ``serde_json::Value``
    (infinities and NaN become null)."""
    if _is_null_text(text):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    integer = _parse_int(text)
    if integer is not None:
        return integer
    if not _DIGITS_BUT_NOT_NUMBER.fullmatch(text):
        number = _parse_float(text)
        if number is not None:
            return number if number == number and abs(number) != float("inf") else None
    return text


def _to_value(node: Any, where: str) -> Any:
    """A node as a JSON value (what ``serde_json::Value`` gets from serde_yaml_ng)."""
    if node is None:
        return None
    if isinstance(node, yaml.ScalarNode):
        return _resolve_plain(node.value) if _is_plain(node) else node.value
    if isinstance(node, yaml.SequenceNode):
        return [_to_value(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
    out: dict[str, Any] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            _fail(where, "invalid type: a mapping key must be a string")
        if key.value in out:
            _fail(where, f'duplicate entry with key "{key.value}"')
        out[key.value] = _to_value(value, f"{where}.{key.value}")
    return out


def _struct(node: Any, where: str, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """The entries of a mapping node that must be the struct ``what``."""
    if not isinstance(node, yaml.MappingNode):
        got = "unit value" if _is_null_node(node) else type(node).__name__
        _fail(where, f"invalid type: {got}, expected struct {what}")
    out: dict[str, Any] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name not in fields:
            _fail(where, f"unknown field `{name}`, expected one of {', '.join(f'`{f}`' for f in fields)}")
        if name in out:
            _fail(where, f"duplicate field `{name}`")
        out[name] = value
    return out


def _string(node: Any, where: str) -> str:
    """A ``String`` field: any scalar, as written."""
    if node is None:
        return ""
    if not isinstance(node, yaml.ScalarNode):
        _fail(where, "invalid type, expected a string")
    return node.value


def _optional_string(node: Any, where: str) -> Optional[str]:
    """An ``Option<String>`` field: null-like plain scalars are None."""
    return None if _is_null_node(node) else _string(node, where)


def _sequence(node: Any, where: str) -> list:
    """A ``Vec<_>`` field: a sequence (null is an error)."""
    if not isinstance(node, yaml.SequenceNode):
        _fail(where, f"invalid type: {'unit value' if _is_null_node(node) else 'not a sequence'}, expected a sequence")
    return node.value


def _optional_count(node: Any, where: str) -> Optional[int]:
    """An ``Option<usize>`` field."""
    if _is_null_node(node):
        return None
    value = _parse_int(node.value) if _is_plain(node) else None
    if value is None or value < 0:
        _fail(where, f"invalid type: {canonical(getattr(node, 'value', None))}, expected usize")
    return value


@dataclass(frozen=True)
class Selector:
    """Names an object; ``api_version`` (only its group matters) and ``namespace`` optional."""

    kind: str
    name: str
    api_version: Optional[str] = None
    namespace: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}" if self.namespace is None else f"{self.kind}/{self.namespace}/{self.name}"


def _selector_from_value(value: Any, where: str) -> Selector:
    """A selector given as a JSON value (in ``reconcile``: serde_json's strict rules)."""
    if not isinstance(value, dict):
        _fail(where, f"invalid type: {canonical(value)}, expected struct Selector")
    for key in value:
        if key not in ("apiVersion", "kind", "namespace", "name"):
            _fail(where, f"unknown field `{key}`")

    def required(key: str) -> str:
        if key not in value:
            _fail(where, f"missing field `{key}`")
        if not isinstance(value[key], str):
            _fail(where, f"invalid type: {canonical(value[key])}, expected a string")
        return value[key]

    def optional(key: str) -> Optional[str]:
        v = value.get(key)
        if v is not None and not isinstance(v, str):
            _fail(where, f"invalid type: {canonical(v)}, expected a string")
        return v

    return Selector(kind=required("kind"), name=required("name"), api_version=optional("apiVersion"), namespace=optional("namespace"))


def _selector_from_node(node: Any, where: str) -> Selector:
    """A selector given directly in YAML (``delete``, ``absent``)."""
    f = _struct(node, where, "Selector", ("apiVersion", "kind", "namespace", "name"))
    for key in ("kind", "name"):
        if key not in f:
            _fail(where, f"missing field `{key}`")
    return Selector(
        kind=_string(f["kind"], where),
        name=_string(f["name"], where),
        api_version=_optional_string(f.get("apiVersion"), where),
        namespace=_optional_string(f.get("namespace"), where),
    )


@dataclass(frozen=True)
class Requeue:
    """An expected requeue: ``never``, ``exactly`` (``nanos``) or ``between`` (``low``/``high``,
    either may be None); durations in nanoseconds."""

    kind: str
    nanos: int = 0
    low: Optional[int] = None
    high: Optional[int] = None

    def accepts(self, millis: Optional[int]) -> bool:
        actual = None if millis is None else millis * 1_000_000
        if self.kind == "never":
            return actual is None
        if actual is None:
            return False
        if self.kind == "exactly":
            return actual == self.nanos
        return (self.low is None or actual >= self.low) and (self.high is None or actual <= self.high)

    def __str__(self) -> str:
        def show(nanos: Optional[int]) -> str:
            return "-" if nanos is None else format_millis(min(nanos // 1_000_000, 0xFFFFFFFFFFFFFFFF))

        if self.kind == "never":
            return "none"
        if self.kind == "exactly":
            return show(self.nanos)
        return f"between {show(self.low)} and {show(self.high)}"


def _requeue(node: Any, where: str) -> Requeue:
    """``none``, a duration, or ``{min, max}`` (serde's untagged enum over the resolved value:
    numbers are neither)."""
    value = _to_value(node, where)
    if isinstance(value, str):
        if value == "none":
            return Requeue("never")
        return Requeue("exactly", nanos=parse_duration(value))
    if isinstance(value, dict):

        def bound(key: str) -> Optional[int]:
            v = value.get(key)
            if v is None:
                return None
            if not isinstance(v, str):
                _fail(where, "data did not match any variant of untagged enum Raw")
            return parse_duration(v)

        return Requeue("between", low=bound("min"), high=bound("max"))
    _fail(where, "data did not match any variant of untagged enum Raw")
    raise AssertionError


@dataclass
class Expect:
    objects: list = field(default_factory=list)
    absent: list = field(default_factory=list)
    requeue_after: Optional[Requeue] = None
    events: Optional[list] = None
    patches: Optional[int] = None
    error: Optional[str] = None


@dataclass
class Step:
    at: Optional[int] = None
    after: Optional[int] = None
    apply: list = field(default_factory=list)
    delete: list = field(default_factory=list)
    reconcile: Optional[list] = None
    expect: Expect = field(default_factory=Expect)


@dataclass
class Scenario:
    name: str
    settings: Any
    objects: list
    steps: list


def _parse_expect(node: Any, where: str) -> Expect:
    f = _struct(node, where, "Expect", ("objects", "absent", "requeueAfter", "events", "patches", "error"))

    def values(key: str) -> list:
        return [_to_value(n, f"{where}.{key}[{i}]") for i, n in enumerate(_sequence(f[key], f"{where}.{key}"))]

    return Expect(
        objects=values("objects") if "objects" in f else [],
        absent=[_selector_from_node(n, f"{where}.absent[{i}]") for i, n in enumerate(_sequence(f["absent"], f"{where}.absent"))]
        if "absent" in f
        else [],
        requeue_after=_requeue(f["requeueAfter"], f"{where}.requeueAfter") if "requeueAfter" in f else None,
        events=values("events") if "events" in f and not _is_null_node(f["events"]) else None,
        patches=_optional_count(f["patches"], f"{where}.patches") if "patches" in f else None,
        error=_optional_string(f["error"], f"{where}.error") if "error" in f else None,
    )


def _parse_step(node: Any, where: str) -> Step:
    f = _struct(node, where, "Step", ("at", "after", "apply", "delete", "reconcile", "expect"))

    def wrap(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ScenarioError:
            raise
        except ValueError as e:
            _fail(where, f"{what}{e}")

    step = Step()
    if "reconcile" in f:
        value = _to_value(f["reconcile"], where)
        items = value if isinstance(value, list) else [value]
        step.reconcile = [_selector_from_value(v, f"{where}: invalid `reconcile`") for v in items]
    if "at" in f:
        step.at = wrap("", lambda: parse_time(_string(f["at"], where)))
    if "after" in f:
        step.after = wrap("", lambda: parse_duration(_string(f["after"], where)))
    if "apply" in f:
        step.apply = [_to_value(n, f"{where}.apply[{i}]") for i, n in enumerate(_sequence(f["apply"], f"{where}.apply"))]
    if "delete" in f:
        step.delete = [_selector_from_node(n, f"{where}.delete[{i}]") for i, n in enumerate(_sequence(f["delete"], f"{where}.delete"))]
    if "expect" in f:
        step.expect = wrap("", lambda: _parse_expect(f["expect"], f"{where}.expect"))
    return step


def load_scenario(path: str) -> Scenario:
    """Reads and parses one scenario file; raises :class:`ScenarioError` saying what is
    wrong."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ScenarioError(str(e)) from None
    if root is None:
        _fail("", "EOF while parsing a value")
    try:
        f = _struct(root, "", "Scenario", ("name", "settings", "objects", "steps"))
        if "name" not in f:
            _fail("", "missing field `name`")
        if "steps" not in f:
            _fail("", "missing field `steps`")
        return Scenario(
            name=_string(f["name"], "name"),
            settings=_to_value(f["settings"], "settings") if "settings" in f else None,
            objects=[_to_value(n, f"objects[{i}]") for i, n in enumerate(_sequence(f["objects"], "objects"))]
            if "objects" in f
            else [],
            steps=[_parse_step(n, f"steps[{i}]") for i, n in enumerate(_sequence(f["steps"], "steps"))],
        )
    except RecursionError:
        raise ScenarioError("recursion limit exceeded") from None


# ---- the requirement rounds (host/core/src/rounds.rs) -------------------------------------------------


class RoundError(Exception):
    """Why a reconcile (all its rounds) failed; the message is the Rust host's error chain."""


def merge_settings(default_settings: str, overrides: Any) -> str:
    """The policy's default settings merged (RFC 7396) with ``overrides``, as JSON text."""
    try:
        settings = loads(default_settings)
    except ValueError as e:
        raise RoundError(f"invalid settings: the policy's default settings: {e}") from None
    if not isinstance(settings, dict):
        raise RoundError("invalid settings: the policy's default settings are not a JSON object")
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise RoundError(f"invalid settings: the overrides are not an object: {canonical(overrides)}")
        settings = merge(settings, overrides)
    return canonical(settings)


def reconcile_rounds(
    call: Callable[[dict], dict],
    source: Callable[[ObjectRef], Optional[dict]],
    trigger: ObjectRef,
    now_epoch_millis: int,
    settings: str,
) -> dict:
    """Calls the policy with the trigger alone, then, while the response lists requirements,
    fetches each into ``objects`` or ``missing`` and calls again, at most MAX_ROUNDS times."""

    def fetch(ref: ObjectRef) -> Optional[str]:
        manifest = source(ref)
        return None if manifest is None else canonical(manifest)

    manifest = fetch(trigger)
    if manifest is None:
        raise RoundError(f"the trigger {trigger} does not exist")
    request = {
        "trigger": trigger,
        "now_epoch_millis": now_epoch_millis,
        "objects": [(trigger, manifest)],
        "missing": [],
        "settings": settings,
    }
    round_ = 0
    while True:
        round_ += 1
        try:
            response = call(request)
        except Exception as e:  # noqa: BLE001 - every failure of a round is reported with it
            raise RoundError(f"the policy failed in round {round_}: {e}") from e
        if not response["requirements"]:
            return response
        if round_ == MAX_ROUNDS:
            pending = ", ".join(str(r) for r in response["requirements"])
            raise RoundError(f"the policy still requires {pending} after {MAX_ROUNDS} rounds")
        for ref in response["requirements"]:
            known = [r for r, _ in request["objects"]] + request["missing"]
            if any(r.same_object(ref) for r in known):
                continue
            found = fetch(ref)
            if found is None:
                request["missing"].append(ref)
            else:
                request["objects"].append((ref, found))


# ---- running a scenario --------------------------------------------------------------------------


class _Ambiguous(Exception):
    pass


def locate(world: World, selector: Selector) -> Optional[ObjectRef]:
    """The one object ``selector`` names (None if none); raises if it names several."""
    group = None if selector.api_version is None else group_of(selector.api_version)
    found = [
        ref
        for ref, _ in world.objects()
        if ref.kind == selector.kind
        and ref.name == selector.name
        and (selector.namespace is None or ref.namespace == selector.namespace)
        and (group is None or ref.group == group)
    ]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    listed = ", ".join(f"{r.api_version} {r}" for r in found)
    raise _Ambiguous(f"{selector} is ambiguous (it matches {listed}); give apiVersion and namespace")


def _reference_view(r: ObjectRef) -> dict:
    view: dict[str, Any] = {"apiVersion": r.api_version, "kind": r.kind}
    if r.namespace is not None:
        view["namespace"] = r.namespace
    view["name"] = r.name
    return view


def _event_view(e: dict) -> dict:
    return {
        "regarding": _reference_view(e["regarding"]),
        "type": "Warning" if e["event_type"] == "warning" else "Normal",
        "reason": e["reason"],
        "message": e["message"],
    }


def _parsed_merge_patch(p: dict) -> Any:
    try:
        return loads(p["merge_patch"])
    except ValueError:
        return p["merge_patch"]


def _patch_view(p: dict) -> dict:
    view: dict[str, Any] = {"target": _reference_view(p["target"]), "subresource": p["subresource"]}
    if p["resource_version"] is not None:
        view["resourceVersion"] = p["resource_version"]
    view["mergePatch"] = _parsed_merge_patch(p)
    return view


@dataclass
class Record:
    """One reconcile of a step (1-based) and its final response or error message."""

    step: int
    trigger: ObjectRef
    response: Optional[dict] = None
    error: Optional[str] = None


@dataclass
class Outcome:
    name: str
    failures: list = field(default_factory=list)  # (step, message); step 0 = setup
    records: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


class PolicyLike:
    """What the runner needs: ``metadata`` (with ``triggers`` and ``default_settings``) and
    ``reconcile(request) -> response`` (one round)."""

    metadata: dict

    def reconcile(self, request: dict) -> dict:  # pragma: no cover - protocol
        raise NotImplementedError


def run_scenario(scenario: Scenario, policy: Union[PolicyLike, Any]) -> Outcome:
    """Runs ``scenario``; stops after the first step with a failure."""
    outcome = Outcome(name=scenario.name)
    world = World()
    try:
        settings = merge_settings(policy.metadata["default_settings"], scenario.settings)
    except RoundError as e:
        outcome.failures.append((0, str(e)))
        return outcome
    if not scenario.steps:
        outcome.failures.append((0, "the scenario has no steps"))
        return outcome
    if scenario.steps[0].at is None:
        outcome.failures.append((0, "the first step needs `at` (an RFC 3339 time)"))
        return outcome
    now = scenario.steps[0].at
    for i, manifest in enumerate(scenario.objects):
        try:
            world.apply(manifest, now)
        except WorldError as e:
            outcome.failures.append((0, f"objects[{i}]: {e}"))
            return outcome
    for index, step in enumerate(scenario.steps):
        number = index + 1
        if step.at is not None and step.after is not None:
            outcome.failures.append((number, "give `at` or `after`, not both"))
            break
        if step.at is not None:
            now = step.at
        elif step.after is not None:
            now += step.after
        failures = _run_step(outcome, world, number, step, now, policy, settings)
        if failures:
            outcome.failures.extend(failures)
            if number < len(scenario.steps):
                outcome.failures.append((number, f"steps {number + 1}.. skipped"))
            break
    return outcome


def _run_step(outcome: Outcome, world: World, number: int, step: Step, now: int, policy: Any, settings: str) -> list:
    for manifest in step.apply:
        try:
            world.apply(manifest, now)
        except WorldError as e:
            return [(number, f"apply: {e}")]
    for selector in step.delete:
        try:
            ref = locate(world, selector)
        except _Ambiguous as e:
            return [(number, f"delete: {e}")]
        if ref is None:
            return [(number, f"delete: {selector} does not exist")]
        world.delete(ref)
    try:
        triggers = _triggers(world, step, policy)
    except _Ambiguous as e:
        return [(number, f"reconcile: {e}")]

    failures = []
    first = len(outcome.records)
    for trigger in triggers:
        record = Record(step=number, trigger=trigger)
        try:
            record.response = reconcile_rounds(policy.reconcile, world.get, trigger, epoch_millis(now), settings)
        except RoundError as e:
            record.error = str(e)
            if step.expect.error is None:
                failures.append((number, f"the reconcile of {trigger} failed: {e}"))
        if record.response is not None:
            try:
                world.apply_response(record.response["patches"])
            except WorldError as e:
                failures.append((number, f"applying the patches of the reconcile of {trigger}: {e}"))
            else:
                if record.response["patches"]:
                    unsettled = _settled(policy, world, trigger, epoch_millis(now), settings)
                    if unsettled is not None:
                        failures.append((number, unsettled))
        outcome.records.append(record)
    failures.extend((number, message) for message in _check(world, step.expect, outcome.records[first:]))
    return failures


def _settled(policy: Any, world: World, trigger: ObjectRef, now: int, settings: str) -> Optional[str]:
    """Checks that the reconcile of ``trigger`` whose patches ``world`` just took settled it, as
    the Rust host does (runner.rs ``settled``): called again at the same time, the policy writes
    nothing more. The second call runs on a copy of the world and changes no record. Returns the
    failure message, or None."""
    try:
        again = reconcile_rounds(policy.reconcile, world.get, trigger, now, settings)
    except RoundError as e:
        return f"reconciling {trigger} again right after its own patches failed: {e}"
    after = world.copy()
    error = None
    try:
        after.apply_response(again["patches"])
    except WorldError as e:
        error = e
    for patch in again["patches"]:
        if canonical(world.get(patch["target"])) != canonical(after.get(patch["target"])):
            return (
                f"not settled: reconciled again right after its own patches, {trigger} writes "
                f"{patch['target']} again (a response must settle its trigger: see `reconcile` in policy.wit)"
            )
    if error is not None:
        return f"reconciling {trigger} again right after its own patches: {error}"
    return None


def _triggers(world: World, step: Step, policy: Any) -> list[ObjectRef]:
    if step.reconcile is not None:
        refs = []
        for selector in step.reconcile:
            ref = locate(world, selector)
            if ref is None:
                raise _Ambiguous(f"{selector} does not exist")
            refs.append(ref)
        return refs
    all_refs = [ref for ref, _ in world.objects()]
    return [
        ref
        for kind in policy.metadata["triggers"]
        for ref in all_refs
        if ref.kind == kind["kind"] and ref.group == group_of(kind["api_version"])
    ]


def _check(world: World, expect: Expect, records: list[Record]) -> list[str]:
    failures = []
    for expected in expect.objects:
        metadata = expected.get("metadata") if isinstance(expected, dict) else None
        metadata = metadata if isinstance(metadata, dict) else {}

        def text(v: Any) -> Optional[str]:
            return v if isinstance(v, str) else None

        kind = text(expected.get("kind")) if isinstance(expected, dict) else None
        name = text(metadata.get("name"))
        if kind is None:
            failures.append("expect.objects: an expected object needs `kind`")
            continue
        if name is None:
            failures.append("expect.objects: an expected object needs `metadata.name`")
            continue
        selector = Selector(kind=kind, name=name, api_version=text(expected.get("apiVersion")), namespace=text(metadata.get("namespace")))
        try:
            ref = locate(world, selector)
        except _Ambiguous as e:
            failures.append(f"expect.objects: {e}")
            continue
        if ref is None:
            failures.append(f"expected object {selector} does not exist")
            continue
        found = mismatches(expected, world.get(ref))
        if found:
            failures.append(f"object {selector} does not match:\n  " + "\n  ".join(found))
    for selector in expect.absent:
        try:
            ref = locate(world, selector)
        except _Ambiguous as e:
            failures.append(f"expect.absent: {e}")
            continue
        if ref is not None:
            failures.append(f"{ref} exists, but should be absent")
    if expect.requeue_after is not None:
        last = records[-1] if records else None
        if last is None:
            failures.append("expect.requeueAfter: no reconcile ran in this step")
        elif last.response is None:
            failures.append("expect.requeueAfter: the last reconcile failed")
        elif not expect.requeue_after.accepts(last.response["requeue_after_millis"]):
            got = last.response["requeue_after_millis"]
            failures.append(f"expected requeueAfter {expect.requeue_after}, got {'none' if got is None else format_millis(got)}")
    responses = [r.response for r in records if r.response is not None]
    if expect.events is not None:
        actual = [_event_view(e) for r in responses for e in r["events"]]
        found = mismatches(expect.events, actual)
        if found:
            failures.append("events do not match:\n  " + "\n  ".join(found))
    if expect.patches is not None:
        patches = [_patch_view(p) for r in responses for p in r["patches"]]
        if len(patches) != expect.patches:
            failures.append(f"expected {expect.patches} patches, got {len(patches)}:\n{canonical(patches)}")
    if expect.error is not None:
        errors = [r.error for r in records if r.error is not None]
        if not any(expect.error in e for e in errors):
            got = "every reconcile succeeded" if not errors else "got: " + "; ".join(errors)
            failures.append(f"expected a reconcile error containing {canonical(expect.error)}; {got}")
    return failures


# ---- the patch stream ------------------------------------------------------------------------------


def _stream_ref(r: ObjectRef) -> dict:
    return {"apiVersion": r.api_version, "kind": r.kind, "namespace": r.namespace, "name": r.name}


def stream_line(file: str, record: Record) -> str:
    """The patch-stream line (docs/embedding.md) of one record of the scenario at ``file``."""
    response = record.response or {"patches": [], "events": [], "requeue_after_millis": None}
    return canonical(
        {
            "file": file,
            "step": record.step - 1,
            "trigger": _stream_ref(record.trigger),
            "patches": [
                {
                    "target": _stream_ref(p["target"]),
                    "subresource": p["subresource"],
                    "mergePatch": _parsed_merge_patch(p),
                    "resourceVersion": p["resource_version"],
                }
                for p in response["patches"]
            ],
            "events": [
                {
                    "regarding": _stream_ref(e["regarding"]),
                    "type": "Warning" if e["event_type"] == "warning" else "Normal",
                    "reason": e["reason"],
                    "message": e["message"],
                }
                for e in response["events"]
            ],
            "requeueAfterMillis": response["requeue_after_millis"],
            "error": record.error,
        }
    )
