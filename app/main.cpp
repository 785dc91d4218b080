// attn-cli: the command-line face of the attn library. Parses arguments, runs one
// subcommand and maps errors to the exit statuses of docs/cli.md:
// 0 success, 1 bad input, 2 usage.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>

#include <CLI/CLI.hpp>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "errors.hpp"

namespace {

constexpr int kExitBadInput = 1;
constexpr int kExitUsage = 2;

// On SIGINT, SIGTERM, SIGHUP or SIGPIPE: remove unfinished output files, then die of the
// same signal as a process without a handler would (quietly, with the usual status).
extern "C" void on_fatal_signal(int signal_number) {
    attn::io::remove_pending_outputs();
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
}

void install_signal_handlers() {
    // A signal the parent ignores stays ignored (a background job of a script ignores
    // SIGINT; with SIGPIPE ignored a closed pipe is a write error, EPIPE, as in coreutils).
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) {
        if (std::signal(s, on_fatal_signal) == SIG_IGN) std::signal(s, SIG_IGN);
    }
}

// A standard descriptor its caller closed (`attn-cli ... >&-`) is taken at once, before
// any file is opened: else the first file opened would get its number, and standard output
// ("-") would be written into an input or into another output's temporary file. Standard
// output and error get the root folder, read-only: a write fails with EBADF, the error of a
// closed descriptor (`<stdout>: write failed: Bad file descriptor`), and /dev/stdout, which
// reopens it, cannot be opened for writing (/dev/null there would take the data silently).
// Standard input gets /dev/null, write-only: a read fails with EBADF as well.
void occupy_closed_standard_descriptors() {
    for (const int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        const int opened = fd == STDIN_FILENO ? ::open("/dev/null", O_WRONLY) : ::open("/", O_RDONLY | O_DIRECTORY);
        if (opened >= 0 && opened != fd) {  // lower descriptors are open: it is `fd` unless one was not
            ::dup2(opened, fd);
            ::close(opened);
        }
    }
}

// The last defence of the one-line contract: a control byte that reached the message
// unquoted (each name should have gone through attn::quoted where the message was made)
// is written as \xNN.
void report(const std::string& message) {
    std::cerr << "attn-cli: error: " << attn::printable(message, /*keep_utf8=*/true) << '\n';
}

// CLI11 messages can span lines, and echo arguments as they were given; the contract is
// one printable line. Each argument with a control byte is made printable where the
// message echoes it, then CLI11's own line breaks become spaces.
std::string one_line(std::string text, int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const std::string shown = attn::printable(arg, /*keep_utf8=*/true);
        if (arg.empty() || shown == arg) continue;
        for (std::size_t at = text.find(arg); at != std::string::npos; at = text.find(arg, at + shown.size())) {
            text.replace(at, arg.size(), shown);
        }
    }
    for (char& c : text) {
        if (c == '\n') c = ' ';
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
}

// CLI11's messages that do not start with the flag at fault, reworded so that they do.
std::string usage_message(const std::string& text) {
    static const std::pair<std::regex, const char*> kRewrites[] = {
        {std::regex("^(.+) is required$"), "$1: required, not given"},
        {std::regex("^The following argument was not expected: (.+)$"), "$1: unexpected argument"},
        {std::regex("^The following arguments were not expected: (.+)$"), "$1: unexpected arguments"},
        {std::regex("^(\\S+) excludes (\\S+)$"), "$1: cannot be combined with $2"},
        {std::regex("^Could not convert: (\\S+) = (.*)$"), "$1: cannot read '$2'"},
        {std::regex("^(\\S+): At Most 1 required but received (\\d+)$"), "$1: given $2 times, expected once"},
    };
    for (const auto& [pattern, replacement] : kRewrites) {
        if (std::regex_match(text, pattern)) return std::regex_replace(text, pattern, replacement);
    }
    return text;
}

std::unique_ptr<CLI::App> make_app() {
    auto app = std::make_unique<CLI::App>(
        "attn-cli - attention calculator: scaled dot-product and multi-head attention on tensor files,\n"
        "with PyTorch's semantics.",
        "attn-cli");
    app->set_version_flag("--version", std::string("attn-cli ") + ATTN_VERSION);
    app->require_subcommand(1);
    // Every option of every subcommand (they inherit this) takes one value: given twice,
    // "--scale 1 --scale 2" or "-o a.npy -o b.npy", it is a usage error, not the last one
    // silently. Switches without a value (--causal aside) may repeat.
    app->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::Throw);
    app->footer(
        "Examples:\n"
        "  attn-cli sdpa -q data/q.npy -k data/k.npy -v data/v.npy -o out.npy --scores weights.npy\n"
        "  attn-cli mha --heads 8 -q data/q.npy --weights data/mha_weights.npz -o out.json\n"
        "  attn-cli random --shape 2,5,64 --seed 0 --format npy | attn-cli sdpa -q - --causal\n"
        "  attn-cli convert data/q.npy q.json\n"
        "  attn-cli inspect weights.npy --heatmap heads.png --labels data/tokens.txt\n"
        "\n"
        "TENSOR: file.npy, file.json, file.npz:NAME, file.safetensors:NAME, or - (standard input).\n"
        "OUT: file.npy, file.json, file.npz, file.safetensors, or - (standard output, JSON unless --format npy).\n"
        "Exit status: 0 success, 1 bad input, 2 usage error.");
    attn::cli::add_commands(*app);
    return app;
}

// CLI11 would only say "a subcommand is required", or take an unknown first word for an
// extra argument; name what was wrong instead. Nullopt when argv[1] is a subcommand or
// a help or version flag.
std::optional<std::string> subcommand_name_error(int argc, char** argv) {
    const std::string expected = " (expected one of " + attn::cli::command_names() + "; see attn-cli --help)";
    if (argc == 1) return "missing subcommand" + expected;
    const std::string first = attn::printable(argv[1]);
    if (first == "-h" || first == "--help" || first == "--version" || attn::cli::is_command(first)) {
        return std::nullopt;
    }
    return (first.rfind('-', 0) == 0 ? first + ": unknown flag" : first + ": unknown subcommand") + expected;
}

// Parses and runs the subcommand; maps what it throws to a message and an exit status.
int run_and_map_errors(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // argv[1] is a known subcommand here (subcommand_name_error) or a help/version flag.
        const std::string help = argv[1][0] == '-' ? "attn-cli --help" : std::string("attn-cli ") + argv[1] + " --help";
        report(usage_message(one_line(e.what(), argc, argv)) + " (see " + help + ")");
        return kExitUsage;
    } catch (const attn::Error& e) {
        report(attn::cli::error_message(e));
        return e.kind() == attn::ErrorKind::Usage ? kExitUsage : kExitBadInput;
    } catch (const std::bad_alloc&) {
        report("out of memory");
        return kExitBadInput;
    } catch (const std::exception& e) {
        report(e.what());
        return kExitBadInput;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    occupy_closed_standard_descriptors();
    install_signal_handlers();
    const attn::cli::StdoutText stdout_text;
    const std::unique_ptr<CLI::App> app = make_app();
    if (const std::optional<std::string> error = subcommand_name_error(argc, argv)) {
        report(*error);
        return kExitUsage;
    }
    const int status = run_and_map_errors(*app, argc, argv);
    // The one check, for every subcommand, --help and --version, that what std::cout was
    // given reached standard output (a full disk, a closed descriptor).
    try {
        attn::cli::flush_stdout();
    } catch (const attn::Error& e) {
        if (status != 0) return status;  // that error is reported already
        report(attn::cli::error_message(e));
        return kExitBadInput;
    }
    return status;
}
