// Internal: the checks an attention call passes before anything is computed, shared by
// the fast kernel and the reference so that both refuse the same calls with the same
// messages. They only throw; how the problem is set up for computing (scale, offsets,
// masks, visible keys, ALiBi, sinks) is not here but in problem.hpp, which the reference
// does not use. Defined in problem.cpp.
#pragma once

#include "attn/attention.hpp"

namespace attn::detail {

// Checks every shape of a call (ErrorKind::Shape naming both shapes) and returns the
// output's shape, without touching any data.
Shape check_attention_shapes(const Shape& query, const Shape& key, const Shape& value, const AttentionOptions& options);

// Throws ErrorKind::Value (check_memory) when the output and the scores the sinks hold
// would not fit in memory together.
void check_result_memory(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options,
                         const ScoreSink* weights, const ScoreSink* logits);

// Checks the option values, in this order: the scale finite, the window bounds, the
// soft-cap, ALiBi not both the paper's and given slopes, slopes and sinks finite, the
// masks bool or floating (ErrorKind::Value or Usage, naming the option).
void check_option_values(const AttentionOptions& options);

// The dtype the computation runs in.
DType compute_dtype(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionOptions& options);

}  // namespace attn::detail
