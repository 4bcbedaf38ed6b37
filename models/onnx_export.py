"""Export a generator checkpoint's inference networks to ONNX, beside it, for the torch-free runtime.

    python -m models.onnx_export [models/weights/generator.safetensors]

Four graphs (``models.files.ONNX_GRAPHS``), each with dynamic time axes, and a batch axis B
where beat search runs its candidates side by side (``backend.generator``):

- ``music_encoder``: music (1, T, music_dim) features as computed -> music_steps (1, T / 4, d_model);
- ``gpt_step``: one generation call of ``MotionGPT.ring_step_at`` with its key/value cache, a
  ring of R slots (``models.gpt.ring_slots``), as inputs and outputs, so each new step costs the
  new positions only: streams, tokens (B, n) int64, music_steps (B, n, d_model), positions (n,) int64,
  ring_keys_<layer>, ring_values_<layer> (B, heads, R, head_dim) for each layer, slot_positions
  (R,) int64 -> logits (B, upper codes + lower codes: the upper head's, then the lower's),
  next_ring_keys_<layer>, next_ring_values_<layer>, next_slot_positions.
  For a given B every shape but n is fixed, so ONNX Runtime's CUDA provider can capture a call as
  a CUDA graph and replay it. Each ring input is read by one node only, the scatter that writes
  the new positions and gives ``next_<name>`` (checked: ``check_ring_in_place``), so the backend
  binds one buffer as both and the ring is written in place. Each residual sum and the
  LayerNorm after it are fused into ONNX Runtime's SkipLayerNormalization (``fuse_residual_norms``);
- ``ring_select``: the kept candidate's row of the ring copied into every row at the slots a
  chunk wrote: row (1,) int64, slots (k,) int64, ring_keys_<layer>, ring_values_<layer> ->
  next_ring_keys_<layer>, next_ring_values_<layer>, in place as the step's;
- ``motion_decoder``: upper_tokens, lower_tokens (B, L) int64 -> upper_motion (B, 4L, 90),
  lower_motion (B, 4L, 58).

Weights are stored in fp16 where that is exact (the checkpoint's are fp16) and cast to fp32 when
ONNX Runtime loads the graph (its constant folding does it once), which halves the files.
Each graph carries the checkpoint's configs and SHA-256 in its metadata. After writing, the
graphs are run on random inputs and compared with torch; the largest differences are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from .checkpoint import read_checkpoint, restore_network
from .files import (
    EMPTY_SLOT,
    MAX_BATCH,
    MAX_INPUTS,
    META_CONFIGS,
    META_FORMAT,
    META_SOURCE_SHA256,
    ONNX_FORMAT,
    CheckpointError,
    atomic_output,
    onnx_path,
    sha256_of,
)
from .gpt import GPTConfig, MotionGPT, ring_slots
from .vqvae import MotionVQVAE, VQVAEConfig

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "generator.safetensors"
# 20, the first opset with Gelu: one node where 18 spelled it out in five (erf and four
# arithmetic ops), which ONNX Runtime then fuses with the bias (a GPT call on an H200's CUDA
# graph, 2026-12-03: 0.57-0.58 ms against 0.61-0.63; the same tokens; no change on the CPU).
OPSET = 20
# ONNX Runtime's own operators (SkipLayerNormalization), version 1.
CONTRIB_DOMAIN = "com.microsoft"
# Initialisers with at least this many elements are stored in fp16 when that loses nothing;
# smaller ones (shape constants, scalars) stay as they are.
FP16_MIN_ELEMENTS = 16
# Example sizes for tracing; every one of them is a dynamic axis of the exported graph (none
# may be 1, which the exporter would take as a fixed size).
EXAMPLE_STEPS = 6
EXAMPLE_POSITION = 5
EXAMPLE_BATCH = 3
EXAMPLE_SLOTS = 4


class GenerationStep(nn.Module):
    """The ring step as a function: the ring it writes is a new one, returned. Both heads are
    one product (their weights joined, folded into one initialiser by the export), whose logits
    the caller fetches in one copy: one kernel and one wait fewer a call than two heads."""

    def __init__(self, gpt: MotionGPT) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(
        self,
        streams: torch.Tensor,
        tokens: torch.Tensor,
        music_steps: torch.Tensor,
        positions: torch.Tensor,
        ring_keys: list[torch.Tensor],
        ring_values: list[torch.Tensor],
        slot_positions: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        last, *ring = self.gpt.ring_step_at(
            streams, tokens, music_steps, positions, ring_keys, ring_values, slot_positions, in_place=False
        )
        heads = torch.cat([self.gpt.upper_head.weight, self.gpt.lower_head.weight])
        return F.linear(last, heads), *ring


class RingSelect(nn.Module):
    """Beat search's choice: every row of the ring takes the kept row's keys and values at the
    slots the chunk wrote (the rows are equal everywhere else). Each ring input is read by a
    gather of that row and by the scatter that writes it, which depends on the gather."""

    def forward(
        self, row: torch.Tensor, slots: torch.Tensor, ring_keys: list[torch.Tensor], ring_values: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        def select(ring: torch.Tensor) -> torch.Tensor:
            kept = ring.index_select(0, row).index_select(2, slots).expand(ring.shape[0], -1, -1, -1)
            return ring.scatter(2, slots[None, None, :, None].expand_as(kept), kept)

        return [select(ring) for ring in ring_keys], [select(ring) for ring in ring_values]


def example_ring(cfg: GPTConfig, next_position: int, batch: int = EXAMPLE_BATCH) -> dict[str, torch.Tensor]:
    """A ring of ``batch`` rows of random keys and values after ``next_position`` positions (a
    full window once past it)."""
    slots = ring_slots(cfg, MAX_INPUTS)
    held = torch.arange(max(0, next_position - slots), next_position)
    slot_positions = torch.full((slots,), EMPTY_SLOT)
    slot_positions[held % slots] = held
    shape = cfg.cache_shape(batch, slots)[1:]
    return {
        "ring_keys": [torch.randn(shape) for _ in range(cfg.num_layers)],
        "ring_values": [torch.randn(shape) for _ in range(cfg.num_layers)],
        "slot_positions": slot_positions,
    }


def flat_names(inputs: dict[str, torch.Tensor | list[torch.Tensor]]) -> list[str]:
    """The graph's names of ``inputs``, a list's items numbered: ring_keys_0, ring_keys_1, ..."""
    names = []
    for name, value in inputs.items():
        names += [f"{name}_{i}" for i in range(len(value))] if isinstance(value, list) else [name]
    return names


def flat_values(values: Any) -> list[torch.Tensor]:
    """Tensors of ``values`` (a tensor, or tuples and lists of them) in the graph's order."""
    if isinstance(values, (tuple, list)):
        return [tensor for value in values for tensor in flat_values(value)]
    return [values]


