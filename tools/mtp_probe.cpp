// The contexts llama-server makes with --spec-type draft-mtp (tools/record_llamacpp_mtp.py builds it against a
// llama.cpp tree's common/ sources and CPU libllama, and runs it). Usage:
//   mtp_probe MODEL N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA(on|off|auto) CTK CTV CTKD CTVD SPEC(0|1)
//             [BACKEND_SAMPLING(1|0), default 1]
// As tools/server/server-context.cpp load_model does: server_output_limits (common_speculative_get_output_limits with
// common_speculative_n_max) sets n_outputs_max, common_init_from_params loads the target (load_mtp follows the types:
// common/common.cpp common_model_params_to_llama) and makes its context; then common_base_params_to_speculative and
// common_speculative_init_from_params make the MTP context on the target model, and common_speculative_init attaches
// it (common_speculative_impl_draft_mtp: llama_set_embeddings_nextn on both and, with --spec-draft-backend-sampling, on
// by default, a backend top-k(10) sampler chain on every slot of the MTP context, llama_set_sampler, which only marks
// the context for a re-reserve). Then, as llama-server runs a prompt: the target decodes N_PROMPT tokens on every slot,
// common_speculative_process decodes them on the MTP context (its first decode: sched_reserve re-reserves the graph,
// with the sampling nodes, and output_reserve sizes the output buffer, with the sampling rows), and
// common_speculative_draft drafts on every slot. llama.cpp's own log lines (the buffers) go to stderr; PROBE lines (the
// output buffers' bytes read from the contexts, the compute buffers' from llama_get_memory_breakdown) to stdout.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "log.h"
#include "speculative.h"
#include "llama.h"
#include "../src/llama-ext.h"  // the staging API common/speculative.cpp uses: llama_get_embeddings_nextn_ith
#define private public  // the output buffer's size (llama_context::buf_output: nothing prints it after a resize), the samplers
#include "../src/llama-context.h"
#undef private

static ggml_type type_of(const char * s) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const char * n = ggml_type_name((ggml_type) t);
        if (n && strcasecmp(n, s) == 0) {
            return (ggml_type) t;
        }
    }
    std::fprintf(stderr, "unknown type %s\n", s);
    std::exit(2);
}

// a phase marker after every line llama.cpp logged so far: common_log prints from a worker thread, so flush it first
// (common/log.cpp common_log_flush) or a marker can land before the previous phase's last buffer line
static void phase(const char * name) {
    common_log_flush(common_log_main());
    std::fflush(stderr);
    std::fprintf(stderr, "VRAMCALC_PHASE %s\n", name);
    std::fflush(stderr);
}

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

static const int N_PROMPT = 4;  // tokens per slot

