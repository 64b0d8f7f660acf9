"""An in-memory API server with the write rules of the Rust host's ``World``
(``host/core/src/world.rs``):

- writes are JSON merge patches (RFC 7396);
- a status patch changes only ``status``; a main patch never changes ``status``;
- a change to anything but ``metadata`` and ``status`` bumps ``metadata.generation``;
- every write that changes something takes the next value of one global resourceVersion
  counter; a write that changes nothing keeps the version;
- a stale resourceVersion precondition is a conflict; patches of one response on one object are
  chained (each conditioned on the version its predecessor produced);
- server-managed metadata cannot be written; creating fills whichever is missing.

Objects are keyed by (API group, kind, namespace, name): versions of one group are one object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from .jsonvalue import canonical, clone, equal, loads, merge
from .timeutil import format_time

SERVER_MANAGED = ("uid", "creationTimestamp", "resourceVersion", "generation", "name", "namespace")


def group_of(api_version: str) -> str:
    """The API group of an apiVersion (``""`` for the core group ``v1``)."""
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


@dataclass(frozen=True)
class ObjectRef:
    """Identifies one object (WIT ``object-ref``)."""

    api_version: str
    kind: str
    namespace: Optional[str]
    name: str

    def __str__(self) -> str:
        if self.namespace is None:
            return f"{self.kind}/{self.name}"
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    def same_object(self, other: "ObjectRef") -> bool:
        """True when both name the same object (versions of one group are one object)."""
        return (
            self.kind == other.kind
            and self.name == other.name
            and self.namespace == other.namespace
            and self.group == other.group
        )


class WorldError(Exception):
    pass


def object_ref_of(manifest: Any) -> ObjectRef:
    """The identity inside a manifest."""
    if not isinstance(manifest, dict):
        raise WorldError(f"invalid manifest: not a mapping: {canonical(manifest)}")
    metadata = manifest.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}

    def field(value: Any, path: str) -> str:
        if not isinstance(value, str) or value == "":
            raise WorldError(f"invalid manifest: `{path}` is missing or not a string")
        return value

    namespace = metadata.get("namespace")
    return ObjectRef(
        api_version=field(manifest.get("apiVersion"), "apiVersion"),
        kind=field(manifest.get("kind"), "kind"),
        namespace=namespace if isinstance(namespace, str) else None,
        name=field(metadata.get("name"), "metadata.name"),
    )


def _key(ref: ObjectRef) -> tuple:
    # Rust's derived order of `Key { group, kind, namespace: Option<String>, name }`: None sorts
    # before Some.
    return (ref.group, ref.kind, (0, "") if ref.namespace is None else (1, ref.namespace), ref.name)


def _resource_version(manifest: dict) -> str:
    metadata = manifest.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) else ""


def _metadata_of(manifest: dict) -> dict:
    if not isinstance(manifest.get("metadata"), dict):
        manifest["metadata"] = {}
    return manifest["metadata"]


def _without_metadata_and_status(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in ("metadata", "status")}


def _with_status_of(target: dict, source: dict) -> dict:
    """``target`` with its ``status`` replaced by ``source``'s (removed if it has none)."""
    if "status" in source:
        target["status"] = clone(source["status"])
    else:
        target.pop("status", None)
    return target


