// The contexts llama-server makes with --spec-type draft-mtp (tools/record_llamacpp_mtp.py builds it against a
// llama.cpp tree's common/ sources and CPU libllama, and runs it). Usage:
//   mtp_probe MODEL N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA(on|off|auto) CTK CTV CTKD CTVD SPEC(0|1)
// As tools/server/server-context.cpp load_model does: server_output_limits (common_speculative_get_output_limits with
// common_speculative_n_max) sets n_outputs_max, common_init_from_params loads the target (load_mtp follows the types:
// common/common.cpp common_model_params_to_llama) and makes its context; then common_base_params_to_speculative and
// common_speculative_init_from_params make the MTP context on the target model, and common_speculative_init attaches
// it (llama_set_embeddings_nextn on both). llama.cpp's own log lines (the buffers) go to stderr; PROBE lines to stdout.
#include <string>

#include "probe_common.h"
#include "../src/llama-ext.h"  // the staging API common/speculative.cpp uses: llama_get_embeddings_nextn_ith

int main(int argc, char ** argv) {
    if (argc != 13) {
        std::fprintf(stderr, "usage: %s MODEL N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA CTK CTV CTKD CTVD SPEC\n",
                     argv[0]);
        return 2;
    }
    common_params params;
    params.model.path         = argv[1];
    read_context_args(params, argv, 2);
    params.kv_unified         = true;  // llama-server's -np auto / --kv-unified
    const bool spec = std::atoi(argv[12]) != 0;
    if (spec) {
        params.speculative.types = { COMMON_SPECULATIVE_TYPE_DRAFT_MTP };
    }

    init_logging_and_backends();

    set_output_limits(params);  // server_output_limits (tools/server/server-context.cpp)

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
    std::printf("PROBE mtp_n_ctx=%u\n", llama_n_ctx(ctx_dft));
    params.speculative.draft.ctx_tgt = ctx;
    params.speculative.draft.ctx_dft = ctx_dft;
    common_speculative * sp = common_speculative_init(params.speculative, (uint32_t) params.n_parallel);
    std::printf("PROBE speculates=%d\n", sp != nullptr);
    std::fflush(stdout);
    // one decode on the target once draft-mtp set embeddings_nextn (unmasked) on it: output_reserve sizes the nextn
    // rows; an index past them makes llama.cpp print how many there are ("out of range [0, N)")
    phase("target_decode");
    llama_token toks[4] = {1, 2, 3, 4};
    const int rc = llama_decode(ctx, llama_batch_get_one(toks, 4));
    std::printf("PROBE decode=%d\n", rc);
    std::fflush(stdout);
    llama_get_embeddings_nextn_ith(ctx, 1 << 20);
    common_speculative_free(sp);
    return 0;
}
