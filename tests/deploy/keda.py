"""JSON schemas for the KEDA objects of ``deploy/k8s``, written from KEDA's documentation.

kubernetes-validate carries the schemas of Kubernetes' own kinds only; KEDA's
custom resources (``keda.sh/v1alpha1``) are checked against these instead. They
cover the fields the manifests use and refuse any other, as the API server does
for a structural custom resource under kubectl's strict field validation; the
one rule worth the most is that a trigger's ``metadata`` holds strings only
(``allowIdleConsumers: false`` unquoted is refused by the cluster).
"""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def _kind(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


def _strict(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _kind(
        "ScaledObject",
        _strict(
            ["scaleTargetRef", "triggers"],
            scaleTargetRef=_strict(
                ["name"], name=_NAME, kind={"type": "string"}, apiVersion={"type": "string"}
            ),
            minReplicaCount=_COUNT,
            maxReplicaCount={"type": "integer", "minimum": 1},
            pollingInterval=_COUNT,
            cooldownPeriod=_COUNT,
            advanced=_strict(
                [],
                horizontalPodAutoscalerConfig=_strict([], name=_NAME, behavior={"type": "object"}),
                restoreToOriginalReplicaCount={"type": "boolean"},
            ),
            triggers={
                "type": "array",
                "minItems": 1,
                "items": _strict(
                    ["type", "metadata"],
                    type={"type": "string"},
                    name={"type": "string"},
                    metadata={"type": "object", "additionalProperties": {"type": "string"}},
                    authenticationRef=_strict(
                        ["name"],
                        name=_NAME,
                        kind={"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                    ),
                ),
            },
        ),
    ),
    "TriggerAuthentication": _kind(
        "TriggerAuthentication",
        _strict(
            ["secretTargetRef"],
            secretTargetRef={
                "type": "array",
                "minItems": 1,
                "items": _strict(
                    ["parameter", "name", "key"],
                    parameter={"type": "string"},
                    name=_NAME,
                    key={"type": "string"},
                ),
            },
        ),
    ),
}
