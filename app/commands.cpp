// The table of subcommands commands.hpp offers: name, setup, summary and examples.
#include "commands.hpp"

namespace attn::cli {

const std::vector<Command>& commands() {
    static const std::vector<Command> kCommands = {
        {"sdpa", setup_sdpa, "Scaled dot-product attention: softmax(Q.K^T.scale + mask).V",
         "Examples:\n"
         "  attn-cli sdpa -q data/q.npy -k data/k.npy -v data/v.npy                 # output as JSON on stdout\n"
         "  attn-cli sdpa -q q.npy -k k.npy -v v.npy -o out.npy -s weights.npy --causal bottom-right\n"
         "  attn-cli sdpa -q q.npy --mask mask.npy --key-lengths 5,3 --dtype float64 -o out.json\n"
         "  attn-cli sdpa -q q.npy -k k.npy -v v.npy --window 4095,0 --softcap 50 --lse lse.npy -o out.npy\n"},
        {"mha", setup_mha, "Multi-head attention with projections (torch.nn.MultiheadAttention)",
         "Examples:\n"
         "  attn-cli mha --heads 8 -q data/q.npy -k data/k.npy -v data/v.npy --weights data/mha_weights.npz -s w.npy\n"
         "  attn-cli mha --heads 8 -q x.npy --seed 0 --save-weights w.safetensors --causal -o out.npy\n"
         "  attn-cli mha --heads 16 -q x.npy --weights model.safetensors --weights-prefix layers.3.attn. "
         "--average-heads\n"},
        {"convert", setup_convert, "Convert a tensor between .npy, .npz, .safetensors and JSON",
         "Examples:\n"
         "  attn-cli convert data/q.npy q.json\n"
         "  attn-cli convert weights.safetensors:out_proj.weight w.npy --dtype float64\n"
         "  cat q.json | attn-cli convert - - --format npy > q.npy"},
        {"random", setup_random, "Random test tensors; uniform ones equal torch.rand after torch.manual_seed",
         "Examples:\n"
         "  attn-cli random --shape 2,5,64 --seed 0 -o q.npy\n"
         "  attn-cli random --shape 4,4 --dist normal --dtype float64 --seed 7"},
        {"inspect", setup_inspect, "Summarise attention weights (..., L, S): row sums, entropy, top-k keys; heatmaps",
         "Examples:\n"
         "  attn-cli inspect weights.npy                          # table per batch/head, top-3 keys per query\n"
         "  attn-cli inspect weights.npy --batch 1 --head 3 --query 7 --top-k 5\n"
         "  attn-cli inspect weights.npy --json | python3 -m json.tool\n"
         "  attn-cli inspect weights.npy --heatmap heads.png --labels tokens.txt\n"
         "  attn-cli inspect weights.npy --ansi --head 2\n"
         "Rows that do not sum to 1 give a warning on standard error, not an error; negative weights are an "
         "error.\n"},
    };
    return kCommands;
}

void add_commands(CLI::App& app) {
    for (const Command& command : commands()) {
        CLI::App* sub = app.add_subcommand(command.name, command.summary);
        sub->footer(command.examples);
        command.setup(*sub);
    }
}

std::string command_names() {
    std::string names;
    for (const Command& command : commands()) names += (names.empty() ? "" : ", ") + std::string(command.name);
    return names;
}

bool is_command(const std::string& name) {
    for (const Command& command : commands()) {
        if (name == command.name) return true;
    }
    return false;
}

}  // namespace attn::cli
