// The pieces common.hpp declares: the validators with their messages, the enum flags, the
// flags several subcommands share, reading TENSOR arguments and OutputSet.
#include "common.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "errors.hpp"
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

// The comma-separated elements of `text`, empty ones included ("4,,4" has three).
std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> elements;
    std::size_t start = 0;
    for (std::size_t comma = text.find(','); comma != std::string::npos; comma = text.find(',', start)) {
        elements.push_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    elements.push_back(text.substr(start));
    return elements;
}

// A list of non-negative integers N[,N...], or why not ("" when it is one).
std::string check_integer_list(const std::string& text) {
    for (const std::string& element : split_list(text)) {
        if (element.empty()) {
            return "expected N[,N...], non-negative integers, found " + attn::quoted(text) + " (an empty element)";
        }
        const auto value = parse_integer(element);
        if (!value || *value < 0) return "expected a non-negative integer, found " + attn::quoted(element);
    }
    return {};
}

}  // namespace

CLI::Option* add_integer_list_option(CLI::App& app, const std::string& name, std::vector<long long>& values,
                                     const std::string& help) {
    return app
        .add_option_function<std::string>(
            name,
            [&values](const std::string& text) {
                values.clear();
                for (const std::string& element : split_list(text)) values.push_back(*parse_integer(element));
            },
            help)
        ->check(validator("", check_integer_list))
        ->type_name("N[,N...]");
}

CLI::Validator positive_integer() {
    return validator("", [](std::string& text) -> std::string {
        const auto value = parse_integer(text);
        if (value && *value > 0) return {};
        return "expected a positive integer, found " + attn::quoted(text);
    });
}

CLI::Validator integer_in(long long low, long long high) {
    return validator("[" + std::to_string(low) + " - " + std::to_string(high) + "]",
                     [low, high](std::string& text) -> std::string {
                         const auto value = parse_integer(text);
                         if (value && *value >= low && *value <= high) return {};
                         return "expected an integer from " + std::to_string(low) + " to " + std::to_string(high) +
                                ", found " + attn::quoted(text);
                     });
}

namespace {

// Whether `text` is a decimal number: an optional sign, digits with an optional point,
// an optional exponent; no spaces, hexadecimal, inf or nan (strtod would take them all).
bool is_decimal(const std::string& text) {
    std::size_t i = text.empty() || (text[0] != '+' && text[0] != '-') ? 0 : 1;
    const auto digits = [&] {
        const std::size_t from = i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
        return i - from;
    };
    std::size_t mantissa = digits();
    if (i < text.size() && text[i] == '.') {
        ++i;
        mantissa += digits();
    }
    if (mantissa == 0) return false;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
        if (digits() == 0) return false;
    }
    return i == text.size();
}

// The range a double holds, as the refusals word it.
const std::string kDoubleRange = "4.9e-324 to 1.8e+308";

// A decimal `text` as a double, or why not: "" on success, else a message. A number whose
// magnitude a double cannot hold is out of range, whether it would round to infinity or,
// not being zero, to 0 (strtod's ERANGE also flags subnormals, which are taken).
std::string parse_decimal(const std::string& text, double& value, const std::string& syntax_error,
                          const std::string& range) {
    if (!is_decimal(text)) return syntax_error;
    value = std::strtod(text.c_str(), nullptr);
    const std::size_t exponent = text.find_first_of("eE");
    const bool zero = text.substr(0, exponent).find_first_of("123456789") == std::string::npos;
    if (std::isinf(value) || (value == 0 && !zero)) return text + " is out of range: expected " + range;
    return {};
}

}  // namespace

CLI::Validator finite_number() {
    return validator("", [](std::string& text) -> std::string {
        double value = 0;
        return parse_decimal(
            text, value,
            "expected a finite number, found " + attn::quoted(text) + " (decimal: no spaces, hex, inf or nan)",
            "0 or a magnitude from " + kDoubleRange + " (a double)");
    });
}

CLI::Validator positive_number() {
    return validator("", [](std::string& text) -> std::string {
        double value = 0;
        const std::string syntax_error = "expected a finite number > 0, found " + attn::quoted(text);
        std::string error = parse_decimal(text, value, syntax_error, "a number from " + kDoubleRange + " (a double)");
        if (error.empty() && value <= 0) error = syntax_error;
        return error;
    });
}

