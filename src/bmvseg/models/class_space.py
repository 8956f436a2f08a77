"""Whether a model's task network is one per-pixel affine map (so warps commute with it).

Bilinear warping (:mod:`bmvseg.warp`) gives every output pixel a weighted sum of source pixels
whose weights add up to 1, and avg fusion blends two maps with weights that add up to 1.  A task
network ``L`` that maps each feature pixel to its logits by the same affine map (``L(f) = A f +
b`` per pixel: a 1x1 convolution or linear classifier, possibly after eval-mode dropout or
batch norm) therefore satisfies ``L(sum w_i f_i) = sum w_i L(f_i)`` for such weights: warping
and fusing the K-channel logits gives what warping and fusing the C-channel features and then
running ``L`` gives, up to float rounding.  The engine uses it to carry 19 channels instead of
768 (SegFormer's context split).

The test is on the task network's own graph, never on the model's name:
:func:`affine_task` records what ``model.logits`` computes on a small probe map (``make_fx``
runs it, so Python control flow and attribute lookups resolve as they do in a real call) and
accepts the graph only when every operation on the path from the features to the logits is
one of a short list of per-pixel affine ones (:data:`_AFFINE`): 1x1 stride-1 convolutions,
batch norm in eval mode, eval-mode dropout (an identity), copies, channel selection, sums of
affine terms and products with spatially constant constants.  Anything else (a ReLU, a 3x3
convolution, a max merging outputs, a second feature tensor) answers False and the engine
stays in feature space.
"""

from __future__ import annotations

import operator

import torch
from torch.fx import GraphModule, Node

from bmvseg.models.base import Features, SegmentationModel

_aten = torch.ops.aten
_COPIES = {_aten.clone.default, _aten.alias.default, _aten.detach.default,
           _aten.contiguous.default, _aten.lift_fresh_copy.default}  # fmt: skip
_BATCH_NORMS = {_aten.native_batch_norm.default, _aten._native_batch_norm_legit_no_training.default,
                _aten.batch_norm.default}  # fmt: skip
_SUMS = {_aten.add.Tensor, _aten.sub.Tensor}
_SCALINGS = {_aten.mul.Tensor, _aten.div.Tensor, _aten.mul.Scalar, _aten.div.Scalar,
             _aten.add.Scalar, _aten.sub.Scalar}  # fmt: skip
_PROBE_HW = (3, 5)  # a small map: the check runs the task network once on it


def affine_task(model: SegmentationModel, like: Features) -> bool:
    """True when ``model.logits`` maps a feature map shaped like ``like`` (one tensor) to logits
    on the same grid by one per-pixel affine map (see the module docstring).  The graph is
    recorded in the model's current mode: in training mode dropout and batch statistics are
    not affine, so the answer is False."""
    if len(like) != 1 or not model.has_lowres_logits:
        return False
    f = like[0]
    probe = torch.zeros((1, f.shape[1], *_PROBE_HW), dtype=f.dtype, device=f.device)
    try:
        from torch.fx.experimental.proxy_tensor import make_fx

        with torch.inference_mode(False), torch.no_grad():
            graph = make_fx(lambda x: model.logits((x,)))(probe)
            out = model.logits((probe,))
    except Exception:  # a task network make_fx cannot record: not provably affine
        return False
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[-2:] != _PROBE_HW:
        return False
    return _graph_is_affine(graph)


def _graph_is_affine(gm: GraphModule) -> bool:
    """Every node on the path from the (one) input to the output is affine per pixel."""
    affine: set[Node] = set()  # nodes that depend on the input, affinely
    depends: set[Node] = set()  # nodes that depend on the input at all
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            affine.add(node)
            depends.add(node)
            continue
        inputs = [a for a in node.all_input_nodes if a in depends]
        if node.op == "output":
            (res,) = node.args
            return isinstance(res, Node) and res in affine
        if not inputs:
            continue
        depends.add(node)
        if all(a in affine for a in inputs) and _affine_op(gm, node, depends):
            affine.add(node)
    return False


def _affine_op(gm: GraphModule, node: Node, depends: set[Node]) -> bool:
    """Whether ``node``, whose tensor inputs from the features are affine, is affine in them."""
    if node.op != "call_function":
        return False
    target, args = node.target, node.args
    if target in _COPIES:
        return True
    if target is _aten.convolution.default:  # (x, w, b, stride, padding, dilation, transposed..)
        x, w, b, stride, padding, _dil, transposed = args[:7]
        return (x in depends and w not in depends and b not in depends and not transposed
                and list(stride) == [1, 1] and list(padding) == [0, 0]
                and tuple(_value(gm, w).shape[-2:]) == (1, 1))  # fmt: skip
    if target in _BATCH_NORMS:  # (x, weight, bias, mean, var, training, ...)
        training = args[5] if target is not _aten._native_batch_norm_legit_no_training.default \
            else False  # fmt: skip
        return args[0] in depends and not training and not any(a in depends for a in args[1:5])
    if target is operator.getitem:  # an element of a batch norm's tuple: 0 is its output
        return args[1] == 0
    if target in _SUMS:
        return all(_spatially_constant(gm, a) for a in args[:2] if a not in depends)
    if target in _SCALINGS:
        x, y = args[:2]
        return x in depends and y not in depends and _spatially_constant(gm, y)
    if target is _aten.index.Tensor:  # x[:, idx]: a selection of channels
        x, idx = args
        return (len(idx) == 2 and idx[0] is None and idx[1] not in depends
                and x in depends)  # fmt: skip
    if target is _aten.index_select.default or target is _aten.slice.Tensor:
        return args[0] in depends and args[1] == 1 and not any(a in depends for a in args[2:])
    return False


def _value(gm: GraphModule, arg) -> torch.Tensor:
    """The constant a node stands for (a parameter or buffer the trace holds)."""
    if isinstance(arg, Node) and arg.op == "get_attr":
        return getattr(gm, arg.target)
    raise TypeError(f"not a constant: {arg!r}")


def _spatially_constant(gm: GraphModule, arg) -> bool:
    """A number, or a constant tensor the same at every pixel (its last two sizes are 1)."""
    if arg is None or isinstance(arg, (int, float, bool)):
        return True
    try:
        t = _value(gm, arg)
    except TypeError:
        return False
    return t.ndim == 0 or (t.ndim >= 2 and tuple(t.shape[-2:]) == (1, 1))
