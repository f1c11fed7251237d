// The contexts llama-server makes with --spec-type draft-eagle3 -md DRAFT (tools/record_llamacpp_eagle3.py builds it
// against a llama.cpp tree's common/ sources and CPU libllama, and runs it). Usage:
//   eagle3_probe TARGET DRAFT N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA(on|off|auto) CTK CTV CTKD CTVD BSMPL(0|1)
//                UNIFIED(0|1)
// As tools/server/server-context.cpp load_model does: server_output_limits sets n_outputs_max, common_init_from_params
// loads the target and makes its context; common_base_params_to_speculative and common_speculative_init_from_params
// load the draft (-md) and make its context (ctx_other = the target's); common_speculative_init makes
// common_speculative_impl_draft_eagle3, which turns on the target's layer-input extraction and the draft's nextn rows
// (and, with backend sampling, sets a top-k sampler per slot on the draft context). Then one prompt batch of n_batch
// tokens over the slots is decoded on the target and given to common_speculative_process (the draft's encoder over
// the features, then its decoder), as llama-server's prompt processing does.
// llama.cpp's own log lines (the buffers) go to stderr with VRAMCALC_PHASE markers; every buffer libllama allocates is
// printed on stdout as VRAMCALC_ALLOC PHASE BUFT BYTES CALLER (ggml_backend_buft_alloc_buffer interposed: the probe is
// linked with -rdynamic, so libllama's and libggml's calls resolve here first), as are the PROBE lines.
#include <string>
#include <dlfcn.h>

#include "probe_common.h"
#include "ggml-backend.h"

extern "C" ggml_backend_buffer_t ggml_backend_buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size) {
    using fn_t = ggml_backend_buffer_t (*)(ggml_backend_buffer_type_t, size_t);
    static fn_t real = (fn_t) dlsym(RTLD_NEXT, "ggml_backend_buft_alloc_buffer");
    Dl_info info;
    const char * who = "?";
    if (dladdr(__builtin_return_address(0), &info) && info.dli_sname) {
        who = info.dli_sname;
    }
    // on stdout: llama.cpp's log thread writes stderr and could split the line
    std::printf("VRAMCALC_ALLOC %s %s %zu %s\n", g_phase, ggml_backend_buft_name(buft), size, who);
    std::fflush(stdout);
    return real(buft, size);
}

int main(int argc, char ** argv) {
    if (argc != 15) {
        std::fprintf(stderr, "usage: %s TARGET DRAFT N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA CTK CTV CTKD CTVD "
                             "BSMPL UNIFIED\n", argv[0]);
        return 2;
    }
    common_params params;
    read_target_draft_args(params, argv);
    params.kv_unified         = std::atoi(argv[14]) != 0;  // llama-server's -np auto / --kv-unified, or -np N
    params.speculative.draft.backend_sampling = std::atoi(argv[13]) != 0;
    params.speculative.types = { COMMON_SPECULATIVE_TYPE_DRAFT_EAGLE3 };

    init_logging_and_backends();

    common_init_result_ptr init;
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    if (!load_target(params, init, model, ctx)) {
        return 3;
    }
    std::printf("PROBE n_ctx=%u n_layer=%d\n", llama_n_ctx(ctx), llama_model_n_layer(model));
    std::fflush(stdout);
    phase("draft");
    auto spec_init = init_draft(params, model, ctx);
    llama_context * ctx_dft = spec_init->context();
    if (!spec_init->model()) {
        std::printf("PROBE fail=draft_model\n");
        return 0;
    }
    if (!ctx_dft) {
        std::printf("PROBE fail=draft_context\n");
        return 0;
    }
    std::printf("PROBE draft_n_ctx=%u draft_n_ubatch=%u draft_n_batch=%u\n", llama_n_ctx(ctx_dft),
                llama_n_ubatch(ctx_dft), llama_n_batch(ctx_dft));
    std::fflush(stdout);
    phase("spec_init");
    params.speculative.draft.ctx_tgt = ctx;
    params.speculative.draft.ctx_dft = ctx_dft;
    common_speculative * sp = nullptr;
    try {
        sp = common_speculative_init(params.speculative, (uint32_t) params.n_parallel);
    } catch (const std::exception & e) {
        // tools/server/server-context.cpp load_model: SRV_ERR and no speculation
        common_log_flush(common_log_main());
        std::fprintf(stderr, "failed to initialize speculative decoding context: %s\n", e.what());
        std::printf("PROBE speculates=0\n");
        return 0;
    }
    std::printf("PROBE speculates=%d\n", sp != nullptr);
    std::fflush(stdout);
    if (!sp) {
        return 0;
    }
    // a prompt batch of n_batch tokens spread over the slots, all without logits but each slot's last
    phase("target_decode");
    const int n_tok = params.n_batch;
    llama_batch batch = llama_batch_init(n_tok, 0, 1);
    const int per = n_tok / params.n_parallel;
    for (int s = 0; s < params.n_parallel; ++s) {
        for (int i = 0; i < per; ++i) {
            common_batch_add(batch, 1 + (i % 100), i, { s }, i == per - 1);
        }
    }
    const int rc = llama_decode(ctx, batch);
    std::printf("PROBE decode=%d tokens=%d\n", rc, batch.n_tokens);
    std::fflush(stdout);
    phase("process");
    const bool ok = common_speculative_process(sp, batch);
    std::printf("PROBE process=%d\n", (int) ok);
    std::fflush(stdout);
    phase("end");
    llama_batch_free(batch);
    common_speculative_free(sp);
    return 0;
}
