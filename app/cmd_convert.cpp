// attn-cli convert: any TENSOR source to any OUT format.
#include <memory>

#include "commands.hpp"
#include "common.hpp"

namespace attn::cli {
namespace {

struct ConvertFlags {
    std::string input, output;
    std::string dtype;
    bool check_finite = false;
    OutputFlags out;
};

void run_convert(const ConvertFlags& f) {
    Tensor tensor = io::read_tensor(f.input);
    if (f.check_finite) check_finite(tensor, io::display_name(f.input), false, kCheckFiniteNote);
    if (!f.dtype.empty()) tensor = std::move(tensor).to(*dtype_from_name(f.dtype));
    write_outputs({{f.output, &tensor}}, f.out);
}

}  // namespace

void setup_convert(CLI::App& app) {
    auto flags = std::make_shared<ConvertFlags>();
    CLI::App* sub = app.add_subcommand("convert", "Convert a tensor between .npy, .npz, .safetensors and JSON");
    sub->add_option("input", flags->input, "TENSOR to read")->required()->check(file_name());
    sub->add_option("output", flags->output, "OUT to write (extension picks the format; - for stdout)")
        ->required()
        ->check(file_name());
    sub->add_option("--dtype", flags->dtype, "Convert the values to this dtype")
        ->check(CLI::IsMember(
            {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"}));
    sub->add_flag("--check-finite", flags->check_finite, "Refuse an input holding NaN or an infinity");
    add_output_flags(*sub, flags->out);
    sub->footer(
        "Examples:\n"
        "  attn-cli convert data/q.npy q.json\n"
        "  attn-cli convert weights.safetensors:out_proj.weight w.npy --dtype float64\n"
        "  cat q.json | attn-cli convert - - --format npy > q.npy");
    sub->callback([flags] { run_convert(*flags); });
}

}  // namespace attn::cli
