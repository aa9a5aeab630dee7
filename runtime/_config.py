"""Run configuration: a plain dict, normalised the way LangChain's ``ensure_config`` does.

A config has the keys ``configurable``, ``run_id``, ``tags``, ``metadata``, ``max_concurrency``,
``run_name``, ``callbacks`` and ``recursion_limit``. Any other top-level key holding a scalar
moves into ``configurable``, so ``{"session_id": "abc"}`` means
``{"configurable": {"session_id": "abc"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from chatledger.eventstore import InvalidInputError

__all__ = [
    "CONFIG_KEYS",
    "ConfigurableFieldSpec",
    "RunnableConfig",
    "child_config",
    "ensure_config",
    "get_config_list",
    "merge_configs",
]

RunnableConfig = dict[str, Any]

CONFIG_KEYS = frozenset(
    {"configurable", "run_id", "tags", "metadata", "max_concurrency", "run_name", "callbacks",
     "recursion_limit"}
)
_MERGED = ("tags", "metadata", "configurable")


class ConfigurableFieldSpec(NamedTuple):
    """A field a runnable reads from ``config["configurable"]``.

    Attributes:
        id: The key in ``configurable`` (and the factory's parameter name).
        annotation: The expected type.
        name: A human-readable name.
        description: What the field means.
        default: The value used when the config does not give one.
        is_shared: Whether the field is shared by several runnables.
        dependencies: Ids of fields this one depends on.
    """

    id: str
    annotation: Any
    name: str | None = None
    description: str | None = None
    default: Any = None
    is_shared: bool = False
    dependencies: list[str] | None = None


def ensure_config(config: Mapping[str, Any] | None = None) -> RunnableConfig:
    """A fresh config with every standard key, unknown scalar keys moved into ``configurable``.

    Raises:
        InvalidInputError: ``config`` (or its ``configurable``) is not a mapping.
    """
    out: RunnableConfig = {
        "tags": [],
        "metadata": {},
        "callbacks": None,
        "recursion_limit": 25,
        "configurable": {},
    }
    if config is None:
        return out
    if not isinstance(config, Mapping):
        raise InvalidInputError(f"config must be a dict, got {type(config).__name__}")
    for key, value in config.items():
        if key in CONFIG_KEYS and value is not None:
            out[key] = value
    configurable = out["configurable"]
    if not isinstance(configurable, Mapping):
        raise InvalidInputError(
            f"config['configurable'] must be a dict, got {type(configurable).__name__}"
        )
    out["configurable"] = dict(configurable)
    for key, value in config.items():
        if key not in CONFIG_KEYS and isinstance(value, (str, int, float, bool)):
            out["configurable"][key] = value
    out["tags"] = list(out["tags"])
    out["metadata"] = dict(out["metadata"])
    return out


def merge_configs(*configs: Mapping[str, Any] | None) -> RunnableConfig:
    """Merge configs left to right: tags add up, metadata and configurable merge, the rest override.

    Raises:
        InvalidInputError: A config is not a mapping.
    """
    out: RunnableConfig = {}
    for config in configs:
        if config is None:
            continue
        given = ensure_config(config)
        for key, value in config.items():
            if key in CONFIG_KEYS and key not in _MERGED and value is not None:
                out[key] = value
        tags = out.setdefault("tags", [])
        tags.extend(t for t in given["tags"] if t not in tags)
        out["metadata"] = {**out.get("metadata", {}), **given["metadata"]}
        out["configurable"] = {**out.get("configurable", {}), **given["configurable"]}
    return ensure_config(out)


def child_config(config: Mapping[str, Any]) -> RunnableConfig:
    """The config a step passes to its children: the same, minus the run's own id and name."""
    out = dict(config)
    out.pop("run_id", None)
    out.pop("run_name", None)
    return out


def get_config_list(
    config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, length: int
) -> list[RunnableConfig]:
    """One config per batch item: a list is used item by item, a single config is shared.

    A shared config's ``run_id`` applies to the first item only, since run ids are unique.

    Raises:
        InvalidInputError: A list whose length differs from the number of inputs.
    """
    if config is not None and not isinstance(config, Mapping):
        configs = list(config)
        if len(configs) != length:
            raise InvalidInputError(
                f"batch got {length} inputs but {len(configs)} configs; give one config per "
                "input or a single config"
            )
        return [ensure_config(c) for c in configs]
    shared = ensure_config(config)
    out = []
    for i in range(length):
        item = dict(shared)
        if i > 0:
            item.pop("run_id", None)
        out.append(item)
    return out