namespace {

// "LEFT,RIGHT" as two integers >= -1, or nullopt.
std::optional<Window> parse_window(const std::string& text) {
    const std::vector<std::string> bounds = split_list(text);
    if (bounds.size() != 2) return std::nullopt;
    const auto left = parse_integer(bounds[0]);
    const auto right = parse_integer(bounds[1]);
    if (!left || !right || *left < -1 || *right < -1) return std::nullopt;
    return Window{*left, *right};
}

}  // namespace

CLI::Validator window_bounds() {
    return validator("", [](std::string& text) -> std::string {
        if (parse_window(text)) return {};
        return "expected LEFT,RIGHT, two integers >= -1 (-1: unbounded on that side), found " + attn::quoted(text);
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
               "found " +
               attn::quoted(text);
    });
}

CLI::Validator file_name() {
    return validator("", [](std::string& text) -> std::string {
        if (!text.empty()) return {};
        return "expected a file name, or - for standard input or output, found ''";
    });
}

CLI::Validator names_to_numbers(const std::vector<std::pair<std::string, long long>>& names) {
    std::string listed;
    for (const auto& [name, number] : names) listed += (listed.empty() ? "{" : ",") + name;
    listed += "}";
    return validator(listed, [names, listed](std::string& text) -> std::string {
        for (const auto& [name, number] : names) {
            if (text != name) continue;
            text = std::to_string(number);
            return {};
        }
        return text + " not in " + listed;
    });
}

EnumNames<DType> dtype_names(const std::vector<DType>& dtypes) {
    EnumNames<DType> names;
    for (DType dtype : dtypes) names.emplace_back(dtype_name(dtype), dtype);
    return names;
}

CLI::Option* add_file_option(CLI::App& app, const std::string& name, std::string& path, const std::string& help) {
    return app.add_option(name, path, help)->check(file_name());
}

CLI::Option* add_output_option(CLI::App& app, std::string& path, const std::string& help) {
    return add_file_option(app, "-o,--output", path, help)->capture_default_str();
}

CLI::Option* add_seed_option(CLI::App& app, std::uint64_t& seed, const std::string& help) {
    return app.add_option("--seed", seed, help)->check(seed_value());
}

void add_check_finite_flag(CLI::App& app, bool& check_finite, const std::string& help) {
    app.add_flag("--check-finite", check_finite, help);
}

void add_output_flags(CLI::App& app, io::WriteOptions& options) {
    add_enum_option(app, "--format", options.format, {{"json", io::Format::Json}, {"npy", io::Format::Npy}},
                    "Format of every OUT, whatever its name (needed for '-': default json)");
    add_enum_option(app, "--json-layout", options.json_layout,
                    {{"object", io::JsonLayout::Object}, {"nested", io::JsonLayout::Nested}},
                    "JSON OUT layout: object ({shape, dtype, data}) or nested (bare arrays)");
}

struct OutputSet::Output {
    std::string path;
    const Tensor* tensor = nullptr;            // given whole
    std::optional<TensorScoreSink> collected;  // scores held until commit
    std::unique_ptr<io::OutputFile> file;      // the staged file (none for "-" until commit)
    std::optional<StreamingScoreWriter> stream;
};

OutputSet::OutputSet(const io::WriteOptions& options) : options_(options) {}

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

void check_distinct_outputs(const NamedOutputs& outputs) {
    for (std::size_t later = 1; later < outputs.size(); ++later) {
        const auto& [flag, path] = outputs[later];
        if (path.empty()) continue;
        for (std::size_t earlier = 0; earlier < later; ++earlier) {
            const auto& [earlier_flag, earlier_path] = outputs[earlier];
            if (earlier_path.empty() || (path == "-" && earlier_path == "-")) continue;
            if (io::same_output_file(earlier_path, path)) {
                throw Error(ErrorKind::Usage, flag,
                            "names the same file as " + earlier_flag + "; each output needs a file of its own");
            }
        }
    }
}

// std::cout's buffer while a StdoutText lives: text is kept until there is enough of it to
// write, or flush_stdout(); the first failure is kept and everything after it dropped.
class StdoutText::Buffer final : public std::streambuf {
public:
    // Written in pieces of this size, so that a long table reaches a pipe as it is made.
    static constexpr std::size_t kPiece = std::size_t(64) << 10;

