// attn-cli random: deterministic test tensors (torch.rand's values for a seed).
#include <memory>

#include "attn/random.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace attn::cli {
namespace {

struct RandomFlags {
    std::vector<long long> shape;
    std::string distribution = "uniform";
    std::uint64_t seed = 0;
    std::string dtype = "float32";
    std::string output = "-";
    OutputFlags out;
};

void run_random(const RandomFlags& f) {
    const Shape shape(f.shape.begin(), f.shape.end());  // non-negative: the validator saw to it
    const Tensor tensor =
        random_tensor(shape, f.distribution == "normal" ? Distribution::Normal : Distribution::Uniform, f.seed,
                      *dtype_from_name(f.dtype));
    write_outputs({{f.output, &tensor}}, f.out);
}

}  // namespace

void setup_random(CLI::App& app) {
    auto flags = std::make_shared<RandomFlags>();
    CLI::App* sub =
        app.add_subcommand("random", "Random test tensors; uniform ones equal torch.rand after torch.manual_seed");
    sub->add_option("--shape", flags->shape, "Shape, comma-separated: 2,5,64")
        ->required()
        ->delimiter(',')
        ->check(non_negative_integer());
    sub->add_option("--dist", flags->distribution, "uniform: U[0,1) like torch.rand; normal: N(0,1) (Box-Muller)")
        ->check(CLI::IsMember({"uniform", "normal"}))
        ->capture_default_str();
    sub->add_option("--seed", flags->seed, "Seed (torch.manual_seed)")->capture_default_str()->check(seed_value());
    sub->add_option("--dtype", flags->dtype, "float32 or float64")
        ->check(CLI::IsMember({"float32", "float64"}))
        ->capture_default_str();
    sub->add_option("-o,--output", flags->output, "OUT")->capture_default_str()->check(file_name());
    add_output_flags(*sub, flags->out);
    sub->footer(
        "Examples:\n"
        "  attn-cli random --shape 2,5,64 --seed 0 -o q.npy\n"
        "  attn-cli random --shape 4,4 --dist normal --dtype float64 --seed 7");
    sub->callback([flags] { run_random(*flags); });
}

}  // namespace attn::cli
