#include "errors.hpp"

namespace attn::cli {

std::string_view flag_for(Arg arg) noexcept {
    switch (arg) {
        case Arg::None: return "";
        case Arg::Query: return "-q/--query";
        case Arg::Key: return "-k/--key";
        case Arg::Value: return "-v/--value";
        case Arg::QueryKey: return "-q/-k";
        case Arg::KeyValue: return "-k/-v";
        case Arg::Mask: return "--mask";
        case Arg::KeyPaddingMask: return "--key-padding-mask";
        case Arg::KeyLengths: return "--key-lengths";
        case Arg::Scale: return "--scale";
        case Arg::Window: return "--window";
        case Arg::Softcap: return "--softcap";
        case Arg::Alibi: return "--alibi";
        case Arg::AlibiSlopes: return "--alibi-slopes";
        case Arg::Sinks: return "--sinks";
        case Arg::Lse: return "--lse";
        case Arg::Output: return "-o/--output";
        case Arg::Weights: return "-s/--scores";
        case Arg::Logits: return "--logits";
        case Arg::WeightsAndLogits: return "-s/--scores, --logits";
        case Arg::Heads: return "--heads";
        case Arg::KvHeads: return "--kv-heads";
        case Arg::LayerWeights: return "--weights";
        case Arg::DType: return "--dtype";
        case Arg::Shape: return "--shape";
        case Arg::Batch: return "--batch";
        case Arg::Head: return "--head";
        case Arg::QueryIndex: return "--query";
        case Arg::JsonLayout: return "--json-layout nested";
    }
    return "";
}

std::string error_message(const Error& error) {
    const std::string_view flag = flag_for(error.arg());
    if (flag.empty()) return error.what();
    return std::string(flag) + ": " + error.detail();
}

}  // namespace attn::cli
