// One setup_* per subcommand: each adds its subcommand, its flags and the callback that
// runs it (CLI11's subcom_in_files pattern).
#pragma once

#include <CLI/CLI.hpp>

namespace attn::cli {

void setup_sdpa(CLI::App& app);
void setup_mha(CLI::App& app);
void setup_convert(CLI::App& app);
void setup_random(CLI::App& app);
void setup_inspect(CLI::App& app);

}  // namespace attn::cli
