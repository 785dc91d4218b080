// The projections of multi-head attention against the machine's sgemm, same run
// (issue: E = 1024, H = 16, N·L = 8192; target ≥ 70 % of sgemm GFLOP/s).
//
// usage: attn_mha_bench [THREADS]     (default: all cores)
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "attn/mha.hpp"
#include "attn/random.hpp"
#include "timing.hpp"

using attn::bench::best_seconds;

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::stoi(argv[1]) : 0;
    if (threads > 0) {  // both, for OpenBLAS's OpenMP and pthread builds
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    const int n = 2048;
    std::vector<float> a(std::size_t(n) * n, 0.5f), b(std::size_t(n) * n, 0.25f), c(std::size_t(n) * n);
    const double sgemm = best_seconds(3, [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(),
                    n);
    });
    const double sgemm_gflops = 2.0 * n * n * n / sgemm / 1e9;

    const std::size_t rows = 8192, e = 1024, heads = 16;
    const attn::Tensor x = attn::random_tensor({8, rows / 8, e}, attn::Distribution::Normal, 1);
    attn::MhaInit init;
    init.embed_dim = e;
    init.heads = heads;
    const attn::MhaWeights w = attn::init_mha_weights(init, 0);
    // Q, K, V and output projections: four (8192 × 1024) · (1024 × 1024)ᵀ products with bias.
    const double projections = best_seconds(3, [&] {
        for (const auto* pair : {&w.q_weight, &w.k_weight, &w.v_weight, &w.out_weight}) {
            attn::linear(x, *pair, w.q_bias, threads);
        }
    });
    const double projection_gflops = 4 * 2.0 * rows * e * e / projections / 1e9;
    std::printf("threads %s\n", threads > 0 ? std::to_string(threads).c_str() : "all");
    std::printf("  sgemm 2048^3                       %7.1f GFLOP/s\n", sgemm_gflops);
    std::printf("  mha projections E1024 N*L 8192 x4  %7.1f GFLOP/s  (%.0f%% of sgemm)\n", projection_gflops,
                100 * projection_gflops / sgemm_gflops);
    attn::MhaOptions options;
    options.heads = heads;
    options.attention.threads = threads;
    const double whole = best_seconds(2, [&] { attn::multi_head_attention(x, x, x, w, options); });
    std::printf("  whole mha N8 L1024 E1024 H16       %7.3f s\n", whole);
    return 0;
}
