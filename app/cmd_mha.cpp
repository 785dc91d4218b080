// attn-cli mha: multi-head attention as torch.nn.MultiheadAttention(batch_first=True)
// (docs/cli.md, "attn-cli mha").
#include <memory>

#include "attn/mha.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace attn::cli {
namespace {

struct MhaFlags {
    AttentionFlags attention;
    std::size_t heads = 0;
    std::size_t kv_heads = 0;
    std::string weights, weights_prefix, save_weights;
    std::uint64_t seed = 0;
    bool add_zero_attn = false, average_heads = false, no_bias = false, add_bias_kv = false;
    CLI::Option* seed_option = nullptr;
};

void run_mha(const MhaFlags& f) {
    // The layer comes from a file or from a seed, never from a default nobody chose.
    if (!f.weights.empty() && f.seed_option->count() > 0) {
        throw Error(ErrorKind::Usage, "--seed", "initialises weights; it cannot be combined with --weights");
    }
    if (f.weights.empty() && f.seed_option->count() == 0) {
        throw Error(ErrorKind::Usage, "--weights, --seed",
                    "one is required: --weights FILE to load a layer, or --seed S to initialise one");
    }
    NamedOutputs outs = attention_outputs(f.attention);
    outs.emplace_back("--save-weights", f.save_weights);
    check_distinct_outputs(outs);
    PhaseTimer timer(f.attention.timings);
    const AttentionInputs inputs(f.attention);
    const Tensor& query = inputs.query();
    const Tensor& key = inputs.key();
    const Tensor& value = inputs.value();
    MhaWeights weights;
    if (!f.weights.empty()) {
        const io::NamedTensors state_dict = io::read_tensor_archive(f.weights);
        if (f.attention.check_finite) {
            for (const auto& [name, tensor] : state_dict) {
                if (name.compare(0, f.weights_prefix.size(), f.weights_prefix) != 0) continue;  // not read
                check_finite(tensor, io::display_name(f.weights) + ":" + name, false, kCheckFiniteNote,
                             compute_dtype(f.attention));
            }
        }
        weights = mha_weights_from_state_dict(state_dict, f.weights_prefix, f.weights);
    } else {
        const std::size_t rank = query.rank();
        MhaInit init;
        init.embed_dim = rank > 0 ? query.shape().back() : 0;
        init.heads = f.heads;
        init.kv_heads = f.kv_heads;
        init.kdim = key.rank() > 0 ? key.shape().back() : 0;
        init.vdim = value.rank() > 0 ? value.shape().back() : 0;
        init.bias = !f.no_bias;
        init.add_bias_kv = f.add_bias_kv;
        weights = init_mha_weights(init, f.seed);
    }

    MhaOptions options;
    options.heads = f.heads;
    options.kv_heads = f.kv_heads;
    options.add_zero_attn = f.add_zero_attn;
    options.average_heads = f.average_heads;
    options.attention = attention_options(f.attention);

    // Declared in standard-output order: output, weights, logits, log-sum-exp.
    OutputSet outputs(f.attention.out);
    Tensor output;
    outputs.add(f.attention.output, output);
    ScoreSink* scores = f.attention.scores.empty() ? nullptr : outputs.add_scores(f.attention.scores);
    ScoreSink* logits = f.attention.logits.empty() ? nullptr : outputs.add_scores(f.attention.logits);
    Tensor lse;
    if (!f.attention.lse.empty()) outputs.add(f.attention.lse, lse);
    timer.mark("read");
    output = multi_head_attention(query, key, value, weights, options, scores, logits,
                                  f.attention.lse.empty() ? nullptr : &lse)
                 .output;
    io::NamedTensors saved;
    if (!f.save_weights.empty()) saved = mha_state_dict(weights);
    // The weights file joins the group: written only if every output is.
    std::unique_ptr<io::OutputFile> weights_file;
    bool widened = false;
    if (!f.save_weights.empty()) {
        weights_file = std::make_unique<io::OutputFile>(f.save_weights);
        const io::Format format = io::archive_format(f.save_weights);
        std::vector<Tensor*> tensors;
        for (auto& named : saved) tensors.push_back(&named.second);
        widened = widen_bfloat16_for_numpy(tensors, format);
        io::encode_tensor_archive(saved, format, *weights_file);
    }
    timer.mark("attention");
    outputs.commit();
    if (weights_file) weights_file->commit();
    if (widened) print_note(io::display_name(f.weights), kBFloat16Note);
    timer.mark("write");
    timer.report();
}

}  // namespace

void setup_mha(CLI::App& sub) {
    const auto flags = run_with(sub, run_mha);
    sub.add_option("--heads", flags->heads, "Number of heads H; E must divide by H")
        ->required()
        ->check(positive_integer());
    add_attention_flags(sub, flags->attention,
                        {"Query TENSOR (N, L, E) or unbatched (L, E)", "Key TENSOR (N, S, kdim); default: the query",
                         "Value TENSOR (N, S, vdim); default: the key", "OUT for the output (N, L, E)",
                         "OUT for the attention weights (N, H, L, S), or (N, L, S) with --average-heads",
                         "OUT for the scaled logits per head (N, H, L, S), -inf where masked",
                         "Mask TENSOR (L, S), (N*H, L, S) or broadcastable to (N, H, L, S): bool TRUE = MAY ATTEND "
                         "(the opposite of PyTorch MHA's bool attn_mask), or float added",
                         "TENSOR (N, S): bool true = padding, or float added"});
    sub.add_option("--kv-heads", flags->kv_heads, "Key/value heads G for grouped-query attention (G divides H)")
        ->check(positive_integer());
    CLI::Option* weights =
        add_file_option(sub, "--weights", flags->weights,
                        "Weights FILE (.npz, .safetensors, .json) with PyTorch state_dict names (in_proj_weight, "
                        "out_proj.weight, ...) or q_proj.weight/k_proj.weight/v_proj.weight/o_proj.weight; with "
                        "--check-finite every tensor read must be finite");
    sub.add_option("--weights-prefix", flags->weights_prefix,
                   "Read names under this prefix, e.g. 'encoder.layers.0.self_attn.'");
    flags->seed_option =
        add_seed_option(sub, flags->seed,
                        "Without --weights (one of the two is required): initialise as PyTorch does after "
                        "torch.manual_seed(S)");
    // Initialisation only: a weights file has its biases or not.
    sub.add_flag("--no-bias", flags->no_bias, "With --seed: no projection biases (PyTorch bias=False)")
        ->excludes(weights);
    sub.add_flag("--add-bias-kv", flags->add_bias_kv, "With --seed: add bias_k/bias_v (PyTorch add_bias_kv)")
        ->excludes(weights);
    add_file_option(sub, "--save-weights", flags->save_weights,
                    "Write the weights used (.npz, .safetensors, .json) for PyTorch's load_state_dict");
    sub.add_flag("--add-zero-attn", flags->add_zero_attn, "Append a zero key and value (PyTorch add_zero_attn)");
    sub.add_flag("--average-heads", flags->average_heads,
                 "Weights averaged over heads (N, L, S), PyTorch's default; else per head (N, H, L, S)");
}

}  // namespace attn::cli