int main(int argc, char ** argv) {
    if (argc != 13 && argc != 14) {
        std::fprintf(stderr, "usage: %s MODEL N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA CTK CTV CTKD CTVD SPEC\n",
                     argv[0]);
        return 2;
    }
    common_params params;
    params.model.path         = argv[1];
    params.n_ctx              = std::atoi(argv[2]);
    params.n_parallel         = std::atoi(argv[3]);
    params.kv_unified         = true;  // llama-server's -np auto / --kv-unified
    params.n_batch            = std::atoi(argv[4]);
    params.n_ubatch           = std::atoi(argv[5]);
    params.speculative.draft.n_max = std::atoi(argv[6]);
    params.flash_attn_type    = strcmp(argv[7], "on") == 0 ? LLAMA_FLASH_ATTN_TYPE_ENABLED :
                                strcmp(argv[7], "off") == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    params.cache_type_k       = type_of(argv[8]);
    params.cache_type_v       = type_of(argv[9]);
    params.speculative.draft.cache_type_k = type_of(argv[10]);
    params.speculative.draft.cache_type_v = type_of(argv[11]);
    const bool spec = std::atoi(argv[12]) != 0;
    // --spec-draft-backend-sampling (common.h: on) / --no-spec-draft-backend-sampling
    params.speculative.draft.backend_sampling = argc < 14 || std::atoi(argv[13]) != 0;
    if (spec) {
        params.speculative.types = { COMMON_SPECULATIVE_TYPE_DRAFT_MTP };
    }
    params.n_gpu_layers       = 0;
    params.fit_params         = false;
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2;

    common_init();
    common_log_set_verbosity_thold(4);  // llama-server -lv 4: the buffer lines are printed at info level
    llama_backend_init();

    // server_output_limits (tools/server/server-context.cpp)
    const auto lim = common_speculative_get_output_limits(params.n_batch, params.n_parallel,
                                                          common_speculative_n_max(&params.speculative));
    params.n_outputs_max         = std::max<int32_t>(1, lim.total);
    params.n_outputs_max_per_seq = std::max<int32_t>(1, lim.per_seq);
    std::printf("PROBE outputs_max=%d\n", params.n_outputs_max);
    std::fflush(stdout);

    auto init = common_init_from_params(params);
    llama_model * model = init->model();
    llama_context * ctx = init->context();
    if (!model || !ctx) {
        std::printf("PROBE fail=target\n");
        return 3;
    }
    std::printf("PROBE n_ctx=%u n_layer=%d n_layer_nextn=%d\n", llama_n_ctx(ctx), llama_model_n_layer(model),
                llama_model_n_layer_nextn(model));
    std::fflush(stdout);
    if (!spec) {
        return 0;
    }
    phase("mtp");
    common_params params_dft = common_base_params_to_speculative(params);
    auto spec_init = common_speculative_init_from_params(params_dft, model, ctx);
    llama_context * ctx_dft = spec_init->context();
    if (!ctx_dft) {
        std::printf("PROBE fail=mtp_context\n");
        return 0;
    }
    std::printf("PROBE mtp_n_ctx=%u mtp_outputs_max=%u mtp_outputs_max_per_seq=%u\n", llama_n_ctx(ctx_dft),
                ctx_dft->cparams.n_outputs_max, ctx_dft->cparams.n_outputs_max_per_seq);
    params.speculative.draft.ctx_tgt = ctx;
    params.speculative.draft.ctx_dft = ctx_dft;
    phase("spec_init");
    common_speculative * sp = common_speculative_init(params.speculative, (uint32_t) params.n_parallel);
    std::printf("PROBE speculates=%d mtp_samplers=%zu mtp_output_start=%zu mtp_compute_start=%zu target_output_start=%zu\n",
                sp != nullptr, ctx_dft->sampling.samplers.size(), out_bytes(ctx_dft), compute_bytes(ctx_dft),
                out_bytes(ctx));
    std::fflush(stdout);
    if (!sp) {
        return 0;
    }
    // the prompt on every slot (N_PROMPT tokens each, the last one an output), decoded by the target once draft-mtp set
    // embeddings_nextn (unmasked) on it: output_reserve sizes the nextn rows; an index past them makes llama.cpp print
    // how many there are ("out of range [0, N)")
    phase("target_decode");
    const int n_par = params.n_parallel;
    llama_batch batch = llama_batch_init(N_PROMPT * n_par, 0, 1);
    llama_tokens prompt;
    for (int i = 0; i < N_PROMPT; ++i) {
        prompt.push_back(1 + i);
    }
    for (int s = 0; s < n_par; ++s) {
        for (int i = 0; i < N_PROMPT; ++i) {
            common_batch_add(batch, prompt[i], i, {s}, i == N_PROMPT - 1);
        }
    }
    const int rc = llama_decode(ctx, batch);
    std::printf("PROBE decode=%d target_output=%zu target_compute=%zu\n", rc, out_bytes(ctx), compute_bytes(ctx));
    std::fflush(stdout);
    llama_get_embeddings_nextn_ith(ctx, 1 << 20);
    // common_speculative_process: the MTP context decodes the prompt (no outputs) with the target's nextn rows; its
    // first decode re-reserves the graph (sched_reserve, printed) where the samplers asked for it
    phase("mtp_process");
    const bool ok = common_speculative_process(sp, batch);
    std::printf("PROBE process=%d mtp_output_process=%zu mtp_compute_process=%zu\n", ok, out_bytes(ctx_dft),
                compute_bytes(ctx_dft));
    std::fflush(stdout);
    // common_speculative_draft on every slot: one token per slot per step, each an output
    phase("mtp_draft");
    std::vector<llama_tokens> results(n_par);
    for (int s = 0; s < n_par; ++s) {
        auto & dp = common_speculative_get_draft_params(sp, s);
        dp.drafting = true;
        dp.n_past   = N_PROMPT;
        dp.id_last  = 7;
        dp.prompt   = &prompt;
        dp.result   = &results[s];
    }
    common_speculative_draft(sp);
    std::printf("PROBE drafted=%zu mtp_output=%zu mtp_compute=%zu\n", results[0].size(), out_bytes(ctx_dft),
                compute_bytes(ctx_dft));
    std::fflush(stdout);
    llama_batch_free(batch);
    common_speculative_free(sp);
    return 0;
}