    // Writes what is pending; throws the first failure, now or earlier.
    void flush() {
        if (!error_ && !pending_.empty()) {
            try {
                io::OutputFile out("-");
                out.write(pending_);
                out.commit();
            } catch (const Error& e) {
                error_.emplace(e);
            }
        }
        pending_.clear();
        if (error_) throw Error(*error_);
    }

protected:
    int_type overflow(int_type ch) override {
        if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
        pending_.push_back(traits_type::to_char_type(ch));
        return written() ? ch : traits_type::eof();
    }
    std::streamsize xsputn(const char* text, std::streamsize size) override {
        pending_.append(text, static_cast<std::size_t>(size));
        return written() ? size : 0;
    }
    int sync() override { return flushed() ? 0 : -1; }

private:
    // False once a write has failed, which sets std::cout's badbit.
    bool written() { return pending_.size() < kPiece || flushed(); }
    bool flushed() {
        try {
            flush();
            return true;
        } catch (const Error&) {
            return false;
        }
    }

    std::string pending_;
    std::optional<Error> error_;
};

namespace {
StdoutText::Buffer* active_stdout_buffer = nullptr;
}  // namespace

StdoutText::StdoutText() : buffer_(std::make_unique<Buffer>()), previous_(std::cout.rdbuf(buffer_.get())) {
    active_stdout_buffer = buffer_.get();
}

StdoutText::~StdoutText() {
    std::cout.rdbuf(previous_);
    active_stdout_buffer = nullptr;
}

void flush_stdout() {
    if (active_stdout_buffer) {
        active_stdout_buffer->flush();
    } else {
        std::cout.flush();
    }
}

bool widen_bfloat16_for_numpy(const std::vector<Tensor*>& tensors, io::Format format) {
    if (format != io::Format::Npy && format != io::Format::Npz) return false;
    bool widened = false;
    for (Tensor* t : tensors) {
        if (t->dtype() != DType::BFloat16) continue;
        *t = std::move(*t).to(DType::Float32);
        widened = true;
    }
    return widened;
}

void print_note(const std::string& subject, const std::string& what) {
    std::cerr << "attn-cli: note: " << subject << ": " << what << '\n';
}

void write_outputs(const std::vector<std::pair<std::string, const Tensor*>>& outputs, const io::WriteOptions& options) {
    OutputSet set(options);
    for (const auto& [path, tensor] : outputs) set.add(path, *tensor);
    set.commit();
}

namespace {

const EnumNames<Causal> kCausalNames = {{"top-left", Causal::TopLeft}, {"bottom-right", Causal::BottomRight}};
const EnumNames<Precision> kPrecisionNames = {
    {"auto", Precision::Auto}, {"float32", Precision::Float32}, {"float64", Precision::Float64}};

// Non-negative: the flag's validator refused anything else.
std::vector<std::size_t> parse_key_lengths(const std::vector<long long>& values) {
    return std::vector<std::size_t>(values.begin(), values.end());
}

}  // namespace

// The variants and the log-sum-exp, shared by sdpa and mha (where they act per head).
void add_variant_flags(CLI::App& app, AttentionFlags& flags) {
    app.add_option("--window", flags.window,
                   "Sliding window LEFT,RIGHT: query i (at p = i+S-L) sees keys p-LEFT..p+RIGHT; -1 = unbounded "
                   "(Mistral: 4095,0)")
        ->check(window_bounds());
    flags.softcap_option = app.add_option("--softcap", flags.softcap,
                                          "Logit soft-cap C: s = C*tanh(s/C), before ALiBi and masks (Gemma 2: 50)")
                               ->check(positive_number());
    CLI::Option* alibi =
        app.add_flag("--alibi", flags.alibi, "ALiBi position biases, with the paper's slopes per head");
    add_file_option(app, "--alibi-slopes", flags.alibi_slopes, "ALiBi with these slopes: TENSOR (H,) or (batch..., H)")
        ->excludes(alibi);
    add_file_option(app, "--sinks", flags.sinks,
                    "Attention sinks: TENSOR (H,), one logit per head added to each softmax's denominator");
    add_file_option(app, "--lse", flags.lse, "OUT for the log-sum-exp of each row's logits (..., L)");
}

