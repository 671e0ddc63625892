"""Render the Kustomize overlays of ``deploy/k8s`` without a kustomize binary.

``make test`` must render the manifests offline from a fresh clone, and neither
kustomize nor Helm installs from Debian's packages or PyPI for Python 3.11 (Debian
12's kubectl is 1.20, whose kustomize predates ``patches``; the PyPI bindings
need Python 3.12 or later). So the overlays keep to a small part of Kustomize,
which this module renders: ``resources`` (files and directories), ``namespace``,
``images`` and ``patches`` made of JSON 6902 operations on a ``target`` kind and
name. Anything else in a kustomization is refused rather than ignored, so an
overlay cannot use a feature the tests would not see. Where a real kustomize is
installed (``kubectl kustomize``), ``tests/deploy/test_kubernetes.py`` checks that
it renders the same objects.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KUSTOMIZATION = "kustomization.yaml"
KNOWN_KEYS = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})


class Unsupported(Exception):
    """A kustomization uses what this renderer does not implement."""


def load_documents(path: Path) -> list[Object]:
    """The non-empty YAML documents of ``path``."""
    with path.open() as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


def render(directory: Path) -> list[Object]:
    """The objects the kustomization in ``directory`` builds, in resource order."""
    spec = load_documents(directory / KUSTOMIZATION)[0]
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise Unsupported(f"{directory / KUSTOMIZATION}: {sorted(unknown)}")
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else load_documents(path)
    objects = copy.deepcopy(objects)
    for patch in spec.get("patches", []):
        _apply_patch(objects, patch)
    for image in spec.get("images", []):
        for obj in objects:
            _set_images(obj, image)
    if "namespace" in spec:
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _apply_patch(objects: list[Object], patch: dict[str, Any]) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise Unsupported(f"only JSON 6902 patches on a target kind and name: {patch}")
    target = patch["target"]
    matched = [
        obj
        for obj in objects
        if obj["kind"] == target.get("kind", obj["kind"])
        and obj["metadata"]["name"] == target.get("name", obj["metadata"]["name"])
    ]
    if not matched:
        raise Unsupported(f"a patch matches no object: {target}")
    for obj in matched:
        for operation in yaml.safe_load(patch["patch"]):
            _operate(obj, operation)


def _operate(obj: Object, operation: dict[str, Any]) -> None:
    """One JSON 6902 operation (add, replace, remove, test) on ``obj``, in place."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list) and op == "add":
        node.insert(len(node) if last == "-" else int(last), operation["value"])
        return
    key: int | str = int(last) if isinstance(node, list) else last
    if op == "add":
        node[key] = operation["value"]
    elif op == "replace":
        _ = node[key]  # RFC 6902: replace needs a value to replace
        node[key] = operation["value"]
    elif op == "remove":
        del node[key]
    elif op == "test":
        if node[key] != operation["value"]:
            raise AssertionError(f"patch test failed at {operation['path']}: {node[key]!r}")
    else:
        raise Unsupported(f"JSON 6902 operation {op}")


def _set_images(node: Any, image: dict[str, str]) -> None:
    """Kustomize's ``images``: every container named ``image['name']``, at any depth."""
    if isinstance(node, list):
        for item in node:
            _set_images(item, image)
        return
    if not isinstance(node, dict):
        return
    for field in ("containers", "initContainers"):
        for container in node.get(field, []):
            name, tag = _split_tag(container["image"])
            if name == image["name"]:
                name = image.get("newName", name)
                tag = image.get("newTag", tag)
                container["image"] = f"{name}:{tag}" if tag else name
    for value in node.values():
        _set_images(value, image)


def _split_tag(reference: str) -> tuple[str, str]:
    """``host:5000/name:tag`` as (``host:5000/name``, ``tag``); no tag: ``""``."""
    head, slash, last = reference.rpartition("/")
    name, _, tag = last.partition(":")
    return head + slash + name, tag
