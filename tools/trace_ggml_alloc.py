"""Check galloc.py (the ggml-alloc replay) and graphs.py (the rebuilt graphs) against a real llama.cpp.

1. patch: add a dump hook to ggml/src/ggml-alloc.c of a llama.cpp tree (4df29be): when GALLOC_DUMP
   names a file, every reserved graph is appended to it (each leaf and node: op, type, shape,
   strides, flags, view source, sources) with the peak ggml-alloc reached. Rebuild ggml-base only.
       python tools/trace_ggml_alloc.py patch <llama.cpp>
       cmake --build <llama.cpp>/build --target ggml-base
2. run a program against the patched libggml-base (LD_PRELOAD or LD_LIBRARY_PATH) with GALLOC_DUMP set,
   e.g. tools/record_llamacpp.py's loader for each recorded setting.
3. check: replay every dumped graph through vramcalc.llamacpp.galloc and compare the peaks.
       python tools/trace_ggml_alloc.py check run1.dump [run2.dump ...]
On the 177 recorded runs (531 reserve graphs) the replay equals ggml-alloc's peak on every graph.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramcalc.llamacpp.galloc import peak_bytes  # noqa: E402
from vramcalc.llamacpp.ggml_graph import Graph, T  # noqa: E402

HOOK = r'''    ggml_gallocr_alloc_graph_impl(galloc, graph, node_buffer_ids, leaf_buffer_ids);
    if (getenv("GALLOC_DUMP")) {
        FILE * f = fopen(getenv("GALLOC_DUMP"), "a");
        fprintf(f, "GRAPH %d %d\n", graph->n_nodes, graph->n_leafs);
        for (int i = 0; i < graph->n_leafs + graph->n_nodes; i++) {
            const bool leaf = i < graph->n_leafs;
            struct ggml_tensor * t = leaf ? graph->leafs[i] : graph->nodes[i - graph->n_leafs];
            fprintf(f, "%s %p %s %d %ld %ld %ld %ld %zu %zu %zu %zu %d %d %p %zu |", leaf ? "L" : "N", (void*)t,
                    ggml_op_name(t->op), t->type, (long)t->ne[0], (long)t->ne[1], (long)t->ne[2], (long)t->ne[3],
                    t->nb[0], t->nb[1], t->nb[2], t->nb[3], t->flags, (t->data != NULL || t->buffer != NULL),
                    (void*)t->view_src, t->view_offs);
            for (int j = 0; j < GGML_MAX_SRC; j++) if (t->src[j]) fprintf(f, " %p", (void*)t->src[j]);
            fprintf(f, "\n");
        }
        for (int i = 0; i < galloc->n_buffers; i++)
            for (int c = 0; c < galloc->buf_tallocs[i]->n_chunks; c++)
                fprintf(f, "MAX %d %d %zu\n", i, c, galloc->buf_tallocs[i]->chunks[c]->max_size);
        fclose(f);
    }
'''
ANCHOR = "    ggml_gallocr_alloc_graph_impl(galloc, graph, node_buffer_ids, leaf_buffer_ids);\n"
TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 20: "IQ4_NL", 26: "I32",
         27: "I64", 30: "BF16"}


def patch(tree: Path) -> None:
    src = tree / "ggml/src/ggml-alloc.c"
    text = src.read_text()
    if "GALLOC_DUMP" in text:
        return
    assert text.count(ANCHOR) == 1, "ggml-alloc.c differs from the version this hook was written for"
    src.write_text(text.replace(ANCHOR, HOOK))


def graphs(path: Path) -> list[tuple[Graph, int]]:
    out: list[tuple[Graph, int]] = []
    cur: Graph | None = None
    by_ptr: dict[str, T] = {}
    pending: list[tuple[T, list[str], str]] = []

    def close() -> None:
        for t, srcs, view in pending:
            t.srcs = [by_ptr.setdefault(s, T("F32", (0, 1, 1, 1), (4, 0, 0, 0), external=True)) for s in srcs]
            t.view_src = by_ptr.get(view)
    for line in path.read_text().splitlines():
        f = line.split()
        if f[0] == "GRAPH":
            cur, by_ptr, pending = Graph(), {}, []
        elif f[0] in ("L", "N") and cur is not None:
            bar = f.index("|")
            ty = TYPES.get(int(f[3]), "F32")
            t = T(ty, tuple(int(x) for x in f[4:8]), tuple(int(x) for x in f[8:12]), f[2],  # type: ignore[arg-type]
                  flags=int(f[12]), external=f[13] == "1", view_offs=int(f[15]))
            by_ptr[f[1]] = t
            pending.append((t, f[bar + 1:], f[14]))
            (cur.leafs if f[0] == "L" else cur.nodes).append(t)
        elif f[0] == "MAX" and cur is not None:
            close()
            out.append((cur, int(f[3])))
    return out


def check(paths: list[Path]) -> None:
    n = bad = 0
    for p in paths:
        for g, real in graphs(p):
            n += 1
            if peak_bytes(g) != real:
                bad += 1
                print(f"{p}: replay {peak_bytes(g)} != ggml-alloc {real}")
    print(f"{n} graphs, {n - bad} equal")


if __name__ == "__main__":
    if sys.argv[1] == "patch":
        patch(Path(sys.argv[2]))
    else:
        check([Path(a) for a in sys.argv[2:]])
