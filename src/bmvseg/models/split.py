"""Any PyTorch segmentation network as a bmvseg model, cut where the user says.

``split_module(net, cut="decoder.fuse")`` traces ``net`` with ``torch.fx`` (the named submodules
kept as single calls) and divides its graph in two ``GraphModule``s that share ``net``'s
parameters: the feature network computes everything the cut submodule(s) need and returns their
outputs; the task network is the rest of the graph, from those outputs to the network's output.
Nothing of the user's code is parsed or rewritten by hand.

A cut separates the graph when everything after it depends on the image only through the cut
outputs (reading the image's *shape*, e.g. to upsample to it, is allowed: the task network gets
the output size instead).  A branch that bypasses the cut (a skip connection around it, a second
decoder input) does not separate it: list that branch's submodule too, ``cut=["a", "b"]``, and
both become feature tensors.  Aux heads and other outputs are dropped first: the output used is
the tensor the network returns, ``out["out"]`` (torchvision) or ``out.logits`` (transformers),
or the first element of a tuple.

Strides are measured with one probe forward pass (:mod:`bmvseg.models.split_probe`); the
output may have any resolution and is upsampled bilinearly to the image size.  When the
network itself ends in a bilinear upsample to the image size, that upsample is split off, so
the model has low-resolution ``logits`` like the built-in ones and gives the same result.

The multiple every input side must have (``input_multiple``, see :mod:`bmvseg.models.base`)
is measured too, unless given: the smallest power of two ``m`` for which images whose sides
are odd multiples of ``m`` run through the network (one with a skip connection or a
concatenation usually needs its largest stride), made a multiple of every cut stride.  Frames
are padded up to it and labels cropped back; an error inside the network on some other size
still ends as one line naming the size and the likely multiple.
"""

from __future__ import annotations

import difflib
import inspect
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from bmvseg.errors import BmvsegError
from bmvseg.models.base import (
    PAD_MODES,
    Features,
    PinnedConv2d,
    SegmentationModel,
    crop,
    default_palette,
    upsample,
)
from bmvseg.models.split_probe import MULTIPLES, measure_multiple, probe, with_strides

_SHAPE_READS = {("call_function", getattr), ("call_method", "size"), ("call_method", "dim")}


