"""Checkpoints as safetensors with their configs as JSON: no pickle anywhere.

One file holds several networks, their tensors under ``<name>.``, and its metadata holds
``configs``: a JSON object ``{name: {field: value}}`` that rebuilds each config dataclass.
Unknown or missing config keys are errors, never silently defaulted.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .files import CheckpointError, atomic_output

FORMAT = "bailando_blender.checkpoint/1"

ConfigT = TypeVar("ConfigT")


def config_from_dict(config_type: type[ConfigT], values: dict[str, Any], source: str) -> ConfigT:
    fields = {field.name for field in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    unknown, missing = set(values) - fields, fields - set(values)
    if unknown or missing:
        raise CheckpointError(
            f"{source}: {config_type.__name__} does not match "
            f"(unknown keys {sorted(unknown)}, missing {sorted(missing)})"
        )
    return config_type(**values)


def save_checkpoint(
    path: str | Path,
    networks: dict[str, nn.Module],
    configs: dict[str, Any],
    dtype: torch.dtype | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """Write networks' state dicts (optionally cast to ``dtype``) and their configs, atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, network in networks.items():
        for key, tensor in network.state_dict().items():
            tensor = tensor.detach().cpu()
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[f"{name}.{key}"] = tensor.contiguous()
    metadata = {"format": FORMAT, "configs": json.dumps({k: dataclasses.asdict(v) for k, v in configs.items()})}
    metadata.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        save_file(tensors, temporary, metadata=metadata)


def read_checkpoint(
    path: str | Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """-> (configs by network, tensors by network (float32), metadata)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors: dict[str, dict[str, torch.Tensor]] = {}
            for key in handle.keys():
                name, _, rest = key.partition(".")
                tensor = handle.get_tensor(key)
                tensors.setdefault(name, {})[rest] = tensor.float() if tensor.is_floating_point() else tensor
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({error})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
    return json.loads(metadata["configs"]), tensors, metadata


def load_network(network: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    result = network.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: tensors do not match the network (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )


NetworkT = TypeVar("NetworkT", bound=nn.Module)


def restore_network(
    configs: dict[str, dict[str, Any]],
    tensors: dict[str, dict[str, torch.Tensor]],
    name: str,
    config_type: type[Any],
    network_type: type[NetworkT],
    source: str,
) -> NetworkT:
    """Build network ``name`` of a read checkpoint from its stored config, then load its tensors."""
    if name not in configs or name not in tensors:
        raise CheckpointError(f"{source}: has no network '{name}'")
    network = network_type(config_from_dict(config_type, configs[name], source))
    load_network(network, tensors[name], source)
    return network