class MusicEncoder(nn.Module):
    def __init__(self, gpt: MotionGPT) -> None:
        super().__init__()
        self.encoder = gpt.music_encoder

    def forward(self, music: torch.Tensor) -> torch.Tensor:
        return self.encoder(music)


class MotionDecoder(nn.Module):
    def __init__(self, vqvae: MotionVQVAE) -> None:
        super().__init__()
        self.vqvae = vqvae

    def forward(self, upper_tokens: torch.Tensor, lower_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vqvae.decode(upper_tokens, lower_tokens)


def example_inputs(gpt: MotionGPT) -> dict[str, dict[str, Any]]:
    cfg = gpt.cfg
    ring = example_ring(cfg, EXAMPLE_POSITION)
    return {
        "music_encoder": {"music": torch.randn(1, EXAMPLE_STEPS * cfg.frames_per_token, cfg.music_dim)},
        "gpt_step": {
            "streams": torch.tensor([[2, 0]] * EXAMPLE_BATCH),
            "tokens": torch.randint(0, cfg.num_lower_codes, (EXAMPLE_BATCH, 2)),
            "music_steps": torch.randn(1, 2, cfg.d_model).expand(EXAMPLE_BATCH, -1, -1).contiguous(),
            "positions": torch.arange(EXAMPLE_POSITION, EXAMPLE_POSITION + 2),
            **ring,
        },
        "ring_select": {
            "row": torch.tensor([1]),
            "slots": torch.arange(EXAMPLE_SLOTS) * 2,
            "ring_keys": ring["ring_keys"],
            "ring_values": ring["ring_values"],
        },
        "motion_decoder": {
            "upper_tokens": torch.randint(0, cfg.num_upper_codes, (EXAMPLE_BATCH, EXAMPLE_STEPS)),
            "lower_tokens": torch.randint(0, cfg.num_lower_codes, (EXAMPLE_BATCH, EXAMPLE_STEPS)),
        },
    }


def output_names(graph: str, gpt: MotionGPT) -> list[str]:
    if graph == "music_encoder":
        return ["music_steps"]
    rings = flat_names(example_ring(gpt.cfg, 0))
    if graph == "gpt_step":  # each ring input's successor is next_<its name> (backend.onnx_runtime.RingStep)
        return ["logits", *(f"next_{name}" for name in rings)]
    if graph == "ring_select":
        return [f"next_{name}" for name in rings if name.startswith("ring_")]
    return ["upper_motion", "lower_motion"]


def dynamic_shapes(graph: str, gpt: MotionGPT) -> dict[str, Any]:
    if graph == "music_encoder":
        return {"music": {1: torch.export.Dim("frames", min=gpt.cfg.frames_per_token)}}
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    layers = [{0: batch}] * gpt.cfg.num_layers
    if graph == "gpt_step":
        new = torch.export.Dim("new_positions", min=1, max=MAX_INPUTS)
        rings = {"ring_keys": layers, "ring_values": layers, "slot_positions": None}
        inputs = {name: {0: batch, 1: new} for name in ("streams", "tokens", "music_steps")}
        return {**inputs, "positions": {0: new}, **rings}
    if graph == "ring_select":
        slots = torch.export.Dim("slots", min=1, max=ring_slots(gpt.cfg, MAX_INPUTS))
        return {"row": None, "slots": {0: slots}, "ring_keys": layers, "ring_values": layers}
    steps = torch.export.Dim("steps", min=1)
    return {"upper_tokens": {0: batch, 1: steps}, "lower_tokens": {0: batch, 1: steps}}


def store_weights_in_fp16(model: onnx.ModelProto) -> None:
    """Replace each large fp32 initialiser that fp16 holds exactly (the checkpoint's weights are
    fp16) by an fp16 one and a Cast back to fp32 under the same name. Constants the exporter
    computed (RoPE's frequencies, say) are not exact in fp16 and stay fp32."""
    graph = model.graph
    kept, casts = [], []
    for initialiser in graph.initializer:
        values = numpy_helper.to_array(initialiser)
        if values.dtype != np.float32 or values.size < FP16_MIN_ELEMENTS:
            kept.append(initialiser)
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            kept.append(initialiser)
            continue
        half_name = f"{initialiser.name}__fp16"
        kept.append(numpy_helper.from_array(half, half_name))
        casts.append(onnx.helper.make_node("Cast", [half_name], [initialiser.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(casts) + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def fuse_residual_norms(model: onnx.ModelProto, cfg: GPTConfig) -> onnx.ModelProto:
    """Each block's residual sums with the bias before them and the LayerNorm after them as
    ONNX Runtime's SkipLayerNormalization (one kernel, CPU and CUDA, where there were three),
    by ONNX Runtime's own transformer optimizer, its other fusions off. Its graph optimizer at
    load fuses only a sum that nothing else reads: the last one. The sum stays an output of the
    fused node, since the next residual adds to it."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    for name in vars(options):
        if name.startswith("enable_"):
            setattr(options, name, False)
    # Without its shape inference, which with the batch axis did not find the first block's
    # second residual's two sides equal and left it apart; every residual here adds equal shapes.
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = True
    model = optimize_model(model, "bert", cfg.num_heads, cfg.d_model, optimization_options=options, opt_level=0).model
    if all(opset.domain != CONTRIB_DOMAIN for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return model


# The ONNX operators whose kernels in ONNX Runtime (CPU and CUDA) skip copying their data input
# to their output when both are one buffer, and then write only the updated elements.
IN_PLACE_SCATTERS = ("ScatterElements", "ScatterND")


def ancestors(graph: onnx.GraphProto, node: onnx.NodeProto) -> set[str]:
    """Names of every value ``node`` reads, directly or through the nodes that make them."""
    makers = {output: maker for maker in graph.node for output in maker.output}
    seen: set[str] = set()
    waiting = list(node.input)
    while waiting:
        name = waiting.pop()
        if name and name not in seen:
            seen.add(name)
            if name in makers:
                waiting.extend(makers[name].input)
    return seen


def check_ring_in_place(model: onnx.ModelProto, graph_name: str = "gpt_step") -> None:
    """Raise unless each ring input (``ring_*``, ``slot_positions``) of the graph is written by
    exactly one node, a scatter taking it as its data and giving the output ``next_<name>``, and
    every other node reading it does so before that scatter (the scatter depends on its output):
    what lets ``backend.onnx_runtime.RingStep`` bind one buffer as both."""
    graph = model.graph
    outputs = {output.name for output in graph.output}
    for name in (arg.name for arg in graph.input):
        if not (name.startswith("ring_") or name == "slot_positions"):
            continue
        readers = [node for node in graph.node if name in node.input]
        writers = [node for node in readers if list(node.output) == [f"next_{name}"]]
        writer = writers[0] if len(writers) == 1 else None
        if (
            writer is None
            or writer.op_type not in IN_PLACE_SCATTERS
            or list(writer.input).index(name) != 0
            or f"next_{name}" not in outputs
            or name in list(writer.input)[1:]
            or any(set(node.output).isdisjoint(ancestors(graph, writer)) for node in readers if node is not writer)
        ):
            found = ", ".join(f"{node.op_type} -> {', '.join(node.output)}" for node in readers)
            raise CheckpointError(
                f"{graph_name} graph: ring input {name} is read by [{found}], not by one in-place scatter"
                " and what it waits for"
            )


def export_graph(module: nn.Module, graph: str, gpt: MotionGPT, metadata: dict[str, str], path: Path) -> None:
    inputs = example_inputs(gpt)[graph]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            input_names=flat_names(inputs),
            output_names=output_names(graph, gpt),
            dynamic_shapes=dynamic_shapes(graph, gpt),
            opset_version=OPSET,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    if graph == "gpt_step":  # fused while the biases are still initialisers, not fp16 casts
        model = fuse_residual_norms(model, gpt.cfg)
    if graph in ("gpt_step", "ring_select"):
        check_ring_in_place(model, graph)
    store_weights_in_fp16(model)
    onnx.helper.set_model_props(model, {**metadata, "graph": graph})
    onnx.checker.check_model(model)
    with atomic_output(path) as temporary:
        onnx.save(model, temporary)


def compare_with_torch(modules: dict[str, nn.Module], paths: dict[str, Path], gpt: MotionGPT) -> dict[str, float]:
    """Largest absolute difference of each graph's outputs from torch's on fresh random inputs."""
    import onnxruntime

    torch.manual_seed(1)
    differences = {}
    for graph, module in modules.items():
        inputs = example_inputs(gpt)[graph]
        if graph == "gpt_step":  # a full window of past positions, a sliding step, other candidates
            inputs.update(positions=torch.arange(900, 902), **example_ring(gpt.cfg, 900, batch=EXAMPLE_BATCH + 2))
            inputs["tokens"] = torch.randint(0, gpt.cfg.num_lower_codes, (EXAMPLE_BATCH + 2, 2))
            inputs["streams"] = torch.tensor([[2, 0]] * (EXAMPLE_BATCH + 2))
            inputs["music_steps"] = torch.randn(EXAMPLE_BATCH + 2, 2, gpt.cfg.d_model)
        if graph == "ring_select":  # one row, another count of slots
            ring = example_ring(gpt.cfg, 900, batch=EXAMPLE_BATCH + 2)
            inputs.update(row=torch.tensor([0]), slots=torch.tensor([5, 6, 7]), ring_keys=ring["ring_keys"])
            inputs["ring_values"] = ring["ring_values"]
        with torch.no_grad():
            expected = flat_values(module(*inputs.values()))
        session = onnxruntime.InferenceSession(str(paths[graph]), providers=["CPUExecutionProvider"])
        feeds = dict(zip(flat_names(inputs), flat_values(list(inputs.values())), strict=True))
        got = session.run(None, {name: value.numpy() for name, value in feeds.items()})
        differences[graph] = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
    return differences


def export_generator(weights: Path) -> list[Path]:
    """Write ``<weights stem>.<graph>.onnx`` beside ``weights``; returns their paths."""
    configs, tensors, _ = read_checkpoint(weights)
    source = str(weights)
    vqvae = restore_network(configs, tensors, "vqvae", VQVAEConfig, MotionVQVAE, source).eval()
    gpt = restore_network(configs, tensors, "gpt", GPTConfig, MotionGPT, source).eval()
    metadata = {
        META_FORMAT: ONNX_FORMAT,
        META_CONFIGS: json.dumps({"vqvae": configs["vqvae"], "gpt": configs["gpt"]}),
        META_SOURCE_SHA256: sha256_of(weights),
    }
    modules = {
        "music_encoder": MusicEncoder(gpt),
        "gpt_step": GenerationStep(gpt),
        "ring_select": RingSelect(),
        "motion_decoder": MotionDecoder(vqvae),
    }
    paths = {graph: onnx_path(weights, graph) for graph in modules}
    for graph, module in modules.items():
        export_graph(module, graph, gpt, metadata, paths[graph])
    for graph, difference in compare_with_torch(modules, paths, gpt).items():
        print(f"{paths[graph]}: {paths[graph].stat().st_size / 1e6:.1f} MB, max |onnx - torch| = {difference:.2e}")
    return list(paths.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="?", default=DEFAULT_WEIGHTS, help="generator checkpoint")
    args = parser.parse_args(argv)
    logging.getLogger("torch").setLevel(logging.ERROR)
    try:
        export_generator(args.weights)
    except CheckpointError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
