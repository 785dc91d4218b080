// The subcommands, one row each of a table that main.cpp adds them from, lists them in
// its usage errors from, and --help lists with their summaries. Each setup_* declares
// its subcommand's flags and the callback that runs it (CLI11's subcom_in_files pattern).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace attn::cli {

void setup_sdpa(CLI::App& sub);
void setup_mha(CLI::App& sub);
void setup_convert(CLI::App& sub);
void setup_random(CLI::App& sub);
void setup_inspect(CLI::App& sub);

struct Command {
    const char* name;
    void (*setup)(CLI::App& sub);
    const char* summary;   // its line in attn-cli --help
    const char* examples;  // the footer of its --help
};

// In the order attn-cli --help lists them.
const std::vector<Command>& commands();

// Adds every subcommand of commands() to `app`.
void add_commands(CLI::App& app);
// "sdpa, mha, convert, random, inspect".
std::string command_names();
bool is_command(const std::string& name);

}  // namespace attn::cli
