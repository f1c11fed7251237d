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
#include <string>
#include <vector>

#include "probe_context.h"
#include "../src/llama-ext.h"  // the staging API common/speculative.cpp uses: llama_get_embeddings_nextn_ith

static const int N_PROMPT = 4;  // tokens per slot

int main(int argc, char ** argv) {
    if (argc != 13 && argc != 14) {
        std::fprintf(stderr, "usage: %s MODEL N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA CTK CTV CTKD CTVD SPEC\n",
                     argv[0]);
        return 2;
    }
    common_params params;
    params.model.path         = argv[1];
    read_context_args(params, argv, 2);
    params.kv_unified         = true;  // llama-server's -np auto / --kv-unified
    const bool spec = std::atoi(argv[12]) != 0;
    // --spec-draft-backend-sampling (common.h: on) / --no-spec-draft-backend-sampling
    params.speculative.draft.backend_sampling = argc < 14 || std::atoi(argv[13]) != 0;
    if (spec) {
        params.speculative.types = { COMMON_SPECULATIVE_TYPE_DRAFT_MTP };
    }

    init_logging_and_backends();

    common_init_result_ptr init;
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    if (!load_target(params, init, model, ctx)) {
        return 3;
    }
    std::printf("PROBE n_ctx=%u n_layer=%d n_layer_nextn=%d\n", llama_n_ctx(ctx), llama_model_n_layer(model),
                llama_model_n_layer_nextn(model));
    std::fflush(stdout);
    if (!spec) {
        return 0;
    }
    phase("mtp");
    auto spec_init = init_draft(params, model, ctx);
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
    std::vector<llama_tokens> results;
    draft_every_slot(sp, n_par, N_PROMPT, prompt, results);
    std::printf("PROBE drafted=%zu mtp_output=%zu mtp_compute=%zu\n", results[0].size(), out_bytes(ctx_dft),
                compute_bytes(ctx_dft));
    std::fflush(stdout);
    llama_batch_free(batch);
    common_speculative_free(sp);
    return 0;
}
