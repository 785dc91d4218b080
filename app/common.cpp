#include "common.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>

#include "progress.hpp"

namespace attn::cli {

namespace {

// `text` as a whole decimal integer, or nullopt (empty, trailing text, out of range).
std::optional<long long> parse_integer(const std::string& text) {
    if (text.empty() || text.find_first_not_of("+-0123456789") != std::string::npos) return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
    return value;
}

CLI::Validator validator(std::string description, std::function<std::string(std::string&)> check) {
    return {std::move(check), std::move(description)};
}

}  // namespace

CLI::Validator positive_integer() {
    return validator("", [](std::string& text) -> std::string {
        const auto value = parse_integer(text);
        if (value && *value > 0) return {};
        return "expected a positive integer, found '" + text + "'";
    });
}

CLI::Validator non_negative_integer() {
    return validator("", [](std::string& text) -> std::string {
        const auto value = parse_integer(text);
        if (value && *value >= 0) return {};
        return "expected a non-negative integer, found '" + text + "'";
    });
}

CLI::Validator integer_in(long long low, long long high) {
    return validator("[" + std::to_string(low) + " - " + std::to_string(high) + "]",
                     [low, high](std::string& text) -> std::string {
                         const auto value = parse_integer(text);
                         if (value && *value >= low && *value <= high) return {};
                         return "expected an integer from " + std::to_string(low) + " to " + std::to_string(high) +
                                ", found '" + text + "'";
                     });
}

CLI::Validator finite_number() {
    return validator("", [](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (!text.empty() && errno == 0 && end == text.c_str() + text.size() && std::isfinite(value)) return {};
        return "expected a finite number, found '" + text + "'";
    });
}

CLI::Validator seed_value() {
    return validator("", [](std::string& text) -> std::string {
        const char* digits = text.c_str() + (text.rfind('-', 0) == 0 ? 1 : 0);
        bool ok = *digits != '\0' && std::string(digits).find_first_not_of("0123456789") == std::string::npos;
        if (ok) {
            errno = 0;
            if (text[0] == '-') {
                (void)std::strtoll(text.c_str(), nullptr, 10);
            } else {
                (void)std::strtoull(text.c_str(), nullptr, 10);
            }
            ok = errno == 0;
        }
        if (ok) return {};
        return "expected an integer from -9223372036854775808 to 18446744073709551615 (torch.manual_seed's range), "
               "found '" +
               text + "'";
    });
}

CLI::Validator file_name() {
    return validator("", [](std::string& text) -> std::string {
        if (!text.empty()) return {};
        return "expected a file name, or - for standard input or output, found ''";
    });
}

void add_output_flags(CLI::App& app, OutputFlags& flags) {
    app.add_option("--format", flags.format, "Format of every OUT, whatever its name (needed for '-': default json)")
        ->check(CLI::IsMember({"json", "npy"}));
    app.add_option("--json-layout", flags.json_layout,
                   "JSON OUT layout: object ({shape, dtype, data}) or nested (bare arrays)")
        ->check(CLI::IsMember({"object", "nested"}))
        ->capture_default_str();
}

io::WriteOptions write_options(const OutputFlags& flags) {
    io::WriteOptions options;
    if (flags.format == "json") options.format = io::Format::Json;
    if (flags.format == "npy") options.format = io::Format::Npy;
    options.json_layout = flags.json_layout == "nested" ? io::JsonLayout::Nested : io::JsonLayout::Object;
    return options;
}

struct OutputSet::Output {
    std::string path;
    const Tensor* tensor = nullptr;            // given whole
    std::optional<TensorScoreSink> collected;  // scores held until commit
    std::unique_ptr<io::OutputFile> file;      // the staged file (none for "-" until commit)
    std::optional<StreamingScoreWriter> stream;
};

OutputSet::OutputSet(const OutputFlags& flags) : options_(write_options(flags)) {}

OutputSet::~OutputSet() = default;

void OutputSet::add(const std::string& path, const Tensor& tensor) {
    auto out = std::make_unique<Output>();
    out->path = path;
    out->tensor = &tensor;
    io::output_format(path, options_);  // a bad name fails now, before any work
    outputs_.push_back(std::move(out));
}

ScoreSink* OutputSet::add_scores(const std::string& path) {
    auto out = std::make_unique<Output>();
    out->path = path;
    const io::Format format = io::output_format(path, options_);
    if (path != "-" && StreamingScoreWriter::streams(format)) {
        out->file = std::make_unique<io::OutputFile>(path);
        out->stream.emplace(*out->file, format, options_.json_layout, path);
    } else {
        out->collected.emplace();
    }
    outputs_.push_back(std::move(out));
    Output& added = *outputs_.back();
    return added.stream ? static_cast<ScoreSink*>(&*added.stream) : &*added.collected;
}

void OutputSet::commit() {
    // Files first (staged, not yet visible), then standard output, then every rename.
    auto encode = [&](Output& out, io::ByteSink& sink) {
        const Tensor& tensor = out.tensor ? *out.tensor : out.collected->tensor();
        io::encode_tensor(tensor, io::output_format(out.path, options_), sink, options_);
    };
    for (auto& out : outputs_) {
        if (out->stream) {
            out->stream->finish();
        } else if (out->path != "-") {
            out->file = std::make_unique<io::OutputFile>(out->path);
            encode(*out, *out->file);
        }
    }
    for (auto& out : outputs_) {
        if (out->path != "-") continue;
        io::OutputFile stdout_file(out->path);
        encode(*out, stdout_file);
        stdout_file.commit();
    }
    for (auto& out : outputs_) {
        if (out->file) out->file->commit();
    }
}

void write_outputs(const std::vector<std::pair<std::string, const Tensor*>>& outputs, const OutputFlags& flags) {
    OutputSet set(flags);
    for (const auto& [path, tensor] : outputs) set.add(path, *tensor);
    set.commit();
}

namespace {

Precision precision_from(const std::string& dtype) {
    if (dtype == "float32") return Precision::Float32;
    if (dtype == "float64") return Precision::Float64;
    return Precision::Auto;
}

// Non-negative: the flag's validator refused anything else.
std::vector<std::size_t> parse_key_lengths(const std::vector<long long>& values) {
    return std::vector<std::size_t>(values.begin(), values.end());
}

}  // namespace

void add_attention_flags(CLI::App& app, AttentionFlags& flags, const AttentionHelp& help) {
    app.add_option("-q,--query", flags.query, help.query)->required()->check(file_name());
    app.add_option("-k,--key", flags.key, help.key)->check(file_name());
    app.add_option("-v,--value", flags.value, help.value)->check(file_name());
    app.add_option("-o,--output", flags.output, help.output)->capture_default_str()->check(file_name());
    app.add_option("-s,--scores", flags.scores, help.scores)->check(file_name());
    app.add_option("--logits", flags.logits, help.logits)->check(file_name());
    flags.causal_option = app.add_option("--causal", flags.causal,
                                         "Causal mask: top-left (bare --causal; query i sees keys 0..i) or "
                                         "bottom-right (query i sees keys 0..i+S-L)")
                              ->expected(0, 1)
                              ->check(CLI::IsMember({"top-left", "bottom-right"}));
    app.add_option("--mask", flags.mask, help.mask)->check(file_name());
    app.add_option("--key-padding-mask", flags.key_padding_mask, help.key_padding_mask)->check(file_name());
    app.add_option("--key-lengths", flags.key_lengths, "Valid keys per batch item N[,N...]; later keys are ignored")
        ->delimiter(',')
        ->check(non_negative_integer());
    app.add_option("--dtype", flags.dtype, "Compute and output precision; auto: float64 if an input is float64")
        ->check(CLI::IsMember({"auto", "float32", "float64"}))
        ->capture_default_str();
    app.add_option("--threads", flags.threads, "Worker threads; default: all cores")->check(integer_in(1, 4096));
    app.add_flag("--no-progress", flags.no_progress,
                 "No progress bar (otherwise drawn on standard error, when it is a terminal, for runs over a second)");
    app.add_flag("--timings", flags.timings,
                 "Print the seconds spent reading, computing and writing, one line on standard error");
    app.add_flag("--check-finite", flags.check_finite,
                 "Refuse NaN and infinities in the inputs (-inf is allowed in a float mask, where it means masked)");
    add_output_flags(app, flags.out);
}

AttentionInputs::AttentionInputs(const AttentionFlags& flags) : query_(io::read_tensor(flags.query)) {
    if (flags.check_finite) check_finite(query_, io::display_name(flags.query), false, kCheckFiniteNote);
    if (!flags.key.empty()) {
        key_ = io::read_tensor(flags.key);
        if (flags.check_finite) check_finite(*key_, io::display_name(flags.key), false, kCheckFiniteNote);
    }
    if (!flags.value.empty()) {
        value_ = io::read_tensor(flags.value);
        if (flags.check_finite) check_finite(*value_, io::display_name(flags.value), false, kCheckFiniteNote);
    }
}

AttentionOptions attention_options(const AttentionFlags& flags) {
    AttentionOptions options;
    if (flags.causal_option->count() > 0) {
        options.causal = flags.causal == "bottom-right" ? Causal::BottomRight : Causal::TopLeft;
    }
    if (!flags.mask.empty()) {
        options.mask = io::read_tensor(flags.mask);
        if (flags.check_finite) check_finite(*options.mask, io::display_name(flags.mask), true, kCheckFiniteMaskNote);
    }
    if (!flags.key_padding_mask.empty()) {
        options.key_padding_mask = io::read_tensor(flags.key_padding_mask);
        if (flags.check_finite) {
            check_finite(*options.key_padding_mask, io::display_name(flags.key_padding_mask), true, kCheckFiniteMaskNote);
        }
    }
    options.key_lengths = parse_key_lengths(flags.key_lengths);
    options.precision = precision_from(flags.dtype);
    options.threads = flags.threads;
    if (!flags.no_progress) options.progress = progress_bar("attn-cli: attention");
    return options;
}

}  // namespace attn::cli
