// Pieces every subcommand shares: reading TENSOR arguments, the output-format flags and
// writing a group of outputs all-or-nothing. No arithmetic here (style.md).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "attn/attention.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"

namespace attn::cli {

// Flags that choose how OUT arguments are written.
struct OutputFlags {
    std::string format;  // "", "json" or "npy": forces the format (needed for "-")
    std::string json_layout = "object";
};
void add_output_flags(CLI::App& app, OutputFlags& flags);
io::WriteOptions write_options(const OutputFlags& flags);

// Writes each (OUT, tensor) pair; every file appears only if all could be written, and
// "-" outputs go to standard output in the order given.
void write_outputs(const std::vector<std::pair<std::string, const Tensor*>>& outputs, const OutputFlags& flags);

// The --dtype values: auto, float32, float64.
void add_dtype_flag(CLI::App& app, std::string& dtype);
Precision precision_from(const std::string& dtype);

// The --causal flag: bare means top-left.
CLI::Option* add_causal_flag(CLI::App& app, std::string& causal);
Causal causal_from(const CLI::Option* option, const std::string& causal);

// --key-lengths N[,N…] as sizes; throws a usage error naming the flag on a bad value.
std::vector<std::size_t> parse_key_lengths(const std::vector<long long>& values);

}  // namespace attn::cli
