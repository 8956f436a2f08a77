"""Whether a model's task network is one per-pixel affine map (so warps commute with it).

Bilinear warping (:mod:`bmvseg.warp`) gives every output pixel a weighted sum of source pixels
whose weights add up to 1, and avg fusion blends two maps with weights that add up to 1.  A task
network ``L`` that maps each feature pixel to its logits by the same affine map (``L(f) = A f +
b`` per pixel: a 1x1 convolution or linear classifier, possibly after eval-mode dropout or
batch norm) therefore satisfies ``L(sum w_i f_i) = sum w_i L(f_i)`` for such weights: warping
and fusing the K-channel logits gives what warping and fusing the C-channel features and then
running ``L`` gives, up to float rounding.  The engine uses it to carry 19 channels instead of
768 (SegFormer's context split).  A task that only *begins* with such a map (``enet_lite``: a
1x1 convolution and batch norm to 32 channels, then a PReLU and the classifier) is cut after
it: the engine carries the narrower map and runs the rest of the task on every frame
(:func:`task_cut`).

The test is on the task network's own graph, never on the model's name:
:func:`affine_task` records what ``model.logits`` computes on a small probe map (the aten
operations of a real call, so Python control flow and attribute lookups resolve as in a run) and
accepts the graph only when every operation on the path from the features to the logits is
one of a short list of per-pixel affine ones (:data:`_AFFINE`): 1x1 stride-1 convolutions,
batch norm in eval mode, eval-mode dropout (an identity), copies, channel selection, sums of
affine terms and products with spatially constant constants.  Anything else (a ReLU, a 3x3
convolution, a max merging outputs, a second feature tensor) answers False and the engine
stays in feature space.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.utils._pytree as pytree
from torch.fx import Graph, GraphModule, Interpreter, Node
from torch.utils._python_dispatch import TorchDispatchMode

from bmvseg.models.base import Features, SegmentationModel

_aten = torch.ops.aten
_COPIES = {_aten.clone.default, _aten.alias.default, _aten.detach.default,
           _aten.contiguous.default, _aten.lift_fresh_copy.default}  # fmt: skip
_BATCH_NORMS = {_aten.native_batch_norm.default, _aten._native_batch_norm_legit_no_training.default,
                _aten.batch_norm.default}  # fmt: skip
_DROPOUTS = {_aten.dropout.default, _aten.feature_dropout.default}
_SUMS = {_aten.add.Tensor, _aten.sub.Tensor}
_SCALINGS = {_aten.mul.Tensor, _aten.div.Tensor, _aten.mul.Scalar, _aten.div.Scalar,
             _aten.add.Scalar, _aten.sub.Scalar}  # fmt: skip
_PROBE_HW = (3, 5)  # a small map: the check runs the task network once on it


@dataclass(frozen=True)
class TaskCut:
    """The task network cut after its narrowest per-pixel affine part: ``carry`` maps a
    feature map to what the engine warps and fuses (``channels`` wide), ``rest`` maps that to
    the low-resolution logits (None: the carried map is the logits)."""

    carry: Callable[[torch.Tensor], torch.Tensor]
    rest: Callable[[torch.Tensor], torch.Tensor] | None
    channels: int

    def logits(self, carried: torch.Tensor) -> torch.Tensor:
        return carried if self.rest is None else self.rest(carried)


def affine_task(model: SegmentationModel, like: Features) -> bool:
    """True when ``model.logits`` maps a feature map shaped like ``like`` (one tensor) to logits
    on the same grid by one per-pixel affine map (see the module docstring).  The graph is
    recorded in the model's current mode: in training mode dropout and batch statistics are
    not affine, so the answer is False."""
    found = _trace(model, like)
    return found is not None and _graph_is_affine(found[0])


def task_cut(model: SegmentationModel, like: Features) -> TaskCut | None:
    """Where to carry: the whole task when it is affine (``model.logits`` itself), else after
    the narrowest affine node every path to the logits passes through; None when no such cut
    is narrower than the features (then carrying them is as cheap)."""
    found = _trace(model, like)
    if found is None:
        return None
    gm, probe = found
    channels = like[0].shape[1]
    if _graph_is_affine(gm):
        out = _shapes(gm, probe)[_output(gm)]
        if out[1] >= channels:
            return None
        return TaskCut(lambda f: model.logits((f,)), None, out[1])
    shapes = _shapes(gm, probe)
    cuts = [n for n in _dominators(gm) if len(shapes.get(n, ())) == 4
            and tuple(shapes[n][-2:]) == probe.shape[-2:] and shapes[n][1] < channels]  # fmt: skip
    if not cuts:
        return None
    order = {n: i for i, n in enumerate(gm.graph.nodes)}  # the narrowest, then the latest:
    best = min(cuts, key=lambda n: (shapes[n][1], -order[n]))  # keyframes do the most of it
    carry, rest = _split_at(gm, best)
    return TaskCut(carry, rest, shapes[best][1])


def _trace(model: SegmentationModel, like: Features) -> tuple[GraphModule, torch.Tensor] | None:
    """The aten graph of ``model.logits`` on a small probe map, and the probe (None: not one
    feature tensor, no low-resolution logits, or a task that cannot be recorded)."""
    if len(like) != 1 or not model.has_lowres_logits:
        return None
    f = like[0]
    try:
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, as in training
            probe = torch.zeros((1, f.shape[1], *_PROBE_HW), dtype=f.dtype, device=f.device)
            graph, out = _record(lambda x: model.logits((x,)), probe)
        graph.graph.eliminate_dead_code()  # e.g. the batch statistics a batch norm also returns
        graph.recompile()
    except Exception:  # a task network that cannot be recorded: not provably affine
        return None
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[-2:] != _PROBE_HW:
        return None
    return graph, probe


class _Recorder(TorchDispatchMode):
    """Records every aten operation a call runs, as an FX graph on the tensors it sees.

    What ``make_fx`` records on real tensors, without its cost: its first use imports the
    compiler stack (1 s with byte-code caches, 4 s without), paid inside the first run of a
    process.  A tensor the call did not compute (a parameter, a buffer) becomes a constant of
    the graph module (a ``get_attr`` node); a tuple result becomes ``getitem`` nodes.
    """

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph
        self.nodes: dict[int, Node] = {}  # id(tensor) -> the node that made it
        self.constants: dict[str, torch.Tensor] = {}
        self._alive: list[torch.Tensor] = []  # keeps ids unique while recording

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # never compiled; wrapping it for the compiler would import the stack

    def node_of(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        node = self.nodes.get(id(value))
        if node is None:  # made outside the call: a constant
            name = f"_constant{len(self.constants)}"
            self.constants[name] = value
            node = self.graph.get_attr(name)
            self.bind(value, node)
        return node

    def bind(self, value: torch.Tensor, node: Node) -> None:
        self.nodes[id(value)] = node
        self._alive.append(value)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        node = self.graph.call_function(func, *pytree.tree_map(self.node_of, (args, kwargs)))
        if isinstance(out, torch.Tensor):
            self.bind(out, node)
        elif isinstance(out, (tuple, list)):
            for i, item in enumerate(out):
                if isinstance(item, torch.Tensor):
                    self.bind(item, self.graph.call_function(operator.getitem, (node, i)))
        return out


def _record(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
            ) -> tuple[GraphModule, torch.Tensor]:  # fmt: skip
    """``fn``'s aten graph on ``x`` (see :class:`_Recorder`) and its result."""
    graph = Graph()
    rec = _Recorder(graph)
    rec.bind(x, graph.placeholder("features"))
    with rec:
        out = fn(x)
    graph.output(rec.node_of(out))
    return GraphModule(rec.constants, graph), out


