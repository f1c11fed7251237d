"""Just enough of ggml to rebuild llama.cpp's worst-case graph and replay ggml-alloc on it.

Tensors carry what the allocator looks at: type, shape and strides (ggml_are_same_layout), the op
(in-place candidates), sources, the view they alias and the input/output flags. Weights and KV cache
tensors are 'external' (allocated elsewhere). Graph order is ggml's: ggml_build_forward_expand
visits sources left to right, depth first, and appends each tensor after its sources
(ggml/src/ggml.c ggml_visit_parents_graph); tensors without an op become leafs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any, Generic, TypeVar

from ..ggml import ggml_type

INPUT, OUTPUT = 1, 2
R = TypeVar("R")
_BLOCKS: dict[str, tuple[int, int]] = {}


def _block(type_: str) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type; asked for every tensor a graph makes."""
    b = _BLOCKS.get(type_)
    if b is None:
        t = ggml_type(type_)
        b = _BLOCKS[type_] = (t.block, t.block_bytes)
    return b


class _once(Generic[R]):
    """A property computed on first use and kept in the instance (functools.cached_property without its
    per-call lock, which Python 3.11 still takes; graphs are built in one thread)."""

    def __init__(self, f: Callable[[Any], R]) -> None:
        self.f, self.name = f, f.__name__

    def __get__(self, obj: Any, cls: Any = None) -> R:
        if obj is None:
            return self  # type: ignore[return-value]
        v = obj.__dict__[self.name] = self.f(obj)
        return v


@dataclass(eq=False)
class T:
    type: str
    ne: tuple[int, int, int, int]
    nb: tuple[int, int, int, int]
    op: str = "NONE"
    srcs: list[T] = field(default_factory=list)
    view_src: T | None = None
    view_offs: int = 0
    flags: int = 0
    external: bool = False  # weights, KV cache: not in the compute buffer
    name: str = ""

    @_once
    def nbytes(self) -> int:
        """ggml_nbytes (shape and strides never change after creation)."""
        block, block_bytes = _block(self.type)
        n0, n1, n2, n3 = self.ne
        if not (n0 and n1 and n2 and n3):
            return 0
        b0, b1, b2, b3 = self.nb
        rest = (n1 - 1) * b1 + (n2 - 1) * b2 + (n3 - 1) * b3
        return block_bytes + (n0 - 1) * b0 + rest if block == 1 else n0 * b0 // block + rest

    @property
    def contiguous(self) -> bool:
        return self.nb == _strides(self.type, self.ne)

    @_once
    def layout(self) -> tuple:
        return (self.type, self.ne, self.nb)


def _ne4(ne: Iterable[int]) -> tuple[int, int, int, int]:
    t = tuple(ne)
    return t + (1,) * (4 - len(t)) if len(t) < 4 else t  # type: ignore[return-value]


