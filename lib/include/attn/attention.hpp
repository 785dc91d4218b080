// attn/attention.hpp - scaled dot-product attention with PyTorch's semantics.
//
//   out = softmax(Q·Kᵀ·scale + mask) · V      for every leading batch index
//
// Q (…, L, E), K (…, S, E), V (…, S, Ev) -> out (…, L, Ev). Leading batch dimensions
// broadcast as in numpy; on dimension −3 a key/value head count Hkv dividing the query
// head count Hq gives grouped-query attention (query head h reads K/V head h / (Hq/Hkv),
// PyTorch enable_gqa). Bool masks mean "true = may attend" (docs/cli.md).
// A query row that may attend no key gets all-zero weights and an all-zero output row
// (PyTorch ≥ 2.5), never NaN. Weights and logits are handed to a ScoreSink row block by
// row block, so a caller can stream them to a file instead of holding (…, L, S).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "attn/tensor.hpp"

namespace attn {

enum class Causal {
    None,
    TopLeft,      // query i sees keys 0…i (PyTorch is_causal)
    BottomRight,  // query i sees keys 0…i+S−L (last query aligned with last key)
};

enum class Precision {
    Auto,  // float64 if Q, K or V is float64, else float32
    Float32,
    Float64,
};

// A sliding window: query i, at position p_i = i + S − L (aligned bottom-right), sees
// keys p_i − left … p_i + right, bounds included; −1 leaves a side unbounded
// (FlashAttention's window_size; Mistral's 4096-token window is {4095, 0}).
struct Window {
    std::int64_t left = -1;
    std::int64_t right = -1;
};

// The logit of query i and key j is built in this order (docs/kernel.md, "Variants"):
//   s = scale·q_i·k_j;  s = C·tanh(s / C) (softcap);  s −= slope_h·|p_i − j| (ALiBi);
//   s += masks;  s = −inf where causal, key lengths or the window hide the key.
// Heads h are dim −3 of the output's batch dims (one head when there is none). Sinks add
// e^σ_h to each row's softmax denominator only: weights then sum to less than 1.
struct AttentionOptions {
    std::optional<double> scale;  // default 1/√E
    Causal causal = Causal::None;
    std::optional<Window> window;
    std::optional<double> softcap;           // C > 0 and finite
    bool alibi = false;                      // ALiBi with the paper's slopes for H heads (alibi_slopes)
    std::optional<Tensor> alibi_slopes;      // given slopes: (H,) or (batch…, H); not with `alibi`
    std::optional<Tensor> sinks;             // (H,): one raw logit per query head, finite
    std::optional<Tensor> mask;              // bool (true = may attend) or float (added); broadcast to (…, L, S)
    std::optional<Tensor> key_padding_mask;  // bool (true = ignore the key) or float (added); (batch…, S), leading dims
    std::vector<std::size_t> key_lengths;    // valid keys per index of the first batch dim (one value: all)
    Precision precision = Precision::Auto;
    int threads = 0;  // worker threads; 0 = all cores
    // Called now and then from one worker thread with the blocks of query rows done so far
    // and their total (for a progress bar); last with done == total. Must not throw.
    std::function<void(std::size_t done, std::size_t total)> progress;
};

// Receives weights or logits of shape (batch…, L, S) in blocks of whole rows. Calls may
// come from several threads at once (for different rows), each block exactly once.
class ScoreSink {
public:
    virtual ~ScoreSink() = default;
    // Called once before any rows: the dtype and full shape (batch…, L, S).
    virtual void begin(DType dtype, const Shape& shape) = 0;
    // Rows [row_begin, row_begin + row_count) of matrix `matrix` (the flat row-major
    // index over batch…), each `S` values, contiguous.
    virtual void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const float* values) = 0;
    virtual void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const double* values) = 0;
    // The computation failed and some blocks will never come: a sink that makes calls
    // wait for earlier rows must release them (they may throw). Called from any thread.
    virtual void cancel() noexcept {}
    // The bytes the sink will keep in memory for scores of this dtype and shape, counted
    // before the call starts so that results that cannot fit are refused up front.
    virtual std::size_t bytes_to_hold(DType dtype, const Shape& shape) const {
        (void)dtype;
        (void)shape;
        return 0;
    }
};

// A ScoreSink whose float and double rows both go to one member template of Derived,
// write_block<T>(matrix, row_begin, row_count, values), instantiated for float and double.
template <class Derived>
class TypedScoreSink : public ScoreSink {
public:
    void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const float* values) final {
        static_cast<Derived*>(this)->write_block(matrix, row_begin, row_count, values);
    }
    void write_rows(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const double* values) final {
        static_cast<Derived*>(this)->write_block(matrix, row_begin, row_count, values);
    }
};

// A ScoreSink that collects everything into one tensor.
class TensorScoreSink final : public TypedScoreSink<TensorScoreSink> {
public:
    void begin(DType dtype, const Shape& shape) override;
    Tensor& tensor() noexcept { return tensor_; }
    std::size_t bytes_to_hold(DType dtype, const Shape& shape) const override {
        return checked_element_count(shape, "scores") * dtype_size(dtype);
    }

private:
    friend class TypedScoreSink<TensorScoreSink>;
    template <class T>
    void write_block(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const T* values);

    Tensor tensor_;
    std::size_t matrix_size_ = 0;
    std::size_t row_size_ = 0;
};

// The shape the output will have, validating every shape first (throws ErrorKind::Shape
// naming both shapes when they do not fit together).
Shape attention_output_shape(const Tensor& query, const Tensor& key, const Tensor& value,
                             const AttentionOptions& options);

// The slopes ALiBi gives H heads: 2^(−8(h+1)/H) when H is a power of two; otherwise,
// with n the largest power of two below H, the n slopes for n followed by the
// even-indexed slopes for 2n (the paper's get_slopes, FlashAttention's alibi_slopes).
std::vector<double> alibi_slopes(std::size_t heads);

// The attention output; weights (softmax probabilities after masks) and logits (after
// softcap, ALiBi and masks, −inf where hidden) go to the sinks when given, and the
// log-sum-exp of each row's logits (…, L) into `lse` when given: ln Σ_j e^(s_j), plus
// e^σ_h with sinks, −inf for a row with no visible key and no sink. The fast kernel.
// Before anything is computed, the output and what the sinks hold (bytes_to_hold) are
// checked against the memory available (check_memory in attn/tensor.hpp): the error names
// Arg::Weights, Arg::Logits, Arg::WeightsAndLogits or Arg::Output.
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const AttentionOptions& options, ScoreSink* weights = nullptr,
                                    ScoreSink* logits = nullptr, Tensor* lse = nullptr);

// The same computation written plainly, one query row at a time with float64 sums: the
// oracle the fast kernel is tested against. Single-threaded and slow. NaN and infinities
// propagate as in PyTorch's math attention: the causal rule and key lengths are an
// additive -inf mask over logits computed for every key, and every value row takes part
// (so a NaN in a hidden key or value still reaches the row). The fast kernel does the
// same: it skips the keys the causal rule and key lengths hide only when Q, K, V and the
// masks hold no NaN or +inf, where skipping changes nothing (docs/kernel.md).
Tensor reference_attention(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                           ScoreSink* weights = nullptr, ScoreSink* logits = nullptr, Tensor* lse = nullptr);

}  // namespace attn