def _output(gm: GraphModule) -> Node:
    (res,) = next(n for n in gm.graph.nodes if n.op == "output").args
    return res


def _shapes(gm: GraphModule, probe: torch.Tensor) -> dict[Node, tuple[int, ...]]:
    """The shape of every tensor the graph computes on ``probe``."""
    shapes: dict[Node, tuple[int, ...]] = {}

    class _Record(Interpreter):
        def run_node(self, n: Node):
            val = super().run_node(n)
            if isinstance(val, torch.Tensor):
                shapes[n] = tuple(val.shape)
            return val

    with torch.no_grad():
        _Record(gm).run(probe)
    return shapes


def _dominators(gm: GraphModule) -> list[Node]:
    """Affine nodes (on the input's path) through which every later use of the input passes."""
    nodes = list(gm.graph.nodes)
    affine, depends = _classify(gm)
    out = []
    for i, n in enumerate(nodes):
        if n not in affine or n.op == "placeholder":
            continue
        before = {m for m in nodes[:i] if m in depends}
        later = [m for m in nodes[i + 1 :] if m.op != "output"]
        if all(not (set(m.all_input_nodes) & before) for m in later) and _output(gm) in depends:
            out.append(n)
    return out


def _split_at(gm: GraphModule, cut: Node) -> tuple[GraphModule, GraphModule]:
    """Two graph modules: input -> ``cut``, and ``cut`` -> the output (sharing ``gm``'s
    constants; what the second needs from before the cut is constants only, see
    :func:`_dominators`)."""
    nodes = list(gm.graph.nodes)
    i = nodes.index(cut)
    first, env1 = Graph(), {}
    for n in nodes[: i + 1]:
        env1[n] = first.node_copy(n, lambda a: env1[a])
    first.output(env1[cut])
    second = Graph()
    env2 = {cut: second.placeholder("carried")}

    def arg(a: Node) -> Node:
        if a not in env2:  # a constant computed before the cut: copy it and what it needs
            env2[a] = second.node_copy(a, arg)
        return env2[a]

    for n in nodes[i + 1 :]:
        if n.op != "output":
            env2[n] = second.node_copy(n, arg)
    second.output(env2[_output(gm)])
    halves = GraphModule(gm, first), GraphModule(gm, second)
    for h in halves:
        h.graph.eliminate_dead_code()
        h.recompile()
    return halves


