// Pieces every subcommand shares: the declaration of each flag more than one subcommand
// takes, enum flags, reading TENSOR arguments and writing a group of outputs
// all-or-nothing. No arithmetic here (docs/style.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <streambuf>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "attn/attention.hpp"
#include "attn/io.hpp"
#include "attn/score_writer.hpp"
#include "attn/tensor.hpp"

namespace attn::cli {

// A subcommand's flags, owned by the callback that runs it once CLI11 has parsed them
// (CLI11's options keep pointers into the flags, so they live as long as the app).
template <class Flags>
std::shared_ptr<Flags> run_with(CLI::App& sub, void (*run)(const Flags&)) {
    auto flags = std::make_shared<Flags>();
    sub.callback([flags, run] { run(*flags); });
    return flags;
}

// Validators whose messages say what was expected and what was found (CLI11's own would
// print "Value 0 not in range 0.000000 to 1.797693e+308" or "Could not convert").
CLI::Validator positive_integer();
CLI::Validator integer_in(long long low, long long high);
CLI::Validator finite_number();
// A finite number > 0.
CLI::Validator positive_number();
// LEFT,RIGHT: two integers >= -1 (a sliding window; -1 leaves a side unbounded).
CLI::Validator window_bounds();
// torch.manual_seed's range, -2^63 to 2^64 - 1 (a negative seed wraps round as in torch).
CLI::Validator seed_value();
// A file name, or - for standard input or output; never empty.
CLI::Validator file_name();

// A comma-separated list of non-negative integers N[,N...] into `values`: an empty
// element ("4,4,", ",3", "") or any other text is a usage error naming the flag.
CLI::Option* add_integer_list_option(CLI::App& app, const std::string& name, std::vector<long long>& values,
                                     const std::string& help);

// The names an enum flag takes, in the order its help and its usage error list them.
template <class Enum>
using EnumNames = std::vector<std::pair<std::string, Enum>>;

// CLI11 reads an enum as its number: this transform turns each name into its number and
// words any other value as CLI::IsMember does, "sideways not in {top-left,bottom-right}"
// (tests/errors.md pins it; CLI::CheckedTransformer would also take the numbers, and
// word it "Check sideways value in {top-left->1,bottom-right->2} OR {1,2} FAILED").
template <class Enum>
CLI::Validator enum_names(const EnumNames<Enum>& names);
// enum_names' work, for the names with their numbers.
CLI::Validator names_to_numbers(const std::vector<std::pair<std::string, long long>>& names);

template <class Enum>
CLI::Validator enum_names(const EnumNames<Enum>& names) {
    std::vector<std::pair<std::string, long long>> numbers;
    for (const auto& [name, value] : names) numbers.emplace_back(name, static_cast<long long>(value));
    return names_to_numbers(numbers);
}

// An option taking one of `names`; `set` gets its value when it is given. Help shows it
// as TEXT:{a,b}.
template <class Enum, class Set>
CLI::Option* add_enum_option_function(CLI::App& app, const std::string& flag, const EnumNames<Enum>& names, Set set,
                                      const std::string& help) {
    return app.add_option_function<Enum>(flag, std::function<void(const Enum&)>(std::move(set)), help)
        ->transform(enum_names(names))
        ->type_name("TEXT");
}

// An option taking one of `names` into `value`, whose name is the default its help shows.
template <class Enum, class = std::enable_if_t<std::is_enum_v<Enum>>>
CLI::Option* add_enum_option(CLI::App& app, const std::string& flag, Enum& value, const EnumNames<Enum>& names,
                             const std::string& help) {
    CLI::Option* option = add_enum_option_function(
        app, flag, names, [&value](const Enum& given) { value = given; }, help);
    for (const auto& [name, named] : names) {
        if (named == value) option->default_str(name);
    }
    return option;
}

// The same for an enum flag without a default: `value` stays empty unless it is given.
template <class Enum>
CLI::Option* add_enum_option(CLI::App& app, const std::string& flag, std::optional<Enum>& value,
                             const EnumNames<Enum>& names, const std::string& help) {
    return add_enum_option_function(
        app, flag, names, [&value](const Enum& given) { value = given; }, help);
}

// The dtypes `dtypes`, each under its numpy name (dtype_name).
EnumNames<DType> dtype_names(const std::vector<DType>& dtypes);

// The flags more than one subcommand takes, each declared here once. A TENSOR, OUT or
// FILE argument (flag or positional): a file name, or - for standard input or output.
CLI::Option* add_file_option(CLI::App& app, const std::string& name, std::string& path, const std::string& help);
// -o/--output OUT, default - (standard output).
CLI::Option* add_output_option(CLI::App& app, std::string& path, const std::string& help);
// --seed S in torch.manual_seed's range.
CLI::Option* add_seed_option(CLI::App& app, std::uint64_t& seed, const std::string& help);
// --check-finite; `help` says what it checks in this subcommand.
void add_check_finite_flag(CLI::App& app, bool& check_finite, const std::string& help);

// With --check-finite: what the error adds after the position of a non-finite value.
inline constexpr const char* kCheckFiniteNote = "--check-finite";
inline constexpr const char* kCheckFiniteMaskNote = "--check-finite; -inf, masked, is allowed in a float mask";

// A TENSOR argument; with --check-finite (`check_finite`) a NaN or infinity in it is an
// error naming it as io::display_name does, and so is a finite value that the dtype it is
// computed in, `compute_dtype` when known, cannot hold (float64 1e300 under --dtype float32).
Tensor read_input(const std::string& spec, bool check_finite, std::optional<DType> compute_dtype = std::nullopt);
// The same for a mask, where -inf means masked and is allowed.
Tensor read_mask(const std::string& spec, bool check_finite, std::optional<DType> compute_dtype = std::nullopt);

// --format and --json-layout: how OUT arguments are written.
void add_output_flags(CLI::App& app, io::WriteOptions& options);

// The outputs of one run, all or nothing: every file is written to a temporary file and
// they all appear, by commit(), only if all could be written; "-" outputs go to standard
// output at commit(), in the order they were added (what went there cannot be undone).
class OutputSet {
public:
    explicit OutputSet(const io::WriteOptions& options);
    ~OutputSet();  // uncommitted files are removed
    OutputSet(const OutputSet&) = delete;
    OutputSet& operator=(const OutputSet&) = delete;