void add_attention_flags(CLI::App& app, AttentionFlags& flags, const AttentionHelp& help) {
    add_file_option(app, "-q,--query", flags.query, help.query)->required();
    add_file_option(app, "-k,--key", flags.key, help.key);
    add_file_option(app, "-v,--value", flags.value, help.value);
    add_output_option(app, flags.output, help.output);
    add_file_option(app, "-s,--scores", flags.scores, help.scores);
    add_file_option(app, "--logits", flags.logits, help.logits);
    // A bare --causal reaches CLI11's conversion as "", which it reads as the enum's zero.
    add_enum_option_function(
        app, "--causal", kCausalNames,
        [&flags](const Causal& given) { flags.causal = given == Causal::None ? Causal::TopLeft : given; },
        "Causal mask: top-left (bare --causal; query i sees keys 0..i) or bottom-right (query i sees keys 0..i+S-L)")
        ->expected(0, 1);
    add_file_option(app, "--mask", flags.mask, help.mask);
    add_file_option(app, "--key-padding-mask", flags.key_padding_mask, help.key_padding_mask);
    add_integer_list_option(app, "--key-lengths", flags.key_lengths,
                            "Valid keys per batch item N[,N...]; later keys are ignored");
    add_enum_option(app, "--dtype", flags.precision, kPrecisionNames,
                    "Compute and output precision; auto: float64 if an input is float64");
    app.add_option("--threads", flags.threads, "Worker threads; default: all cores")->check(integer_in(1, 4096));
    app.add_flag("--no-progress", flags.no_progress,
                 "No progress bar (otherwise drawn on standard error, when it is a terminal, for runs over a second)");
    app.add_flag("--timings", flags.timings,
                 "Print the seconds spent reading, computing and writing, one line on standard error");
    add_check_finite_flag(
        app, flags.check_finite,
        "Refuse NaN and infinities in the inputs (-inf is allowed in a float mask, where it means masked)");
    add_variant_flags(app, flags);
    add_output_flags(app, flags.out);
}

NamedOutputs attention_outputs(const AttentionFlags& flags) {
    return {{std::string(flag_for(Arg::Output)), flags.output},
            {std::string(flag_for(Arg::Weights)), flags.scores},
            {std::string(flag_for(Arg::Logits)), flags.logits},
            {std::string(flag_for(Arg::Lse)), flags.lse}};
}

Tensor read_input(const std::string& spec, bool check_finite, std::optional<DType> compute_dtype) {
    Tensor tensor = io::read_tensor(spec);
    if (check_finite) attn::check_finite(tensor, io::display_name(spec), false, kCheckFiniteNote, compute_dtype);
    return tensor;
}

Tensor read_mask(const std::string& spec, bool check_finite, std::optional<DType> compute_dtype) {
    Tensor tensor = io::read_tensor(spec);
    if (check_finite) attn::check_finite(tensor, io::display_name(spec), true, kCheckFiniteMaskNote, compute_dtype);
    return tensor;
}

std::optional<DType> compute_dtype(const AttentionFlags& flags) {
    switch (flags.precision) {
        case Precision::Float32: return DType::Float32;
        case Precision::Float64: return DType::Float64;
        case Precision::Auto: break;
    }
    return std::nullopt;
}

AttentionInputs::AttentionInputs(const AttentionFlags& flags)
    : query_(read_input(flags.query, flags.check_finite, compute_dtype(flags))) {
    if (!flags.key.empty()) key_ = read_input(flags.key, flags.check_finite, compute_dtype(flags));
    if (!flags.value.empty()) value_ = read_input(flags.value, flags.check_finite, compute_dtype(flags));
}

AttentionOptions attention_options(const AttentionFlags& flags) {
    AttentionOptions options;
    options.causal = flags.causal;
    if (!flags.mask.empty()) options.mask = read_mask(flags.mask, flags.check_finite, compute_dtype(flags));
    if (!flags.key_padding_mask.empty()) {
        options.key_padding_mask = read_mask(flags.key_padding_mask, flags.check_finite, compute_dtype(flags));
    }
    options.key_lengths = parse_key_lengths(flags.key_lengths);
    if (!flags.window.empty()) options.window = parse_window(flags.window);
    if (flags.softcap_option->count() > 0) options.softcap = flags.softcap;
    options.alibi = flags.alibi;
    if (!flags.alibi_slopes.empty()) {
        options.alibi_slopes = read_input(flags.alibi_slopes, flags.check_finite, compute_dtype(flags));
    }
    if (!flags.sinks.empty()) options.sinks = read_input(flags.sinks, flags.check_finite, compute_dtype(flags));
    options.precision = flags.precision;
    options.threads = flags.threads;
    if (!flags.no_progress) options.progress = progress_bar("attn-cli: attention");
    return options;
}

}  // namespace attn::cli
