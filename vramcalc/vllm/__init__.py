"""The vLLM memory model: weights per rank, KV cache pages, budget (in progress)."""