class _ImageShape:
    """Stands in for the image in the task network, which may read only its shape."""

    def __init__(self, shape: torch.Size) -> None:
        self.shape = shape
        self.ndim = len(shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim


def _describe(node: fx.Node) -> str:
    return repr(node.target) if node.op == "call_module" else f"{node.name!r}"


class _Tracer(fx.Tracer):
    """fx's tracer with the cut submodules kept as one call each."""

    def __init__(self, keep: set[str]) -> None:
        super().__init__()
        self.keep = keep

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        pinned = isinstance(m, PinnedConv2d)  # an nn.Conv2d a previous split pinned
        return qualname in self.keep or pinned or super().is_leaf_module(m, qualname)


def _trace(module: nn.Module, cuts: list[str]) -> fx.GraphModule:
    params = list(inspect.signature(module.forward).parameters.values())[1:]
    needed = [p.name for p in params if p.default is inspect.Parameter.empty
              and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
    if needed:
        raise BmvsegError(
            f"{type(module).__name__}.forward needs {', '.join(needed)} besides the image; "
            "wrap it in a module whose forward takes only the image"
        )
    concrete = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    try:
        graph = _Tracer(set(cuts)).trace(module, concrete_args=concrete or None)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BmvsegError(
            f"cannot trace {type(module).__name__} with torch.fx ({type(exc).__name__}: "
            f"{first[:160]}); move data-dependent Python code into a submodule that stays "
            "before or after the cut, or subclass bmvseg.models.base.SegmentationModel"
        ) from None
    return fx.GraphModule(module, graph)


def _keep_only_logits(graph: fx.Graph) -> fx.Node:
    """Make the graph return just the class scores; drop what only other outputs needed."""
    out_node = next(n for n in graph.nodes if n.op == "output")
    out = out_node.args[0]
    if isinstance(out, dict):
        key = "out" if "out" in out else "logits" if "logits" in out else None
        if key is None:
            raise BmvsegError(
                f"the network returns a dict without 'out' or 'logits' (keys: {list(out)})"
            )
        out = out[key]
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, fx.Node):
        raise BmvsegError("the network's output does not depend on its input")
    out_node.args = (out,)
    graph.eliminate_dead_code()
    return out


def _ancestors(nodes: list[fx.Node]) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def _cut_nodes(graph: fx.Graph, cuts: list[str], net: str) -> list[fx.Node]:
    nodes = []
    for name in cuts:
        calls = [n for n in graph.nodes if n.op == "call_module" and n.target == name]
        if len(calls) != 1:
            why = "is not on the path to its output" if not calls else f"is called {len(calls)}x"
            raise BmvsegError(
                f"cut {name!r} {why} in {net}'s traced graph; cut at a submodule the output "
                "needs and that runs once per image"
            )
        nodes.append(calls[0])
    return nodes


def _check_separates(
    graph: fx.Graph, before: set[fx.Node], cut_nodes: list[fx.Node], cuts: list[str], net: str
) -> bool:
    """Refuse a cut that a path bypasses; True when the task network reads the image's shape."""
    reads_shape = False
    for node in graph.nodes:
        if node in before or node.op == "output":
            continue
        for src in node.all_input_nodes:
            if src not in before or src in cut_nodes or src.op == "get_attr":
                continue
            if src.op == "placeholder" and (node.op, node.target) in _SHAPE_READS:
                if node.op == "call_method" or node.args[1] == "shape":
                    reads_shape = True
                    continue
            what = "the input image" if src.op == "placeholder" else _describe(src)
            raise BmvsegError(
                f"cut {', '.join(map(repr, cuts))} does not separate {net}'s graph: "
                f"{_describe(node)} after the cut also uses {what}, computed before it; "
                "cut where every path passes, or list the bypassing branch too (cut=[...])"
            )
    return reads_shape


def _subgraph(
    gm: fx.GraphModule, nodes: list[fx.Node], inputs: list[fx.Node], output: Any
) -> fx.GraphModule:
    """A GraphModule of ``nodes`` (in order) taking ``inputs`` and returning ``output``."""
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for i, n in enumerate(inputs):
        env[n] = g.placeholder(n.name if n.op == "placeholder" else f"feature_{i}")
    for n in nodes:
        if n not in env:
            env[n] = g.node_copy(n, lambda a: env[a])
    g.output(fx.node.map_arg(output, lambda a: env[a]))
    g.lint()
    return fx.GraphModule(gm, g)


def _final_upsample(out: fx.Node, image: fx.Node) -> fx.Node | None:
    """The input of a final bilinear (align_corners=False) upsample to the image size, if any."""
    if out.op != "call_function" or out.target is not F.interpolate:
        return None
    names = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")
    args = dict(zip(names, out.args, strict=False))
    args.update(out.kwargs)
    if args.get("mode") != "bilinear" or args.get("align_corners") not in (None, False):
        return None
    size, src = args.get("size"), args.get("input")
    if not isinstance(size, fx.Node) or not isinstance(src, fx.Node):
        return None
    if args.get("scale_factor") is not None or image not in _ancestors([size]):
        return None
    if args.get("recompute_scale_factor") or args.get("antialias"):
        return None
    # the size must be the image's (H, W): x.shape[-2:] or x.size()[2:]
    if size.op == "call_function" and size.target is operator.getitem:
        idx = size.args[1]
        if (
            isinstance(idx, slice)
            and idx.start in (-2, 2)
            and idx.stop is None
            and idx.step is None
        ):
            return src
    return None


def _to_logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return out["out"] if "out" in out else out["logits"]
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    raise BmvsegError(f"the network's output is a {type(out).__name__}, not class scores")


class SplitModel(SegmentationModel):
    """A traced network cut in two; build it with :func:`split_module`."""

    def __init__(
        self,
        feature_net: fx.GraphModule,
        task_net: fx.GraphModule,
        lowres_net: fx.GraphModule | None,
        task_takes_shape: bool,
        cut: tuple[str, ...],
    ) -> None:
        super().__init__()
        self.feature_net = feature_net
        self.task_net = task_net
        self.lowres_net = lowres_net
        self.task_takes_shape = task_takes_shape
        self.cut = cut
        self.split = ", ".join(cut)  # the cut, for records (summary.json)
        self.net_name = type(feature_net).__name__

    def features(self, image: torch.Tensor) -> Features:
        try:
            return tuple(self.feature_net(image))
        except RuntimeError as exc:
            raise self._size_error(tuple(image.shape[-2:]), exc) from None

    def _run(self, net: fx.GraphModule, feats: Features, out_size: Sequence[int]) -> torch.Tensor:
        args: list[Any] = list(feats)
        if self.task_takes_shape:
            n = feats[0].shape[0]
            args.append(_ImageShape(torch.Size((n, 3, *out_size))))
        try:
            return _to_logits(net(*args))
        except RuntimeError as exc:
            s = self.strides[0]
            raise self._size_error((feats[0].shape[-2] * s, feats[0].shape[-1] * s), exc) from None

    def _size_error(self, hw: tuple[int, int], exc: RuntimeError) -> BmvsegError:
        """One line for an error inside the traced network: the input size and, for a shape
        mismatch, the likely cause (its sides not multiples of some power of two)."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        msg = f"{self.net_name} failed on a {hw[0]}x{hw[1]} input ({first})"
        if not any(w in first.lower() for w in ("size", "shape", "dimension")):
            return BmvsegError(msg)
        n = next((m for m in MULTIPLES[1:] if hw[0] % m or hw[1] % m), 128)
        return BmvsegError(
            f"{msg}; likely cause: its sides are not divisible by {n}; pass "
            f"split_module(..., input_multiple={n}) (or a larger power of two) to pad frames"
        )

    @property
    def has_lowres_logits(self) -> bool:
        return self.lowres_net is not None

    def logits(self, feats: Features) -> torch.Tensor:
        if self.lowres_net is None:
            raise NotImplementedError(
                "this network does not end in a bilinear upsample to the image size"
            )
        return self.map_outputs(self._run(self.lowres_net, feats, (0, 0)))

    def task(self, feats: Features, out_size: tuple[int, int]) -> torch.Tensor:
        cover = self.padded_cover(feats, out_size)
        if self.lowres_net is not None:
            return crop(upsample(self.logits(feats), cover), out_size)
        raw = self._run(self.task_net, feats, cover)
        return self.map_outputs(crop(upsample(raw, cover), out_size))


def split_module(
    module: nn.Module,
    cut: str | Sequence[str],
    *,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    palette: np.ndarray | Sequence[Sequence[int]] | None = None,
    channel_order: str = "RGB",
    scale: float = 1.0 / 255.0,
    void_index: int | None = None,
    class_map: Sequence[int | None] | None = None,
    input_multiple: int | None = None,
    pad_mode: str = "replicate",
) -> SplitModel:
    """Cut ``module`` after submodule(s) ``cut`` into a :class:`SegmentationModel` (eval mode).

    ``class_names``/``palette`` describe the reported classes (after ``void_index`` is dropped
    and ``class_map`` applied, see :mod:`bmvseg.models.base`); None = generic names / colours.
    ``channel_order``, ``scale``, ``mean``, ``std``: what the network expects of its input.
    ``input_multiple``: what every input side must be a multiple of (None: measured; frames
    are padded up to it, ``pad_mode`` "replicate" or "reflect", and labels cropped back).
    """
    net = type(module).__name__
    cuts = [cut] if isinstance(cut, str) else list(cut)
    if not cuts or not all(isinstance(c, str) and c for c in cuts):
        raise BmvsegError(f"cut must name one or more submodules of {net}, not {cut!r}")
    if channel_order not in ("RGB", "BGR"):
        raise BmvsegError(f"channel_order must be 'RGB' or 'BGR', not {channel_order!r}")
    if pad_mode not in PAD_MODES:
        raise BmvsegError(f"pad_mode must be one of {', '.join(PAD_MODES)}, not {pad_mode!r}")
    if input_multiple is not None and not (
        isinstance(input_multiple, int) and not isinstance(input_multiple, bool)
        and 1 <= input_multiple <= 1024
    ):  # fmt: skip
        raise BmvsegError(f"input_multiple must be an integer 1..1024, not {input_multiple!r}")
    names = dict(module.named_modules())
    for c in cuts:
        if c not in names:
            near = difflib.get_close_matches(c, [n for n in names if n], n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise BmvsegError(f"{net} has no submodule {c!r}{hint}")
    module.eval()
    gm = _trace(module, cuts)
    graph = gm.graph
    out = _keep_only_logits(graph)
    image = next(n for n in graph.nodes if n.op == "placeholder")
    cut_nodes = _cut_nodes(graph, cuts, net)
    before = _ancestors(cut_nodes)
    reads_shape = _check_separates(graph, before, cut_nodes, cuts, net)
    order = list(graph.nodes)
    feature_net = _subgraph(gm, [n for n in order if n in before], [image], tuple(cut_nodes))
    after = [n for n in order if n not in before and n.op != "output"]
    inputs = cut_nodes + ([image] if reads_shape else [])
    task_net = _subgraph(gm, after, inputs, out)
    lowres_net = None
    low = _final_upsample(out, image)
    if low is not None:
        lowres_net = _subgraph(gm, [n for n in after if n in _ancestors([low])], inputs, low)
        if reads_shape and next(iter(lowres_net.graph.nodes)).op == "placeholder":
            shape_in = [n for n in lowres_net.graph.nodes if n.op == "placeholder"][-1]
            if shape_in.users:  # needs the output size before its last upsample: no low-res
                lowres_net = None
    if low is None and not reads_shape:  # the output is not resized to the image: it is
        lowres_net = task_net  # the low-resolution scores the task upsamples
    model = SplitModel(feature_net, task_net, lowres_net, reads_shape, tuple(cuts))
    model.channel_order, model.scale = channel_order, float(scale)
    model.mean, model.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(model.mean) != 3 or len(model.std) != 3:
        raise BmvsegError(f"mean and std need 3 values each, not {mean!r} / {std!r}")
    model.net_name, model.pad_mode = net, pad_mode
    probe(model, net, void_index, class_map)
    model.input_multiple = with_strides(
        input_multiple if input_multiple is not None else measure_multiple(model), model.strides
    )
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if len(class_names) != model.num_classes:
            raise BmvsegError(
                f"{len(class_names)} class_names for the {model.num_classes} classes "
                f"{net} reports (after void_index / class_map)"
            )
        model.class_names = class_names
    else:
        model.class_names = tuple(f"class{i}" for i in range(model.num_classes))
    pal = default_palette(model.class_names) if palette is None else np.asarray(palette)
    if pal.shape != (model.num_classes, 3) or pal.min() < 0 or pal.max() > 255:
        raise BmvsegError(
            f"palette must be ({model.num_classes}, 3) values 0..255, not shape {pal.shape}"
        )
    model.palette = pal.astype(np.uint8)
    return model.eval()
