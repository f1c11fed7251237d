// What the probes that read a context's own buffers share (tools/dflash_probe.cpp, mtp_probe.cpp): the output
// buffer's bytes (llama_context::buf_output: nothing prints it after a resize) and the compute buffers' bytes
// (llama_context::memory_breakdown, what llama_memory_breakdown_print sums). Include after probe_common.h.
#pragma once

#include "probe_common.h"
#define private public  // buf_output and the samplers are private members of llama_context
#include "../src/llama-context.h"
#undef private

static size_t out_bytes(llama_context * ctx) {
    return ctx->buf_output ? ggml_backend_buffer_get_size(ctx->buf_output.get()) : 0;
}

static size_t compute_bytes(llama_context * ctx) {
    size_t n = 0;
    for (const auto & [buft, d] : ctx->memory_breakdown()) {
        n += d.compute;
    }
    return n;
}
