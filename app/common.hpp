// Pieces every subcommand shares: reading TENSOR arguments, the output-format flags and
// writing a group of outputs all-or-nothing. No arithmetic here (docs/style.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "attn/attention.hpp"
#include "attn/io.hpp"
#include "attn/score_writer.hpp"
#include "attn/tensor.hpp"

namespace attn::cli {

// Validators whose messages say what was expected and what was found (CLI11's own would
// print "Value 0 not in range 0.000000 to 1.797693e+308" or "Could not convert").
CLI::Validator positive_integer();
CLI::Validator non_negative_integer();
CLI::Validator integer_in(long long low, long long high);
CLI::Validator finite_number();
// torch.manual_seed's range, -2^63 to 2^64 - 1 (a negative seed wraps round as in torch).
CLI::Validator seed_value();
// A file name, or - for standard input or output; never empty.
CLI::Validator file_name();

// How errors name a TENSOR argument: the argument itself, <stdin> for "-".
std::string tensor_subject(const std::string& spec);
// With --check-finite: what the error adds after the position of a non-finite value.
inline constexpr const char* kCheckFiniteNote = "--check-finite";
inline constexpr const char* kCheckFiniteMaskNote = "--check-finite; -inf, masked, is allowed in a float mask";

// Flags that choose how OUT arguments are written.
struct OutputFlags {
    std::string format;  // "", "json" or "npy": forces the format (needed for "-")
    std::string json_layout = "object";
};
void add_output_flags(CLI::App& app, OutputFlags& flags);
io::WriteOptions write_options(const OutputFlags& flags);

// The outputs of one run, all or nothing: every file is written to a temporary file and
// they all appear, by commit(), only if all could be written; "-" outputs go to standard
// output at commit(), in the order they were added (what went there cannot be undone).
class OutputSet {
public:
    explicit OutputSet(const OutputFlags& flags);
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

// Writes each (OUT, tensor) pair through an OutputSet.
void write_outputs(const std::vector<std::pair<std::string, const Tensor*>>& outputs, const OutputFlags& flags);

// The flags sdpa and mha share: inputs, outputs, masks, precision and threads.
struct AttentionFlags {
    std::string query, key, value;
    std::string output = "-";
    std::string scores, logits;
    std::string causal;
    CLI::Option* causal_option = nullptr;
    std::string mask, key_padding_mask;
    std::vector<long long> key_lengths;
    std::string dtype = "auto";
    int threads = 0;
    bool no_progress = false;
    bool timings = false;
    bool check_finite = false;
    OutputFlags out;
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
