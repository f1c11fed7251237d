// What the speculative-context probes share (tools/dflash_probe.cpp, eagle3_probe.cpp, mtp_probe.cpp): reading their
// arguments (a ggml type and -fa as common/arg.cpp does), the phase markers on stderr, and the steps of llama-server's
// load_model and slot loop they replay: the output limits llama-server sets before it makes the target's context
// (tools/server/server-context.cpp server_output_limits), the target, the draft's model and context, and a drafting
// step on every slot. tools/probe_context.h adds what they read from a llama_context's private members.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <strings.h>
#include <vector>

#include "common.h"
#include "log.h"
#include "speculative.h"
#include "llama.h"

static const char * g_phase = "target";  // the phase named last (eagle3_probe.cpp prints it with each allocation)

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

static llama_flash_attn_type fa_of(const char * s) {  // -fa on|off|auto
    return strcmp(s, "on") == 0 ? LLAMA_FLASH_ATTN_TYPE_ENABLED :
           strcmp(s, "off") == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
}

// argv[i] .. argv[i + 9]: N_CTX N_PARALLEL N_BATCH N_UBATCH DRAFT_N_MAX FA CTK CTV CTKD CTVD, llama-server's -c, -np,
// -b, -ub, --spec-draft-n-max, -fa, -ctk, -ctv, -ctkd, -ctvd; and the CPU-only settings every probe runs with
static void read_context_args(common_params & params, char ** argv, int i) {
    params.n_ctx              = std::atoi(argv[i]);
    params.n_parallel         = std::atoi(argv[i + 1]);
    params.n_batch            = std::atoi(argv[i + 2]);
    params.n_ubatch           = std::atoi(argv[i + 3]);
    params.speculative.draft.n_max = std::atoi(argv[i + 4]);
    params.flash_attn_type    = fa_of(argv[i + 5]);
    params.cache_type_k       = type_of(argv[i + 6]);
    params.cache_type_v       = type_of(argv[i + 7]);
    params.speculative.draft.cache_type_k = type_of(argv[i + 8]);
    params.speculative.draft.cache_type_v = type_of(argv[i + 9]);
    params.n_gpu_layers       = 0;
    params.speculative.draft.n_gpu_layers = 0;
    params.fit_params         = false;
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2;
}

// a phase marker after every line llama.cpp logged so far: common_log prints from a worker thread, so flush it first
// (common/log.cpp common_log_flush) or a marker can land before the previous phase's last buffer line
static void phase(const char * name) {
    common_log_flush(common_log_main());
    std::fflush(stderr);
    std::fprintf(stderr, "VRAMCALC_PHASE %s\n", name);
    std::fflush(stderr);
    g_phase = name;
}

// argv[1] TARGET, argv[2] DRAFT (-m, -md), then the context arguments of read_context_args from argv[3]
static void read_target_draft_args(common_params & params, char ** argv) {
    params.model.path = argv[1];
    params.speculative.draft.mparams.path = argv[2];
    read_context_args(params, argv, 3);
}

// common_init with llama-server -lv 4 (the buffer lines are printed at info level), then the backends
static void init_logging_and_backends() {
    common_init();
    common_log_set_verbosity_thold(4);
    llama_backend_init();
}

// server_output_limits: n_outputs_max (common_speculative_get_output_limits with common_speculative_n_max), printed
static void set_output_limits(common_params & params) {
    const auto lim = common_speculative_get_output_limits(params.n_batch, params.n_parallel,
                                                          common_speculative_n_max(&params.speculative));
    params.n_outputs_max         = std::max<int32_t>(1, lim.total);
    params.n_outputs_max_per_seq = std::max<int32_t>(1, lim.per_seq);
    std::printf("PROBE outputs_max=%d\n", params.n_outputs_max);
    std::fflush(stdout);
}

// llama-server's load_model up to the target: server_output_limits (set_output_limits), then common_init_from_params,
// the target model and its context; PROBE fail=target where either is missing (the caller stops, exit 3)
static bool load_target(common_params & params, common_init_result_ptr & init, llama_model *& model,
                        llama_context *& ctx) {
    set_output_limits(params);
    init  = common_init_from_params(params);
    model = init->model();
    ctx   = init->context();
    if (!model || !ctx) {
        std::printf("PROBE fail=target\n");
        return false;
    }
    return true;
}

// common_base_params_to_speculative and common_speculative_init_from_params: the draft's model (-md; draft-mtp: none,
// its context is made on the target's model) and its context, ctx_other = the target's (common/speculative.cpp
// common_speculative_init_result: both are made in the constructor, which keeps nothing of the params)
static common_speculative_init_result_ptr init_draft(const common_params & params, llama_model * model,
                                                     llama_context * ctx) {
    common_params params_dft = common_base_params_to_speculative(params);
    return common_speculative_init_from_params(params_dft, model, ctx);
}

// common_speculative_draft on every slot as llama-server's slots ask for it: each slot drafts after n_past tokens of
// prompt with id_last 7; results[s] holds what slot s drafted
static void draft_every_slot(common_speculative * sp, int n_parallel, int n_past, const llama_tokens & prompt,
                             std::vector<llama_tokens> & results) {
    results.assign(n_parallel, {});
    for (int s = 0; s < n_parallel; ++s) {
        auto & dp = common_speculative_get_draft_params(sp, s);
        dp.drafting = true;
        dp.n_past   = n_past;
        dp.id_last  = 7;
        dp.prompt   = &prompt;
        dp.result   = &results[s];
    }
    common_speculative_draft(sp);
}
