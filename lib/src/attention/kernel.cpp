// The attention kernel (docs/kernel.md): one OpenMP parallel region over (matrix, block of
// query rows); per block register-blocked products on the inputs' own memory with the
// softmax between them. Only the keys the causal rule and key lengths leave visible to
// some query of a block are computed.
// GCC 12 reports false "(may be) used uninitialized" warnings inside its own AVX-512
// intrinsics (_mm512_undefined_ps, the pass-through operand of masked forms) when xsimd
// code is inlined here. Clang has no such warning and warns about the unknown name.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <omp.h>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>

#include "attention/problem.hpp"
#include "attention/tile_gemm.hpp"
#include "attn/attention.hpp"
#include "common/threads.hpp"

namespace attn {

Shape attention_output_shape(const Tensor& query, const Tensor& key, const Tensor& value,
                             const AttentionOptions& options) {
    return detail::check_attention_shapes(query.shape(), key.shape(), value.shape(), options);
}

namespace {

// Tiles (docs/kernel.md): a task is a block of kQueryBlock query rows of one matrix. Its
// logits are computed transposed, Sᵀ = K·Qᵀ (keys down, queries across), so that the
// softmax runs on SIMD vectors of queries with no horizontal reductions, and both
// products read K and V where they lie (tile_gemm.hpp). Without score sinks it
// walks the visible keys kKeyBlock at a time with an online softmax: its scratch stays
// in L2 whatever S is.
constexpr std::size_t kQueryBlock = 64;
constexpr std::size_t kKeyBlock = 256;
// P·V sums at most this many keys in registers before adding them to the output: the
// error of a float sum grows with its length (blocked summation).
constexpr std::size_t kSumChunk = 64;
// Floating-point operations worth a thread of their own (about 50 µs).
constexpr double kMinThreadWork = 4e6;

template <class T>
constexpr T kLog2e = T(1.442695040888963407359924681001892137);

// Per-thread scratch, allocated once per call.
template <class T>
struct Scratch {
    std::vector<T> qt;           // the block's queries transposed: E × kQueryBlock, zero-padded
    std::vector<T> tile;         // Sᵀ for kKeyBlock keys: kKeyBlock × kQueryBlock
    std::vector<T> weight_rows;  // for the sinks, as rows: kQueryBlock × S each
    std::vector<T> logit_rows;
    std::vector<std::size_t> begin, end;  // per query: its visible keys are [begin, end)
    std::vector<T> position;              // per query: p_i = i + S − L, for ALiBi
    std::vector<T> max, sum, factor;      // online softmax per query
};

// One task: rows [i0, i0 + rows) of matrix b; keys [first, cols) are visible to some of
// them and [max_begin, min_end) to all.
struct Task {
    std::size_t b = 0, i0 = 0, rows = 0, first = 0, cols = 0, max_begin = 0, min_end = 0;
};

// `skip_hidden`: keys no query of the block sees are left out (see skips_hidden_keys).
template <class T>
Task make_task(const detail::AttentionProblem<T>& p, std::size_t index, std::size_t blocks_per_matrix, bool skip_hidden,
               Scratch<T>& s) {
    Task t;
    t.b = index / blocks_per_matrix;
    t.i0 = (index % blocks_per_matrix) * kQueryBlock;
    t.rows = std::min(kQueryBlock, p.L - t.i0);
    t.first = p.S;
    t.min_end = p.S;
    for (std::size_t r = 0; r < t.rows; ++r) {
        const auto keys = p.visible_keys(t.b, t.i0 + r);
        s.begin[r] = keys.begin;
        s.end[r] = keys.end;
        if (keys.end > keys.begin) {
            t.first = std::min(t.first, keys.begin);
            t.cols = std::max(t.cols, keys.end);
        }
        t.max_begin = std::max(t.max_begin, keys.begin);
        t.min_end = std::min(t.min_end, keys.end);
    }
    if (t.cols == 0) t.first = 0;  // no query sees a key
    if (!skip_hidden) {
        t.first = 0;
        t.cols = p.S;
    }
    if (!p.slope.empty()) {
        for (std::size_t r = 0; r < kQueryBlock; ++r) s.position[r] = T(double(t.i0 + r) + double(p.S) - double(p.L));
    }
    return t;
}

// Whether every value is finite: x·0 is NaN exactly for NaN and ±inf. Four independent
// SIMD sums, so that the scan runs at memory speed (a single scalar sum ran 15 ms for
// 8M floats, a tenth of a causal L = 4096 run).
template <class T>
bool all_finite(const T* values, std::size_t n) {
    using Batch = xsimd::batch<T>;
    constexpr std::size_t W = Batch::size;
    const Batch zero(T(0));
    Batch probe[4] = {zero, zero, zero, zero};
    std::size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        for (std::size_t g = 0; g < 4; ++g) probe[g] += Batch::load_unaligned(values + i + g * W) * zero;
    }
    T rest = xsimd::hadd(probe[0] + probe[1] + probe[2] + probe[3]);
    for (; i < n; ++i) rest += values[i] * T(0);
    return rest == T(0);
}

// The causal rule, key lengths and the window hide keys by adding −inf to their logits, as PyTorch's
// math attention does, and multiply their value rows by a weight of 0: with finite
// inputs that is the same as leaving them out, which is what makes causal attention
// cheap. A NaN or infinity in Q, K or V (or NaN/+inf in a mask) would reach the results
// through hidden keys too (NaN − inf is NaN, 0·NaN is NaN): then every key is computed.
template <class T>
bool skips_hidden_keys(const detail::AttentionProblem<T>& p) {
    if (!p.hides_keys()) return true;  // nothing to skip, nothing to scan
    for (const auto* x : {&*p.q, &*p.k, &*p.v}) {
        if (!all_finite(x->data(), (*x)->size())) return false;
    }
    const T inf = std::numeric_limits<T>::infinity();
    for (const auto& term : p.terms) {
        if (std::any_of(term.values.begin(), term.values.end(), [&](T x) { return std::isnan(x) || x == inf; })) {
            return false;
        }
    }
    return true;
}

template <class T>
void pack_queries(const detail::AttentionProblem<T>& p, const Task& t, Scratch<T>& s) {
    const T* q = p.q->data() + p.q_offset[t.b] + t.i0 * p.E;
    std::fill(s.qt.begin(), s.qt.end(), T(0));
    for (std::size_t r = 0; r < t.rows; ++r) {
        for (std::size_t d = 0; d < p.E; ++d) s.qt[d * kQueryBlock + r] = q[r * p.E + d];
    }
}

// Soft-capping, C·tanh(s / C), then times `unit`, on the n key rows of a tile.
template <class T>
void softcap_tile(T* tile, std::size_t n, T cap, T unit) {
    using Batch = xsimd::batch<T>;
    const Batch inverse(T(1) / cap), outer(cap * unit);
    for (std::size_t i = 0; i < n * kQueryBlock; i += Batch::size) {
        (outer * xsimd::tanh(Batch::load_unaligned(tile + i) * inverse)).store_unaligned(tile + i);
    }
}

// ALiBi: −slope·|p_i − j|, times `unit`, added to the n key rows j0 + [0, n) of a tile.
template <class T>
void alibi_tile(T* tile, const T* position, std::size_t j0, std::size_t n, T slope_unit) {
    using Batch = xsimd::batch<T>;
    const Batch minus_slope(-slope_unit);
    for (std::size_t j = 0; j < n; ++j) {
        const Batch key(T(j0 + j));
        T* row = tile + j * kQueryBlock;
        for (std::size_t q = 0; q < kQueryBlock; q += Batch::size) {
            const Batch distance = xsimd::abs(Batch::load_unaligned(position + q) - key);
            xsimd::fma(minus_slope, distance, Batch::load_unaligned(row + q)).store_unaligned(row + q);
        }
    }
}

// Sᵀ(j, ·) for keys j0 + [0, n): the scaled logits, soft-capped, plus ALiBi and the masks,
// all times `unit` (1, or log2e for exp2), plus −inf where a query may not see the key.
template <class T>
void logits_tile(const detail::AttentionProblem<T>& p, const Task& t, Scratch<T>& s, std::size_t j0, std::size_t n,
                 T unit) {
    T* tile = s.tile.data();
    const bool capped = p.softcap > 0;
    detail::tile_gemm<T, 2>(n, kQueryBlock, p.E, p.k->data() + p.k_offset[t.b] + j0 * p.E, p.E, std::size_t{1},
                            s.qt.data(), kQueryBlock, tile, kQueryBlock, capped ? p.scale : p.scale * unit, false);
    if (capped) softcap_tile(tile, n, T(p.softcap), unit);
    if (!p.slope.empty()) alibi_tile(tile, s.position.data(), j0, n, T(p.slope[t.b]) * unit);
    for (const auto& term : p.terms) {
        for (std::size_t r = 0; r < t.rows; ++r) {
            const T* m = term.values.data() + term.matrix_offset[t.b] + (t.i0 + r) * term.row_stride;
            for (std::size_t j = 0; j < n; ++j) tile[j * kQueryBlock + r] += m[(j0 + j) * term.column_stride] * unit;
        }
    }
    if (j0 < t.max_begin || j0 + n > t.min_end) {  // an edge tile of the causal rule, key lengths or window
        const T ninf = -std::numeric_limits<T>::infinity();
        for (std::size_t r = 0; r < t.rows; ++r) {
            for (std::size_t j = j0; j < std::min(s.begin[r], j0 + n); ++j) tile[(j - j0) * kQueryBlock + r] += ninf;
            for (std::size_t j = std::max(s.end[r], j0); j < j0 + n; ++j) tile[(j - j0) * kQueryBlock + r] += ninf;
        }
    }
}

// Rows × Ev output block += Pᵀ(keys j0 + [0, n))ᵀ · V(those keys).
template <class T>
void add_pv(const detail::AttentionProblem<T>& p, const Task& t, const T* pt, std::size_t j0, std::size_t n, T* o,
            bool accumulate) {
    for (std::size_t c = 0; c < n; c += kSumChunk) {
        detail::tile_gemm<T, 2>(t.rows, p.Ev, std::min(kSumChunk, n - c), pt + c * kQueryBlock, std::size_t{1},
                                kQueryBlock, p.v->data() + p.v_offset[t.b] + (j0 + c) * p.Ev, p.Ev, o, p.Ev, T(1),
                                accumulate || c > 0);
    }
}

template <class T>
void scale_row(T* row, std::size_t n, T factor) {
    for (std::size_t j = 0; j < n; ++j) row[j] *= factor;
}

// exp, or exp2 for logits in log2 units, of x ≤ 0, −inf or NaN. xsimd rounds its
// argument to an integer and converts it, which for −inf and NaN is undefined (float64 on
// AVX-512 converts one lane at a time in C++: UBSan's "outside the range"); so −inf
// becomes a number whose exp is 0 all the same, and NaN is put back after.
template <bool Base2, class Batch>
Batch exp_of(const Batch& x) {
    using T = typename Batch::value_type;
    const Batch lowest(sizeof(T) == 4 ? T(-200) : T(-1200));  // exp and exp2 are 0 below
    const auto nan = x != x;
    const Batch safe = xsimd::select(x < lowest, lowest, xsimd::select(nan, Batch(T(0)), x));
    Batch e;
    if constexpr (Base2) {
        e = xsimd::exp2(safe);
    } else {
        e = xsimd::exp(safe);
    }
    return xsimd::select(nan, x, e);
}

// One key tile (n rows of Sᵀ) of the online softmax: per query, the running max grows to
// cover the tile, `factor` = exp(old max − new max) is what earlier sums (and outputs)
// must be scaled by, and the sum gains the tile's exp(logit − max); with Store the tile
// keeps those exps. A query that has seen no key keeps max −inf and sum 0 (its exps are
// taken against 0, so they are 0); a NaN logit makes its query's sum NaN, whatever max
// makes of it, since exp(NaN − ·) is NaN; +inf gives inf − inf, NaN too, as in PyTorch.
template <bool Base2, bool Store, class T>
void online_softmax(std::size_t n, Scratch<T>& s) {
    using Batch = xsimd::batch<T>;
    constexpr std::size_t W = Batch::size;
    constexpr std::size_t kGroup = std::min<std::size_t>(4, kQueryBlock / W);
    const Batch ninf(-std::numeric_limits<T>::infinity());
    T* tile = s.tile.data();
    // kGroup vectors of queries at a time, walking the tile row by row (sequential).
    for (std::size_t q = 0; q < kQueryBlock; q += kGroup * W) {
        Batch tile_max[kGroup], shift[kGroup], sum[kGroup];
        for (std::size_t g = 0; g < kGroup; ++g) tile_max[g] = ninf;
        for (std::size_t j = 0; j < n; ++j) {
            const T* at = tile + j * kQueryBlock + q;
            for (std::size_t g = 0; g < kGroup; ++g)
                tile_max[g] = xsimd::max(tile_max[g], Batch::load_unaligned(at + g * W));
        }
        for (std::size_t g = 0; g < kGroup; ++g) {
            const Batch old_max = Batch::load_unaligned(s.max.data() + q + g * W);
            const Batch new_max = xsimd::max(old_max, tile_max[g]);
            shift[g] = xsimd::select(new_max == ninf, Batch(T(0)), new_max);
            new_max.store_unaligned(s.max.data() + q + g * W);
            exp_of<Base2>(old_max - shift[g]).store_unaligned(s.factor.data() + q + g * W);
            sum[g] = Batch(T(0));
        }
        for (std::size_t j = 0; j < n; ++j) {
            T* at = tile + j * kQueryBlock + q;
            for (std::size_t g = 0; g < kGroup; ++g) {
                const Batch e = exp_of<Base2>(Batch::load_unaligned(at + g * W) - shift[g]);
                if constexpr (Store) e.store_unaligned(at + g * W);
                sum[g] += e;
            }
        }
        for (std::size_t g = 0; g < kGroup; ++g) {
            T* total = s.sum.data() + q + g * W;
            (Batch::load_unaligned(total) * Batch::load_unaligned(s.factor.data() + q + g * W) + sum[g])
                .store_unaligned(total);
        }
    }
}

// Every query starts having seen nothing, or, with a sink σ, as if it had seen one key
// whose logit is σ (times `unit`): the sink is in every denominator, never in the output.
template <class T>
void reset_softmax(const detail::AttentionProblem<T>& p, const Task& t, Scratch<T>& s, T unit) {
    const bool sink = !p.sink.empty();
    std::fill(s.max.begin(), s.max.end(), sink ? T(p.sink[t.b]) * unit : -std::numeric_limits<T>::infinity());
    std::fill(s.sum.begin(), s.sum.end(), T(sink ? 1 : 0));
}

// Row r's log-sum-exp from the softmax state, in natural units: max and sum are in units
// of `unit` (log2 when log2e). −inf when the row saw no key and there is no sink.
template <class T>
void store_lse(const detail::AttentionProblem<T>& p, const Task& t, const Scratch<T>& s, bool base2, T* lse) {
    if (lse == nullptr) return;
    T* row = lse + t.b * p.L + t.i0;
    for (std::size_t r = 0; r < t.rows; ++r) {
        if (base2) {
            row[r] = (s.max[r] + std::log2(s.sum[r])) * T(0.693147180559945309417232121458176568);
        } else {
            row[r] = s.max[r] + std::log(s.sum[r]);
        }
    }
}

// Without sinks: the flash form. Per key tile the logits come in log2 units (scale·log2e
// is the product's alpha, so exp2 gives the softmax), the online softmax updates each
// query's max and sum, its output row is rescaled when the max grew, and O += P·V
// accumulates straight into the output, divided by the sums at the end (0 for a query
// that saw no key: a zero row). Keys past the last visible one are never touched.
template <class T>
void flash_task(const detail::AttentionProblem<T>& p, const Task& t, T* out, T* lse, Scratch<T>& s) {
    T* o = out + (t.b * p.L + t.i0) * p.Ev;
    std::fill(o, o + t.rows * p.Ev, T(0));
    reset_softmax(p, t, s, kLog2e<T>);
    pack_queries(p, t, s);
    for (std::size_t j0 = t.first; j0 < t.cols; j0 += kKeyBlock) {
        const std::size_t n = std::min(kKeyBlock, t.cols - j0);
        logits_tile(p, t, s, j0, n, kLog2e<T>);
        online_softmax<true, true>(n, s);
        if (j0 > t.first) {
            for (std::size_t r = 0; r < t.rows; ++r) {
                if (s.factor[r] != T(1)) scale_row(o + r * p.Ev, p.Ev, s.factor[r]);
            }
        }
        add_pv(p, t, s.tile.data(), j0, n, o, true);
    }
    store_lse(p, t, s, true, lse);
    for (std::size_t r = 0; r < t.rows; ++r) scale_row(o + r * p.Ev, p.Ev, s.sum[r] == T(0) ? T(0) : T(1) / s.sum[r]);
}

// Columns [j0, j0 + n) of the task's rows (kQueryBlock × S) from a tile of Sᵀ.
template <class T>
void tile_to_rows(const Task& t, std::size_t S, const T* tile, std::size_t j0, std::size_t n, T* rows) {
    for (std::size_t r = 0; r < t.rows; ++r) {
        T* row = rows + r * S + j0;
        for (std::size_t j = 0; j < n; ++j) row[j] = tile[j * kQueryBlock + r];
    }
}

// With sinks the weights are outputs and must be exact, normalised by each row's final
// sum: a first pass over the key tiles finds every query's max and sum; the second
// computes the tiles again, turns them into normalised weights, copies them (and the
// logits) into rows for the sinks, and adds P·V. Normalising P before P·V, not the
// output after it, keeps the float32 error at or below PyTorch's (bench/accuracy.py).
// Scratch is the flash form's plus kQueryBlock × S rows per sink.
template <class T>
void full_rows_task(const detail::AttentionProblem<T>& p, const Task& t, T* out, T* lse, Scratch<T>& s,
                    ScoreSink* weights, ScoreSink* logits) {
    using Batch = xsimd::batch<T>;
    constexpr std::size_t W = Batch::size;
    const T ninf = -std::numeric_limits<T>::infinity();
    T* o = out + (t.b * p.L + t.i0) * p.Ev;
    std::fill(o, o + t.rows * p.Ev, T(0));
    reset_softmax(p, t, s, T(1));
    pack_queries(p, t, s);
    for (std::size_t j0 = t.first; j0 < t.cols; j0 += kKeyBlock) {
        logits_tile(p, t, s, j0, std::min(kKeyBlock, t.cols - j0), T(1));
        online_softmax<false, false>(std::min(kKeyBlock, t.cols - j0), s);
    }
    store_lse(p, t, s, false, lse);
    for (std::size_t q = 0; q < kQueryBlock; q += W) {  // max → the shift, sum → its inverse
        const Batch max = Batch::load_unaligned(s.max.data() + q), sum = Batch::load_unaligned(s.sum.data() + q);
        xsimd::select(max == Batch(ninf), Batch(T(0)), max).store_unaligned(s.max.data() + q);
        xsimd::select(sum == Batch(T(0)), Batch(T(0)), Batch(T(1)) / sum).store_unaligned(s.sum.data() + q);
    }
    for (std::size_t j0 = t.first; j0 < t.cols; j0 += kKeyBlock) {
        const std::size_t n = std::min(kKeyBlock, t.cols - j0);
        logits_tile(p, t, s, j0, n, T(1));
        T* tile = s.tile.data();
        if (logits) tile_to_rows(t, p.S, tile, j0, n, s.logit_rows.data());
        for (std::size_t j = 0; j < n; ++j) {
            for (std::size_t q = 0; q < kQueryBlock; q += W) {
                T* at = tile + j * kQueryBlock + q;
                const Batch x = Batch::load_unaligned(at) - Batch::load_unaligned(s.max.data() + q);
                (exp_of<false>(x) * Batch::load_unaligned(s.sum.data() + q)).store_unaligned(at);
            }
        }
        if (weights) tile_to_rows(t, p.S, tile, j0, n, s.weight_rows.data());
        add_pv(p, t, tile, j0, n, o, true);
    }
    for (std::size_t r = 0; r < t.rows; ++r) {  // keys no query of the block sees
        for (auto [rows, fill] : {std::pair{logits ? s.logit_rows.data() : nullptr, ninf},
                                  std::pair{weights ? s.weight_rows.data() : nullptr, T(0)}}) {
            if (rows == nullptr) continue;
            std::fill(rows + r * p.S, rows + r * p.S + t.first, fill);
            std::fill(rows + r * p.S + std::max(t.first, t.cols), rows + (r + 1) * p.S, fill);
        }
    }
    if (logits) logits->write_rows(t.b, t.i0, t.rows, s.logit_rows.data());
    if (weights) weights->write_rows(t.b, t.i0, t.rows, s.weight_rows.data());
}

template <class T>
void run_kernel(const detail::AttentionProblem<T>& p, T* out, T* lse, ScoreSink* weights, ScoreSink* logits,
                const AttentionOptions& options) {
    const std::size_t blocks_per_matrix = (p.L + kQueryBlock - 1) / kQueryBlock;
    const std::size_t tasks = p.batches * blocks_per_matrix;
    const bool full_rows = weights != nullptr || logits != nullptr;
    // A thread per kMinThreadWork of arithmetic at most: waking a team costs more than a
    // tiny problem (the classic example ran 4x slower on two threads than on one).
    const double work = 2.0 * double(p.batches) * double(p.L) * double(p.S) * double(p.E + p.Ev);
    const int threads = static_cast<int>(std::clamp<double>(std::min(work / kMinThreadWork, double(tasks)), 1.0,
                                                            double(detail::resolve_threads(options.threads))));
    const bool skip_hidden = skips_hidden_keys(p);
    std::atomic<std::size_t> done{0};
    std::atomic<bool> failed{false};
    std::exception_ptr failure;
    auto fail = [&] {
#pragma omp critical(attn_kernel_failure)
        if (!failure) failure = std::current_exception();
        failed = true;
        // Sinks may hold other threads waiting for this task's rows: release them.
        if (weights) weights->cancel();
        if (logits) logits->cancel();
    };
    if (tasks == 0) {
        if (options.progress) options.progress(0, 0);
        return;
    }
    // Without sinks a thread takes several blocks of one matrix at a time, so that its K
    // and V stay in that core's cache (B8 H12 L512: 134 -> 195 GFLOP/s), as long as every
    // thread still gets 4 chunks. Sinks take rows in order: one block at a time, or a
    // thread would wait for the whole chunk before its own.
    const std::size_t chunk =
        full_rows ? 1 : std::max<std::size_t>(1, std::min(blocks_per_matrix, tasks / (4 * std::size_t(threads))));
    // Per thread: Qᵀ of a block (E × 64), a tile, and rows for the sinks (64 × S each).
    const double scratch = double(threads) * double(sizeof(T)) * kQueryBlock *
                           (double(p.E) + kKeyBlock + double(p.S) * ((weights ? 1 : 0) + (logits ? 1 : 0)));
    check_memory(scratch > 1e18 ? std::size_t(1e18) : static_cast<std::size_t>(scratch), "attention",
                 "the kernel's scratch (" + std::to_string(threads) + " threads)");
#pragma omp parallel num_threads(threads)
    {
        Scratch<T> s;
        try {
            s.qt.resize(p.E * kQueryBlock);
            s.tile.resize(kKeyBlock * kQueryBlock);
            s.weight_rows.resize(weights ? kQueryBlock * p.S : 0);
            s.logit_rows.resize(logits ? kQueryBlock * p.S : 0);
            s.begin.resize(kQueryBlock);
            s.end.resize(kQueryBlock);
            s.position.resize(kQueryBlock);
            for (auto* v : {&s.max, &s.sum, &s.factor}) v->resize(kQueryBlock);
        } catch (...) {
            fail();
        }
#pragma omp for schedule(dynamic, chunk)
        for (std::size_t index = 0; index < tasks; ++index) {
            if (failed.load(std::memory_order_relaxed)) continue;
            try {
                const Task t = make_task(p, index, blocks_per_matrix, skip_hidden, s);
                if (full_rows) {
                    full_rows_task(p, t, out, lse, s, weights, logits);
                } else {
                    flash_task(p, t, out, lse, s);
                }
                const std::size_t now = done.fetch_add(1, std::memory_order_relaxed) + 1;
                if (options.progress && omp_get_thread_num() == 0) options.progress(now, tasks);
            } catch (...) {
                fail();
            }
        }
    }
    if (failure) std::rethrow_exception(failure);
    if (options.progress) options.progress(tasks, tasks);
}

template <class T>
Tensor attend(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
              ScoreSink* weights, ScoreSink* logits, Tensor* lse) {
    const detail::AttentionProblem<T> p = detail::make_problem<T>(query, key, value, options);
    xt::xarray<T> out = xt::xarray<T>::from_shape(p.output_shape());
    xt::xarray<T> row_lse = xt::xarray<T>::from_shape(lse ? p.lse_shape() : Shape{0});
    if (weights) weights->begin(dtype_of<T>::value, p.score_shape());
    if (logits) logits->begin(dtype_of<T>::value, p.score_shape());
    run_kernel(p, out.data(), lse ? row_lse.data() : nullptr, weights, logits, options);
    if (lse) *lse = Tensor(std::move(row_lse));
    return Tensor(std::move(out));
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const AttentionOptions& options, ScoreSink* weights, ScoreSink* logits,
                                    Tensor* lse) {
    detail::check_result_memory(query, key, value, options, weights, logits);
    if (detail::compute_dtype(query, key, value, options) == DType::Float64) {
        return attend<double>(query, key, value, options, weights, logits, lse);
    }
    return attend<float>(query, key, value, options, weights, logits, lse);
}

}  // namespace attn
