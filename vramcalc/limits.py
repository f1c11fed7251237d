"""The largest values vramcalc plans for: every input that scales its work or its memory is bounded, and a
value beyond a bound is bad input (one line naming the flag or field and the limit, exit code 2).

Each bound is well above any real deployment, so no valid input meets one."""

from __future__ import annotations

MAX_GPUS = 1024  # GPUs in one system, all nodes together (`--gpu 2x8xH100` = 16); also the most --tp x --pp
MAX_CONTEXT = 2**24  # tokens: --ctx, --max-model-len, --max-num-batched-tokens, --batch-size, --ubatch (16,777,216)
MAX_SLOTS = 4096  # llama.cpp --parallel slots (the planner gives one per concurrent sequence)
MAX_SEQUENCES = 4096  # --sequences, --concurrency, --max-num-seqs
MAX_BLOCK_SIZE = 65536  # vLLM --block-size, tokens per KV block
MAX_LAYER_FLAG = 10**6  # -ngl and --n-cpu-moe: a value above the model's layer count means every layer (as llama.cpp)
MAX_RAM_GIB = 2**20  # --ram: 1 PiB of host RAM
MAX_TOP = 1000  # plan --top: recommendations shown

# Input read from files
MAX_PATTERN_CHARS = 1000  # one regex of a quantization config's ignore list ("re:..."), in characters
# unbounded repeats (*, +, {n,}) in one such regex: more makes matching polynomial of a high degree
MAX_PATTERN_REPEATS = 8

MAX_IGNORE_PATTERNS = 100_000  # entries of one ignore list (quantization_config ignore, modules_to_not_convert)

# Memos: how much of the specs they were asked about the engine models keep, in layers (a size estimate:
# what an entry holds grows with the spec's layers). The newest entry is always kept.
MEMO_LAYERS = 4096
