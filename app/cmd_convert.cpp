// attn-cli convert: any TENSOR source to any OUT format.
#include "commands.hpp"
#include "common.hpp"

namespace attn::cli {
namespace {

struct ConvertFlags {
    std::string input, output;
    std::optional<DType> dtype;
    bool check_finite = false;
    io::WriteOptions out;
};

void run_convert(const ConvertFlags& f) {
    Tensor tensor = read_input(f.input, f.check_finite);
    if (f.dtype) tensor = std::move(tensor).to(*f.dtype, io::display_name(f.input));
    const bool widened = widen_bfloat16_for_numpy({&tensor}, io::output_format(f.output, f.out));
    write_outputs({{f.output, &tensor}}, f.out);
    if (widened) print_note(io::display_name(f.input), kBFloat16Note);
}

}  // namespace

void setup_convert(CLI::App& sub) {
    const auto flags = run_with(sub, run_convert);
    add_file_option(sub, "input", flags->input, "TENSOR to read")->required();
    add_file_option(sub, "output", flags->output, "OUT to write (extension picks the format; - for stdout)")
        ->required();
    add_enum_option(
        sub, "--dtype", flags->dtype,
        dtype_names({DType::Bool, DType::Int8, DType::Int16, DType::Int32, DType::Int64, DType::UInt8, DType::UInt16,
                     DType::UInt32, DType::UInt64, DType::Float16, DType::BFloat16, DType::Float32, DType::Float64}),
        "Convert the values to this dtype");
    add_check_finite_flag(sub, flags->check_finite, "Refuse an input holding NaN or an infinity");
    add_output_flags(sub, flags->out);
}

}  // namespace attn::cli
