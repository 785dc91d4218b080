#include "attn/error.hpp"

namespace attn {

std::string_view arg_name(Arg arg) noexcept {
    switch (arg) {
        case Arg::None: return "";
        case Arg::Query: return "query";
        case Arg::Key: return "key";
        case Arg::Value: return "value";
        case Arg::QueryKey: return "query/key";
        case Arg::KeyValue: return "key/value";
        case Arg::Mask: return "attn_mask";
        case Arg::KeyPaddingMask: return "key_padding_mask";
        case Arg::KeyLengths: return "key_lengths";
        case Arg::Scale: return "scale";
        case Arg::Window: return "window";
        case Arg::Softcap: return "softcap";
        case Arg::Alibi: return "alibi";
        case Arg::AlibiSlopes: return "alibi_slopes";
        case Arg::Sinks: return "sinks";
        case Arg::Lse: return "lse";
        case Arg::Output: return "output";
        case Arg::Weights: return "weights";
        case Arg::Logits: return "logits";
        case Arg::WeightsAndLogits: return "weights, logits";
        case Arg::Heads: return "num_heads";
        case Arg::KvHeads: return "kv_heads";
        case Arg::LayerWeights: return "layer weights";
        case Arg::DType: return "dtype";
        case Arg::Shape: return "shape";
        case Arg::Batch: return "batch";
        case Arg::Head: return "head";
        case Arg::QueryIndex: return "query index";
        case Arg::JsonLayout: return "nested JSON layout";
    }
    return "";
}

}  // namespace attn
