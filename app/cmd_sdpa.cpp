// attn-cli sdpa: scaled dot-product attention (shared/spec/cli.md, "attn-cli sdpa").
#include <memory>
#include <optional>

#include "commands.hpp"
#include "common.hpp"

namespace attn::cli {
namespace {

struct SdpaFlags {
    std::string query, key, value;
    std::string output = "-";
    std::string scores, logits;
    double scale = 0;
    std::string causal;
    std::string mask, key_padding_mask;
    std::vector<long long> key_lengths;
    std::string dtype = "auto";
    int threads = 0;
    OutputFlags out;
    CLI::Option* scale_option = nullptr;
    CLI::Option* causal_option = nullptr;
};

void run_sdpa(const SdpaFlags& f) {
    const Tensor query = io::read_tensor(f.query);
    const Tensor key = f.key.empty() ? query : io::read_tensor(f.key);
    const Tensor value = f.value.empty() ? key : io::read_tensor(f.value);
    AttentionOptions options;
    if (f.scale_option->count() > 0) options.scale = f.scale;
    options.causal = causal_from(f.causal_option, f.causal);
    if (!f.mask.empty()) options.mask = io::read_tensor(f.mask);
    if (!f.key_padding_mask.empty()) options.key_padding_mask = io::read_tensor(f.key_padding_mask);
    options.key_lengths = parse_key_lengths(f.key_lengths);
    options.precision = precision_from(f.dtype);
    options.threads = f.threads;

    std::optional<TensorScoreSink> weights, logits;
    if (!f.scores.empty()) weights.emplace();
    if (!f.logits.empty()) logits.emplace();
    const Tensor output = scaled_dot_product_attention(query, key, value, options, weights ? &*weights : nullptr,
                                                       logits ? &*logits : nullptr);
    std::vector<std::pair<std::string, const Tensor*>> outputs{{f.output, &output}};
    if (weights) outputs.emplace_back(f.scores, &weights->tensor());
    if (logits) outputs.emplace_back(f.logits, &logits->tensor());
    write_outputs(outputs, f.out);
}

}  // namespace

void setup_sdpa(CLI::App& app) {
    auto flags = std::make_shared<SdpaFlags>();
    CLI::App* sub = app.add_subcommand("sdpa", "Scaled dot-product attention: softmax(Q.K^T.scale + mask).V");
    sub->add_option("-q,--query", flags->query, "Query TENSOR (..., L, E); any leading batch dims")->required();
    sub->add_option("-k,--key", flags->key, "Key TENSOR (..., S, E); default: the query");
    sub->add_option("-v,--value", flags->value, "Value TENSOR (..., S, Ev); default: the key");
    sub->add_option("-o,--output", flags->output, "OUT for the output (..., L, Ev)")->capture_default_str();
    sub->add_option("-s,--scores", flags->scores, "OUT for the attention weights (..., L, S) after masks");
    sub->add_option("--logits", flags->logits, "OUT for the scaled logits (..., L, S) after masks (-inf where masked)");
    flags->scale_option = sub->add_option("--scale", flags->scale, "Logit scale; default 1/sqrt(E)");
    flags->causal_option = add_causal_flag(*sub, flags->causal);
    sub->add_option("--mask", flags->mask,
                    "Mask TENSOR broadcastable to (..., L, S): bool true = may attend, or float added to the logits");
    sub->add_option("--key-padding-mask", flags->key_padding_mask,
                    "TENSOR (batch..., S): bool true = padding (key ignored), or float added");
    sub->add_option("--key-lengths", flags->key_lengths, "Valid keys per batch item N[,N...]; later keys are ignored")
        ->delimiter(',');
    add_dtype_flag(*sub, flags->dtype);
    sub->add_option("--threads", flags->threads, "Worker threads; default: all cores")->check(CLI::Range(1, 4096));
    add_output_flags(*sub, flags->out);
    sub->footer(
        "Examples:\n"
        "  attn-cli sdpa -q data/q.npy -k data/k.npy -v data/v.npy                 # output as JSON on stdout\n"
        "  attn-cli sdpa -q q.npy -k k.npy -v v.npy -o out.npy -s weights.npy --causal bottom-right\n"
        "  attn-cli sdpa -q q.npy --mask mask.npy --key-lengths 5,3 --dtype float64 -o out.json\n");
    sub->callback([flags] { run_sdpa(*flags); });
}

}  // namespace attn::cli