def _strides(type_: str, ne: Sequence[int]) -> tuple[int, int, int, int]:
    block, nb0 = _block(type_)
    nb1 = nb0 * (ne[0] // block)
    return (nb0, nb1, nb1 * ne[1], nb1 * ne[1] * ne[2])


def new(type_: str, *ne: int, op: str = "NONE", srcs: Iterable[T] = (), name: str = "") -> T:
    ne4 = _ne4(ne)
    return T(type_, ne4, _strides(type_, ne4), op, list(srcs), name=name)


def weight(type_: str, *ne: int) -> T:
    t = new(type_, *ne)
    t.external = True
    return t


def input_(type_: str, *ne: int, name: str = "") -> T:
    t = new(type_, *ne, name=name)
    t.flags |= INPUT
    return t


def _view(a: T, ne: Iterable[int], nb: Iterable[int], offs: int, op: str, srcs: Iterable[T] | None = None) -> T:
    root = a.view_src if a.view_src is not None else a
    offs += a.view_offs if a.view_src is not None else 0
    return T(a.type, _ne4(ne), tuple(nb), op, list(srcs if srcs is not None else [a]), root, offs,  # type: ignore[arg-type]
             external=root.external)


# --- ops: shapes as ggml.c computes them --------------------------------------------------------

def view(a: T, ne: Iterable[int], nb_rest: Iterable[int] = (), offs: int = 0) -> T:
    """ggml_view_{1,2,3,4}d: nb_rest = (nb1, nb2, nb3) as given; nb0 is the type's."""
    ne4 = _ne4(ne)
    nb = [a.nb[0]] + list(nb_rest)
    while len(nb) < 4:
        nb.append(nb[-1] * ne4[len(nb) - 1])
    return _view(a, ne4, nb, offs, "VIEW")


def reshape(a: T, *ne: int) -> T:
    ne4 = _ne4(ne)
    assert prod(ne4) == prod(a.ne), (a.ne, ne4)
    return _view(a, ne4, _strides(a.type, ne4), 0, "RESHAPE")


def permute(a: T, *axes: int) -> T:
    ne, nb = [0] * 4, [0] * 4
    for i, ax in enumerate(axes):
        ne[ax], nb[ax] = a.ne[i], a.nb[i]
    return _view(a, ne, nb, 0, "PERMUTE")


def transpose(a: T) -> T:
    return _view(a, (a.ne[1], a.ne[0], a.ne[2], a.ne[3]), (a.nb[1], a.nb[0], a.nb[2], a.nb[3]), 0, "TRANSPOSE")


def cont(a: T, *ne: int) -> T:
    return new(a.type, *(ne or a.ne), op="CONT", srcs=[a])


def unary(op: str, a: T) -> T:
    """Same shape and type as a (RMS_NORM, NORM, SCALE, UNARY, ROPE with extra sources ...)."""
    return new(a.type, *a.ne, op=op, srcs=[a])


def same(op: str, a: T, *others: T | None) -> T:
    return new("F32" if a.type not in ("F32", "F16") else a.type, *a.ne, op=op,
               srcs=[a] + [o for o in others if o is not None])


def mul_mat(w: T, x: T) -> T:
    return new("F32", w.ne[1], x.ne[1], x.ne[2], x.ne[3], op="MUL_MAT", srcs=[w, x])


def mul_mat_id(w: T, x: T, ids: T) -> T:
    return new("F32", w.ne[1], ids.ne[0], x.ne[2], 1, op="MUL_MAT_ID", srcs=[w, x, ids])


def get_rows(a: T, ids: T) -> T:
    return new("F32", a.ne[0], ids.ne[0], ids.ne[1], ids.ne[2], op="GET_ROWS", srcs=[a, ids])


def set_rows(dst: T, src: T, ids: T) -> T:
    t = _view(dst, dst.ne, dst.nb, 0, "SET_ROWS", srcs=[src, ids, dst])
    return t


def flash_attn_ext(q: T, k: T, v: T, mask: T | None, sinks: T | None = None) -> T:
    srcs = [q, k, v] + ([mask] if mask is not None else []) + ([sinks] if sinks is not None else [])
    return new("F32", v.ne[0], q.ne[2], q.ne[1], q.ne[3], op="FLASH_ATTN_EXT", srcs=srcs)


def soft_max_ext(a: T, mask: T | None, sinks: T | None = None) -> T:
    return new(a.type, *a.ne, op="SOFT_MAX", srcs=[a] + [s for s in (mask, sinks) if s is not None])


def glu_split(a: T, b: T) -> T:
    return new(a.type, *a.ne, op="GLU", srcs=[a, b])


def concat(a: T, b: T, dim: int) -> T:
    ne = list(a.ne)
    ne[dim] += b.ne[dim]
    return new(a.type, *ne, op="CONCAT", srcs=[a, b])


def cpy(a: T, dst: T) -> T:
    """ggml_cpy: a view of the destination that a is copied into."""
    return _view(dst, dst.ne, dst.nb, 0, "CPY", srcs=[a, dst])


def inplace(op: str, a: T) -> T:
    """ggml_*_inplace (ggml_scale_inplace ...): a view of a carrying the op."""
    return _view(a, a.ne, a.nb, 0, op)


def ssm_conv(sx: T, c: T) -> T:
    """ggml_ssm_conv: {d_inner, n_t, n_s} with n_t = sx.ne0 - d_conv + 1."""
    return new("F32", c.ne[1], sx.ne[0] - c.ne[0] + 1, sx.ne[2], op="SSM_CONV", srcs=[sx, c])


def ssm_scan(s: T, x: T, dt: T, a: T, b: T, c: T, ids: T, k: int = 1) -> T:
    """ggml_ssm_scan: y and the final states, concatenated in one 1-d tensor."""
    n = prod(x.ne) + k * s.ne[0] * s.ne[1] * s.ne[2] * ids.ne[0]
    return new("F32", n, op="SSM_SCAN", srcs=[s, x, dt, a, b, c, ids])


def gated_delta_net(q: T, k: T, v: T, gate: T, beta: T, state: T, k_snap: int = 1) -> T:
    """ggml_gated_delta_net: {S_v*H, tokens*seqs + K*S_v*seqs}, the output rows then the final states."""
    s_v, h, n_t, n_s = v.ne
    return new("F32", s_v * h, n_t * n_s + k_snap * s_v * n_s, op="GATED_DELTA_NET", srcs=[q, k, v, gate, beta, state])


# --- the graph --------------------------------------------------------------------------------

class Graph:
    def __init__(self) -> None:
        self.nodes: list[T] = []
        self.leafs: list[T] = []
        self._seen: set[T] = set()

    def expand(self, t: T) -> T:
        seen = self._seen  # T hashes by identity (eq=False)
        if t in seen:
            return t
        seen.add(t)
        stack: list[tuple[T, int]] = [(t, 0)]
        pop, push, leafs, nodes = stack.pop, stack.append, self.leafs, self.nodes
        while stack:  # iterative post-order DFS, sources left to right
            node, i = pop()
            srcs = node.srcs
            if i < len(srcs):
                push((node, i + 1))
                s = srcs[i]
                if s not in seen:
                    seen.add(s)
                    push((s, 0))
                continue
            (leafs if node.op == "NONE" else nodes).append(node)
        return t
