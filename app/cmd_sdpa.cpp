// attn-cli sdpa: scaled dot-product attention (docs/cli.md, "attn-cli sdpa").
#include "commands.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace attn::cli {
namespace {

struct SdpaFlags {
    AttentionFlags attention;
    double scale = 0;
    CLI::Option* scale_option = nullptr;
};

void run_sdpa(const SdpaFlags& f) {
    check_distinct_outputs(attention_outputs(f.attention));
    PhaseTimer timer(f.attention.timings);
    const AttentionInputs inputs(f.attention);
    AttentionOptions options = attention_options(f.attention);
    if (f.scale_option->count() > 0) options.scale = f.scale;

    // Declared in standard-output order: output, weights, logits, log-sum-exp.
    OutputSet outputs(f.attention.out);
    Tensor output, lse;
    outputs.add(f.attention.output, output);
    ScoreSink* weights = f.attention.scores.empty() ? nullptr : outputs.add_scores(f.attention.scores);
    ScoreSink* logits = f.attention.logits.empty() ? nullptr : outputs.add_scores(f.attention.logits);
    if (!f.attention.lse.empty()) outputs.add(f.attention.lse, lse);
    timer.mark("read");
    output = scaled_dot_product_attention(inputs.query(), inputs.key(), inputs.value(), options, weights, logits,
                                          f.attention.lse.empty() ? nullptr : &lse);
    timer.mark(weights || logits ? "attention (streaming scores)" : "attention");
    outputs.commit();
    timer.mark("write");
    timer.report();
}

const AttentionHelp kHelp{
    "Query TENSOR (..., L, E); any leading batch dims",
    "Key TENSOR (..., S, E); default: the query",
    "Value TENSOR (..., S, Ev); default: the key",
    "OUT for the output (..., L, Ev)",
    "OUT for the attention weights (..., L, S) after masks (with --sinks, rows sum to less than 1)",
    "OUT for the logits (..., L, S) after softcap, ALiBi and masks (-inf where hidden)",
    "Mask TENSOR broadcastable to (..., L, S): bool true = may attend, or float added to the logits",
    "TENSOR (batch..., S): bool true = padding (key ignored), or float added"};

}  // namespace

void setup_sdpa(CLI::App& sub) {
    const auto flags = run_with(sub, run_sdpa);
    add_attention_flags(sub, flags->attention, kHelp);
    flags->scale_option =
        sub.add_option("--scale", flags->scale, "Logit scale; default 1/sqrt(E)")->check(finite_number());
}

}  // namespace attn::cli
