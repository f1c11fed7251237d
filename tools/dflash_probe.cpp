// The contexts llama-server makes with --spec-type draft-dflash / draft-dspark and -md DRAFT
// (tools/record_llamacpp_dflash.py builds it against a llama.cpp tree's common/ sources and CPU libllama, and runs
// it). Usage:
//   dflash_probe TARGET DRAFT N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA(on|off|auto) CTK CTV CTKD CTVD
//                TYPE(draft-dflash|draft-dspark|auto) N_PROMPT [BACKEND_SAMPLING(1|0), default 1]
// As tools/server/server-context.cpp load_model does: the type from the draft's header when none is given
// (common/arg.cpp: common_speculative_types_from_gguf), server_output_limits, common_init_from_params (the target),
// common_base_params_to_speculative and common_speculative_init_from_params (the draft model and its context, with
// the target as ctx_other), common_speculative_init (common_speculative_impl_draft_dflash: the target's layer-input
// extraction, the draft's masked nextn rows, non-causal attention, a backend top-k sampler per slot). Then one
// prompt of N_PROMPT tokens on slot 0 as llama-server runs it: the target decodes it, common_speculative_process
// encodes the target features and injects them into the draft's KV cache, and common_speculative_draft drafts a
// block on every slot. llama.cpp's own log lines (the buffers) go to stderr; PROBE lines (the output buffers' bytes, read from
// the contexts, and the compute buffers after the run, from llama_get_memory_breakdown) to stdout.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "probe_context.h"

int main(int argc, char ** argv) {
    if (argc != 15 && argc != 16) {
        std::fprintf(stderr, "usage: %s TARGET DRAFT N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA CTK CTV CTKD CTVD "
                     "TYPE N_PROMPT\n", argv[0]);
        return 2;
    }
    common_params params;
    read_target_draft_args(params, argv);
    params.kv_unified         = true;
    const std::string type = argv[13];
    const int n_prompt = std::atoi(argv[14]);
    // --spec-draft-backend-sampling (common.h: on) / --no-spec-draft-backend-sampling
    params.speculative.draft.backend_sampling = argc < 16 || std::atoi(argv[15]) != 0;

    init_logging_and_backends();

    if (type == "auto") {  // common/arg.cpp: no --spec-type given, a draft path set
        params.speculative.types = common_speculative_types_from_gguf(params.speculative.draft.mparams.path);
    } else {
        params.speculative.types = common_speculative_types_from_names({type});
    }
    std::printf("PROBE types=%s\n", common_speculative_type_name_str(params.speculative.types).c_str());
    std::fflush(stdout);

    common_init_result_ptr init;
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    if (!load_target(params, init, model, ctx)) {
        return 3;
    }
    std::printf("PROBE n_ctx=%u n_layer=%d target_output_start=%zu\n", llama_n_ctx(ctx), llama_model_n_layer(model),
                out_bytes(ctx));
    std::fflush(stdout);
    phase("draft");
    auto spec_init = init_draft(params, model, ctx);
    llama_context * ctx_dft = spec_init->context();
    if (!ctx_dft) {
        std::printf("PROBE fail=draft_context\n");
        return 0;
    }
    std::printf("PROBE draft_n_ctx=%u draft_n_layer=%d draft_outputs_max=%u draft_output_start=%zu\n",
                llama_n_ctx(ctx_dft), llama_model_n_layer(spec_init->model()), ctx_dft->cparams.n_outputs_max,
                out_bytes(ctx_dft));
    std::fflush(stdout);
    phase("spec_init");
    params.speculative.draft.ctx_tgt = ctx;
    params.speculative.draft.ctx_dft = ctx_dft;
    common_speculative * sp = common_speculative_init(params.speculative, (uint32_t) params.n_parallel);
    std::printf("PROBE speculates=%d\n", sp != nullptr);
    std::fflush(stdout);
    if (!sp) {
        return 0;
    }
    // the prompt: the target decodes it (its re-reserve with the layer inputs as outputs, then output_reserve)
    phase("target_decode");
    llama_batch batch = llama_batch_init(std::max(n_prompt, 1), 0, 1);
    llama_tokens prompt;
    for (int i = 0; i < n_prompt; ++i) {
        prompt.push_back(1 + i % 100);
        common_batch_add(batch, prompt.back(), i, {0}, i == n_prompt - 1);
    }
    common_speculative_begin(sp, 0, prompt);
    int rc = llama_decode(ctx, batch);
    std::printf("PROBE decode=%d target_output=%zu target_compute=%zu\n", rc, out_bytes(ctx), compute_bytes(ctx));
    std::fflush(stdout);
    phase("process");
    const bool ok = common_speculative_process(sp, batch);
    std::printf("PROBE process=%d draft_output_process=%zu draft_compute_process=%zu target_output_end=%zu\n", ok,
                out_bytes(ctx_dft), compute_bytes(ctx_dft), out_bytes(ctx));
    std::fflush(stdout);
    // one drafting step on every slot (common_speculative_draft: each slot's block of id_last and mask tokens in one
    // decode): the draft's run-time graph, with the Markov head where the block fits block_size
    phase("draft_block");
    std::vector<llama_tokens> results;
    draft_every_slot(sp, params.n_parallel, n_prompt, prompt, results);
    std::printf("PROBE drafted=%zu draft_output=%zu draft_compute=%zu\n", results[0].size(), out_bytes(ctx_dft),
                compute_bytes(ctx_dft));
    std::fflush(stdout);
    llama_batch_free(batch);
    common_speculative_free(sp);
    return 0;
}
