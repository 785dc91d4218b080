// attn/mha.hpp - multi-head attention as torch.nn.MultiheadAttention(batch_first=True).
//
// Project Q, K, V (y = x·Wᵀ + b, as a Linear), split E into H heads, attend per head
// through scaled_dot_product_attention (the same kernel as sdpa), concatenate, project
// out. Weights load from PyTorch's state_dict names (packed in_proj_weight or
// q/k/v_proj_weight, or separate-Linear q_proj.weight…) and save back under them, so
// that load_state_dict reproduces a run. Beyond PyTorch: grouped-query attention with
// kv_heads K/V heads (K/V projections of kv_heads·E/H outputs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "attn/attention.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"

namespace attn {

// The parameters of one attention layer, in the shapes PyTorch gives them.
struct MhaWeights {
    Tensor q_weight;                 // (E, E)
    Tensor k_weight;                 // (Ekv, kdim); Ekv = E for ordinary MHA
    Tensor v_weight;                 // (Ekv, vdim)
    std::optional<Tensor> q_bias;    // (E)
    std::optional<Tensor> k_bias;    // (Ekv)
    std::optional<Tensor> v_bias;    // (Ekv)
    Tensor out_weight;               // (E, E)
    std::optional<Tensor> out_bias;  // (E)
    std::optional<Tensor> bias_k;    // (1, 1, Ekv): add_bias_kv
    std::optional<Tensor> bias_v;    // (1, 1, Ekv)

    std::size_t embed_dim() const { return q_weight.shape()[0]; }
    std::size_t kdim() const { return k_weight.shape()[1]; }
    std::size_t vdim() const { return v_weight.shape()[1]; }
};

// Reads a layer from named tensors (a state_dict or a whole-model checkpoint, where
// `prefix` picks the layer, e.g. "encoder.layers.0.self_attn."). Missing names give an
// ErrorKind::Format error that lists the names expected and those found under the prefix;
// so does a parameter given under two of its names (in_proj_weight and q_proj.weight,
// out_proj.weight and o_proj.weight, …), which is ambiguous. `source` names the file.
MhaWeights mha_weights_from_state_dict(const io::NamedTensors& tensors, const std::string& prefix,
                                       const std::string& source);

// PyTorch's state_dict names for these weights: in_proj_weight when Q, K and V all
// project from E to E, else q/k/v_proj_weight; grouped-query layers (which PyTorch's
// module cannot hold) use the separate-Linear names q_proj.weight, ….
io::NamedTensors mha_state_dict(const MhaWeights& weights);

struct MhaInit {
    std::size_t embed_dim = 0, heads = 0, kv_heads = 0;  // kv_heads 0: = heads
    std::size_t kdim = 0, vdim = 0;                      // 0: = embed_dim
    bool bias = true;
    bool add_bias_kv = false;
};

// Fresh weights drawn as torch.nn.MultiheadAttention's constructor draws them after
// torch.manual_seed(seed): out_proj's Linear init, then xavier-uniform in_proj, zero
// biases; bias_k/bias_v xavier-normal (deterministic, not bit-identical to torch).
MhaWeights init_mha_weights(const MhaInit& init, std::uint64_t seed);

struct MhaOptions {
    std::size_t heads = 0;
    std::size_t kv_heads = 0;  // 0: = heads
    bool add_zero_attn = false;
    // Weights (N, L, S) averaged over heads instead of (N, H, L, S). The mean needs every
    // head, so the per-head weights are collected whole first, then averaged.
    bool average_heads = false;
    // Masks, key padding, key lengths, causal, precision, threads, as for sdpa; `mask`
    // may also be (L, S) or (N·H, L, S) (PyTorch's attn_mask shapes). scale is 1/√(E/H)
    // unless set. The causal rule and key lengths reach the kernel as rules, so the keys
    // they hide are skipped, except when bias_k or add_zero_attn append keys: those stay
    // visible, so the rules become explicit masks over the S real keys (docs/kernel.md).
    AttentionOptions attention;
};

struct MhaResult {
    Tensor output;  // (N, L, E), or (L, E) for unbatched (L, E) input
};

// A Linear layer, y = x·Wᵀ + b, on the last dim of x (…, in) with W (out, in) and b
// (out): one BLAS GEMM over every row with `threads` threads (0 = all cores). float64 if
// x or W is float64, else float32.
Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias = std::nullopt, int threads = 0);

// Checks that the layer's weights fit the inputs and options (ErrorKind::Shape, or Usage
// when E does not divide by H or kv_heads does not divide H) and computes the layer.
// Attention weights and logits go to the sinks as scaled_dot_product_attention's do, row
// block by row block while the kernel runs: per head, (N, H, L, S), or (H, L, S) for
// unbatched input, where S counts the keys appended by bias_k and add_zero_attn. With
// average_heads the weights are (N, L, S), or (L, S), handed over a whole matrix at a time
// once every head is done. Results that cannot fit in memory are refused before the
// kernel runs, as for sdpa, naming Arg::Weights, Arg::Logits or Arg::WeightsAndLogits.
// The variants of options.attention (window, softcap, ALiBi, sinks) act per head after the
// projections, heads being H (sinks and slopes are (H,)); `lse` receives each row's
// log-sum-exp per head: (N, H, L), or (H, L) for unbatched input. Precision::Auto
// computes in float64 when Q, K, V or any tensor of the layer is float64, else float32;
// the output, weights, logits and lse have the compute dtype.
MhaResult multi_head_attention(const Tensor& query, const Tensor& key, const Tensor& value, const MhaWeights& layer,
                               const MhaOptions& options, ScoreSink* weights = nullptr, ScoreSink* logits = nullptr,
                               Tensor* lse = nullptr);

}  // namespace attn
