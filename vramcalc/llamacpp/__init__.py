"""llama.cpp memory model (in progress): KV cache and recurrent state."""
