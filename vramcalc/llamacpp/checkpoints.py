"""llama-server's context checkpoints and prompt cache: host RAM that grows as conversations run, after start-up.

A context checkpoint is the part of a slot's memory that cannot be rolled back, copied to host RAM so the slot
can branch from that point later (llama.cpp 4df29be tools/server/server-context.cpp create_checkpoint ->
common/common.cpp common_prompt_checkpoint::update_tgt -> llama_state_seq_get_data_ext with
LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY). The server makes them only when the memory cannot remove a suffix of a
sequence: recurrent state (hybrid or pure recurrent models), or a sliding-window cache without --swa-full
(server-context.cpp `do_checkpoint`: seq_rm type FULL or RS, or n_swa > 0); up to -ctxcp per slot
(common/common.h n_ctx_checkpoints, 32 at 4df29be; PR #15293 started at 3).

What one checkpoint holds, as the state writers serialize it at 4df29be:
- the recurrent state of the slot's one cell (src/llama-memory-recurrent.cpp state_write / state_write_meta /
  state_write_data): cell count (4 B), the cell's pos and seq-id count (8 B), s_trans and n_layer (8 B), and per
  recurrent layer the r and s rows, each behind its type and row size (12 B);
- the sliding-window cells of the slot that the window does not mask (src/llama-kv-cache-iswa.cpp state_write
  skips the full-attention cache under PARTIAL_ONLY; src/llama-kv-cache.cpp state_write skips masked cells and
  writes, per stream, a cell count (4 B), per cell pos, seq-id count and the seq id (12 B), v_trans and n_layer
  (8 B), and per SWA layer the K and V rows behind 12 B of header each); llama-memory-hybrid.cpp drops the
  attention cache altogether under PARTIAL_ONLY.
A draft model's or MTP head's checkpoint part (update_dft: its plain KV cache ignores PARTIAL_ONLY and writes the
slot's whole KV) is not sized here.

The prompt cache (-cram, common.h cache_ram_mib, 8192 MiB at 4df29be) keeps whole slot states of past prompts,
with their checkpoints, up to that many MiB (tools/server/server-task.cpp server_prompt_cache::update); -1 sets
no size limit, 0 turns it off.
"""

from __future__ import annotations

from ..cache_kinds import SlidingWindow, cache_layers
from ..ggml import row_bytes
from ..spec import ModelSpec

_CELL_META_RECURRENT = 8  # pos, n_seq_id (0: the one seq id is not repeated)
_CELL_META_KV = 12  # pos, n_seq_id, the seq id
_ROW_HEADER = 12  # int32 type + uint64 row size (or type + element size + width for a transposed V)


def checkpoint_bytes(spec: ModelSpec, type_k: str, type_v: str, n_tokens: int, streams: int = 1,
                     swa_full: bool = False, swa_extra_cells: int = 0) -> int:
    """Bytes of one context checkpoint of one slot holding `n_tokens` (the spec as llama.cpp runs it); 0 when the
    server makes none for this model. `streams`: KV streams (n_seq_max without a unified KV cache, else 1).
    swa_extra_cells: the sliding-window cells kept beyond the window (n_ubatch before PR #23981, whose
    state_write skips the masked cells; 0 since)."""
    layers = list(cache_layers(spec))
    recurrent = [c.recurrent for c in layers if c.recurrent is not None]
    swa = [c.attention for c in layers if isinstance(c.attention, SlidingWindow)]
    if not recurrent and (not swa or swa_full):
        return 0  # the cache can drop a suffix: no checkpoint (server-context.cpp do_checkpoint)
    total = 0
    if recurrent:  # llama_memory_recurrent::state_write for the slot's one cell
        total += 4 + _CELL_META_RECURRENT + 8 + sum(2 * _ROW_HEADER + r.state_bytes(4, 4) for r in recurrent)
    if swa:  # llama_kv_cache_iswa::state_write: the SWA cache only
        cells = min(n_tokens, max(a.window for a in swa) + swa_extra_cells)  # the unmasked: the last n_swa
        total += 4 + 4 * streams  # n_stream, then a cell count per stream (the slot's cells are in one)
        if cells:
            total += cells * _CELL_META_KV + 8
            for a in swa:
                k_w, v_w = a.row_widths()
                total += _ROW_HEADER + cells * row_bytes(type_k, k_w)
                if v_w:
                    total += _ROW_HEADER + cells * row_bytes(type_v, v_w)
    return total

