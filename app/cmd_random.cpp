// attn-cli random: deterministic test tensors (torch.rand's values for a seed).
#include "attn/random.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace attn::cli {
namespace {

struct RandomFlags {
    std::vector<long long> shape;
    Distribution distribution = Distribution::Uniform;
    std::uint64_t seed = 0;
    DType dtype = DType::Float32;
    std::string output = "-";
    io::WriteOptions out;
};

void run_random(const RandomFlags& f) {
    const Shape shape(f.shape.begin(), f.shape.end());  // non-negative: the validator saw to it
    const Tensor tensor = random_tensor(shape, f.distribution, f.seed, f.dtype);
    write_outputs({{f.output, &tensor}}, f.out);
}

}  // namespace

void setup_random(CLI::App& sub) {
    const auto flags = run_with(sub, run_random);
    add_integer_list_option(sub, "--shape", flags->shape, "Shape, comma-separated: 2,5,64")->required();
    add_enum_option(sub, "--dist", flags->distribution,
                    {{"uniform", Distribution::Uniform}, {"normal", Distribution::Normal}},
                    "uniform: U[0,1) like torch.rand; normal: N(0,1) (Box-Muller)");
    add_seed_option(sub, flags->seed, "Seed (torch.manual_seed)")->capture_default_str();
    add_enum_option(sub, "--dtype", flags->dtype, dtype_names({DType::Float32, DType::Float64}), "float32 or float64");
    add_output_option(sub, flags->output, "OUT");
    add_output_flags(sub, flags->out);
}

}  // namespace attn::cli