def _graph_is_affine(gm: GraphModule) -> bool:
    """Every node on the path from the (one) input to the output is affine per pixel."""
    affine, _ = _classify(gm)
    res = _output(gm)
    return isinstance(res, Node) and res in affine


def _classify(gm: GraphModule) -> tuple[set[Node], set[Node]]:
    """(the nodes that depend on the input affinely, the nodes that depend on it at all)."""
    affine: set[Node] = set()
    depends: set[Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            affine.add(node)
            depends.add(node)
            continue
        if node.op == "output" or not any(a in depends for a in node.all_input_nodes):
            continue
        depends.add(node)
        if all(a in affine for a in node.all_input_nodes if a in depends) and _affine_op(
            gm, node, depends
        ):
            affine.add(node)
    return affine, depends


def _affine_op(gm: GraphModule, node: Node, depends: set[Node]) -> bool:
    """Whether ``node``, whose tensor inputs from the features are affine, is affine in them."""
    if node.op != "call_function":
        return False
    target, args = node.target, node.args
    if target in _COPIES:
        return True
    if target in _DROPOUTS:  # (x, p, train): the identity in eval mode
        return args[0] in depends and args[2] is False
    if target is _aten.mkldnn_convolution.default:  # (x, w, b, padding, stride, dilation, ..)
        x, w, b, padding, stride = args[:5]  # models.base.PinnedConv2d's (thread-independent)
        transposed = False
    elif target is _aten.convolution.default:  # (x, w, b, stride, padding, dilation, transposed..)
        x, w, b, stride, padding, _dil, transposed = args[:7]
    if target in (_aten.mkldnn_convolution.default, _aten.convolution.default):
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