    // An output whose tensor is given whole.
    void add(const std::string& path, const Tensor& tensor);
    // An output filled by the kernel (weights or logits), before the computation. A file
    // in .npy or JSON streams as the rows come, so it is never held whole; standard output
    // and archives are collected and written at commit().
    ScoreSink* add_scores(const std::string& path);
    void commit();

private:
    struct Output;
    const io::WriteOptions options_;
    std::vector<std::unique_ptr<Output>> outputs_;
};

// The OUT arguments of one run, each with the flag that gave it; an empty OUT is not given.
using NamedOutputs = std::vector<std::pair<std::string, std::string>>;
// A usage error naming both flags when two outputs lead to one file (io::same_output_file),
// where all but the last written would be lost. Two "-" are allowed: OutputSet writes
// them one after the other (docs/cli.md, "Standard output and standard error").
void check_distinct_outputs(const NamedOutputs& outputs);

// While a StdoutText lives (main holds one), what is written to std::cout (help,
// --version, inspect's table and cells) goes to standard output through
// io::OutputFile("-"), so that a write that fails is an error, `<stdout>: write failed:
// ...`, where iostreams would only set a flag. flush_stdout() writes what is pending and
// throws the first failure (attn::Error of kind Io).
class StdoutText {
public:
    StdoutText();
    ~StdoutText();  // gives std::cout its own buffer back; what is pending is dropped
    StdoutText(const StdoutText&) = delete;
    StdoutText& operator=(const StdoutText&) = delete;

    class Buffer;

private:
    std::unique_ptr<Buffer> buffer_;
    std::streambuf* previous_;
};
void flush_stdout();

// numpy has no bfloat16: each bfloat16 tensor bound for `format` .npy or .npz becomes
// float32 (exactly). True if any did: the caller then prints kBFloat16Note once its
// outputs are written (so that a failed write leaves one line, its error).
bool widen_bfloat16_for_numpy(const std::vector<Tensor*>& tensors, io::Format format);
inline const char* const kBFloat16Note = "bfloat16 written as float32 (numpy has no bfloat16)";
// "attn-cli: note: SUBJECT: WHAT" on standard error: a fact worth knowing, not an error.
void print_note(const std::string& subject, const std::string& what);

// Writes each (OUT, tensor) pair through an OutputSet.
void write_outputs(const std::vector<std::pair<std::string, const Tensor*>>& outputs, const io::WriteOptions& options);

// The flags sdpa and mha share: inputs, outputs, masks, precision and threads.
struct AttentionFlags;
// The dtype --dtype computes in; nullopt for auto, which computes in float64 when an input
// is float64 (and so holds every input as it is).
std::optional<DType> compute_dtype(const AttentionFlags& flags);

struct AttentionFlags {
    std::string query, key, value;
    std::string output = "-";
    std::string scores, logits;
    Causal causal = Causal::None;
    std::string mask, key_padding_mask;
    std::vector<long long> key_lengths;
    Precision precision = Precision::Auto;
    int threads = 0;
    bool no_progress = false;
    bool timings = false;
    bool check_finite = false;
    // The variants (docs/kernel.md, "Variants") and the log-sum-exp output.
    std::string window;
    double softcap = 0;
    CLI::Option* softcap_option = nullptr;
    bool alibi = false;
    std::string alibi_slopes, sinks, lse;
    io::WriteOptions out;
};

// How a subcommand describes the shared flags in its help.
struct AttentionHelp {
    const char* query;
    const char* key;
    const char* value;
    const char* output;
    const char* scores;
    const char* logits;
    const char* mask;
    const char* key_padding_mask;
};
void add_attention_flags(CLI::App& app, AttentionFlags& flags, const AttentionHelp& help);
// The OUTs of the shared flags, in standard-output order: -o, -s, --logits, --lse.
NamedOutputs attention_outputs(const AttentionFlags& flags);

// Q, K and V as given; K defaults to Q and V to K without copying them. With
// --check-finite, a NaN or infinity in any of them is an error naming the file.
class AttentionInputs {
public:
    explicit AttentionInputs(const AttentionFlags& flags);
    const Tensor& query() const { return query_; }
    const Tensor& key() const { return key_ ? *key_ : query_; }
    const Tensor& value() const { return value_ ? *value_ : key(); }

private:
    Tensor query_;
    std::optional<Tensor> key_, value_;
};

// The options the shared flags ask for (reads the mask tensors; with --check-finite a NaN
// or +inf in a float mask is an error, -inf means masked and is allowed).
AttentionOptions attention_options(const AttentionFlags& flags);

}  // namespace attn::cli
