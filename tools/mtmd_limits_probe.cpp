// What llama.cpp's multimodal library does with --image-min-tokens / --image-max-tokens / --mtmd-batch-max-tokens
// (tools/record_mtmd_limits.py builds it against a llama.cpp tree and runs it). Usage:
//   mtmd_limits_probe TEXT.gguf MMPROJ.gguf IMAGE_MIN IMAGE_MAX BATCH_MAX
// It loads the text model on the CPU, then the projector as llama-server does (mtmd_init_from_file with warmup on:
// clip.cpp logs its compute buffer), and tries to put two image chunks of one grid in one encoding batch
// (mtmd_batch_add_chunk: 0 added, 2 batch too large or no batch support, 3 cannot batch).
#include <cstdio>
#include <cstdlib>

#include "llama.h"
#include "mtmd.h"

int main(int argc, char ** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s TEXT.gguf MMPROJ.gguf IMAGE_MIN IMAGE_MAX BATCH_MAX\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        std::printf("PROBE_FAIL text\n");
        return 1;
    }
    mtmd_context_params p = mtmd_context_params_default();
    p.use_gpu = false;
    p.n_threads = 2;
    p.warmup = true;
    p.image_min_tokens = std::atoi(argv[3]);
    p.image_max_tokens = std::atoi(argv[4]);
    p.batch_max_tokens = std::atoi(argv[5]);
    mtmd_context * ctx = mtmd_init_from_file(argv[2], model, p);
    if (!ctx) {
        std::printf("PROBE_FAIL mmproj\n");
        return 1;
    }
    // two image chunks of the same grid (mtmd_test_create_input_chunks: a text chunk, then a 4x4 image chunk), which
    // can_batch_with accepts: only the projector's batch support and the token limit decide
    mtmd_input_chunks * a = mtmd_test_create_input_chunks();
    mtmd_input_chunks * b = mtmd_test_create_input_chunks();
    mtmd_batch * batch = mtmd_batch_init(ctx);
    for (mtmd_input_chunks * chunks : {a, b}) {
        const mtmd_input_chunk * c = mtmd_input_chunks_get(chunks, 1);
        std::printf("PROBE_IMAGE_TOKENS %zu\n", mtmd_input_chunk_get_n_tokens(c));
        std::printf("PROBE_BATCH_ADD %d\n", mtmd_batch_add_chunk(batch, c));
    }
    mtmd_batch_free(batch);
    mtmd_input_chunks_free(a);
    mtmd_input_chunks_free(b);
    mtmd_free(ctx);
    llama_model_free(model);
    std::printf("PROBE_OK\n");
    return 0;
}
