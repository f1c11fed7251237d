// What llama.cpp's own speculative code makes of a --spec-type list (tools/record_spec_limits.py builds it against a
// llama.cpp tree and runs it). Usage:
//   spec_limits_probe TYPES N_SEQ N_BATCH DRAFT_N_MAX MOD_N_MAX SIMPLE_SIZE_M MAP_K_SIZE_M MAP_K4V_SIZE_M
// It prints common_speculative_n_max and common_speculative_get_output_limits (what llama-server's
// server_output_limits reserves), then runs common_speculative_init with no draft context and prints the heap bytes it
// keeps (glibc mallinfo2: the ngram types' host tables) or the error it throws.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "common.h"
#include "speculative.h"

static size_t heap_bytes() {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

int main(int argc, char ** argv) {
    if (argc != 9) {
        std::fprintf(stderr, "usage: %s TYPES N_SEQ N_BATCH DRAFT_N_MAX MOD_N_MAX SIMPLE_M MAP_K_M MAP_K4V_M\n", argv[0]);
        return 2;
    }
    std::vector<std::string> names;
    std::stringstream ss(argv[1]);
    for (std::string t; std::getline(ss, t, ',');) {
        names.push_back(t);
    }
    common_params_speculative p;
    try {
        p.types = common_speculative_types_from_names(names);  // what --spec-type's handler calls (common/arg.cpp)
    } catch (const std::exception & e) {
        std::printf("PROBE n_max=0 total=0 per_seq=0 spec=0 heap=0 err=%s\n", e.what());
        return 0;
    }
    const int n_seq         = std::atoi(argv[2]);
    const int n_batch       = std::atoi(argv[3]);
    p.draft.n_max           = std::atoi(argv[4]);
    p.ngram_mod.n_max       = std::atoi(argv[5]);
    p.ngram_simple.size_m   = (uint16_t) std::atoi(argv[6]);
    p.ngram_map_k.size_m    = (uint16_t) std::atoi(argv[7]);
    p.ngram_map_k4v.size_m  = (uint16_t) std::atoi(argv[8]);

    const int32_t n_max = common_speculative_n_max(&p);
    const auto    lim   = common_speculative_get_output_limits(n_batch, n_seq, n_max);

    const size_t before = heap_bytes();
    common_speculative * spec = nullptr;
    std::string err;
    try {
        spec = common_speculative_init(p, (uint32_t) n_seq);
    } catch (const std::exception & e) {
        err = e.what();
    }
    const size_t after = heap_bytes();
    std::printf("PROBE n_max=%d total=%d per_seq=%d spec=%d heap=%zu err=%s\n", n_max, lim.total, lim.per_seq,
                spec != nullptr, after - before, err.c_str());
    common_speculative_free(spec);
    return 0;
}