class World:
    def __init__(self) -> None:
        self._objects: dict[tuple, dict] = {}
        self._resource_version = 0
        self._uids = 0

    def apply(self, manifest: Any, now: int) -> ObjectRef:
        """Creates the object, or merges ``manifest`` into the existing one (status included).
        ``now`` (nanoseconds) is the ``creationTimestamp`` of a new object."""
        ref = object_ref_of(manifest)
        key = _key(ref)
        old = self._objects.get(key)
        if old is not None:
            self._commit(key, merge(clone(old), manifest))
        else:
            self._create(key, clone(manifest), now)
        return ref

    def copy(self) -> "World":
        """An independent copy: writes to either leave the other alone."""
        copy = World()
        copy._objects = {key: clone(manifest) for key, manifest in self._objects.items()}
        copy._resource_version = self._resource_version
        copy._uids = self._uids
        return copy

    def delete(self, ref: ObjectRef) -> bool:
        return self._objects.pop(_key(ref), None) is not None

    def get(self, ref: ObjectRef) -> Optional[dict]:
        return self._objects.get(_key(ref))

    def objects(self) -> Iterator[tuple[ObjectRef, dict]]:
        """Every object with its reference (the stored apiVersion), in key order."""
        for key in sorted(self._objects):
            manifest = self._objects[key]
            api_version = manifest.get("apiVersion")
            _, kind, (_, namespace), name = key
            yield ObjectRef(
                api_version if isinstance(api_version, str) else "",
                kind,
                namespace if key[2][0] == 1 else None,
                name,
            ), manifest

    def patch(self, patch: dict, precondition: Optional[str]) -> str:
        """Applies one patch (``{target, subresource, merge_patch, resource_version}``) if the
        object is at ``precondition`` (when given). Returns the version after the patch."""
        target: ObjectRef = patch["target"]
        key = _key(target)
        try:
            merge_patch = loads(patch["merge_patch"])
        except ValueError as e:
            raise WorldError(f"invalid merge patch for {target}: {e}") from None
        if not isinstance(merge_patch, dict):
            raise WorldError(f"invalid merge patch for {target}: not a JSON object")
        old = self._objects.get(key)
        if old is None:
            raise WorldError(f"{target} not found")
        actual = _resource_version(old)
        if precondition is not None and precondition != actual:
            raise WorldError(
                f"conflict: the patch of {target} requires resourceVersion {precondition}, "
                f"but the object is at {actual}"
            )
        merged = merge(clone(old), merge_patch)
        if patch["subresource"] == "status":
            new = _with_status_of(clone(old), merged)
        else:
            new = _with_status_of(merged, old)
        return self._commit(key, new)

    def apply_response(self, patches: list[dict]) -> None:
        """Applies the patches of one response in order, chaining preconditions on one object.
        Stops at the first failure (earlier patches stay applied)."""
        produced: dict[tuple, str] = {}
        for patch in patches:
            key = _key(patch["target"])
            observed = patch["resource_version"]
            precondition = None if observed is None else produced.get(key, observed)
            produced[key] = self.patch(patch, precondition)

    def _create(self, key: tuple, manifest: dict, now: int) -> None:
        metadata = manifest.get("metadata")
        given = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        if isinstance(given, str) and re.fullmatch(r"\+?[0-9]+", given, flags=re.ASCII):
            value = int(given)
            if value <= 0xFFFFFFFFFFFFFFFF:
                self._resource_version = max(self._resource_version, value)
        self._uids += 1
        uid = f"00000000-0000-0000-0000-{self._uids:012x}"
        self._resource_version += 1
        metadata = _metadata_of(manifest)
        for field, value in (
            ("uid", uid),
            ("resourceVersion", str(self._resource_version)),
            ("generation", 1),
            ("creationTimestamp", format_time(now)),
        ):
            metadata.setdefault(field, value)
        self._objects[key] = manifest

    def _commit(self, key: tuple, new: dict) -> str:
        old = self._objects[key]
        old_metadata = old.get("metadata") if isinstance(old.get("metadata"), dict) else {}
        metadata = _metadata_of(new)
        for field in SERVER_MANAGED:
            if field in old_metadata:
                metadata[field] = clone(old_metadata[field])
            else:
                metadata.pop(field, None)
        if equal(new, old):
            return _resource_version(old)
        if not equal(_without_metadata_and_status(new), _without_metadata_and_status(old)):
            generation = old_metadata.get("generation")
            current = generation if isinstance(generation, int) and not isinstance(generation, bool) else 0
            metadata["generation"] = current + 1
        self._resource_version += 1
        version = str(self._resource_version)
        metadata["resourceVersion"] = version
        self._objects[key] = new
        return version
