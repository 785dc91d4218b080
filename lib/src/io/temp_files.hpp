// Internal: the temporary files of uncommitted outputs, so that a signal handler can
// remove them (attn::remove_temp_files_now in attn/io.hpp is the public face).
#pragma once

#include <string>

namespace attn::detail {

void register_temp_file(const std::string& path);
void unregister_temp_file(const std::string& path);

}  // namespace attn::detail
