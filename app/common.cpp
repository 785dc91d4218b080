#include "common.hpp"

#include <memory>

#include "progress.hpp"

namespace attn::cli {

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

std::vector<std::size_t> parse_key_lengths(const std::vector<long long>& values) {
    std::vector<std::size_t> lengths;
    for (long long v : values) {
        if (v < 0) {
            throw Error(ErrorKind::Usage, "--key-lengths", "expected non-negative lengths, found " + std::to_string(v));
        }
        lengths.push_back(static_cast<std::size_t>(v));
    }
    return lengths;
}

}  // namespace

void add_attention_flags(CLI::App& app, AttentionFlags& flags, const AttentionHelp& help) {
    app.add_option("-q,--query", flags.query, help.query)->required();
    app.add_option("-k,--key", flags.key, help.key);
    app.add_option("-v,--value", flags.value, help.value);
    app.add_option("-o,--output", flags.output, help.output)->capture_default_str();
    app.add_option("-s,--scores", flags.scores, help.scores);
    app.add_option("--logits", flags.logits, help.logits);
    flags.causal_option = app.add_option("--causal", flags.causal,
                                         "Causal mask: top-left (bare --causal; query i sees keys 0..i) or "
                                         "bottom-right (query i sees keys 0..i+S-L)")
                              ->expected(0, 1)
                              ->check(CLI::IsMember({"top-left", "bottom-right"}));
    app.add_option("--mask", flags.mask, help.mask);
    app.add_option("--key-padding-mask", flags.key_padding_mask, help.key_padding_mask);
    app.add_option("--key-lengths", flags.key_lengths, "Valid keys per batch item N[,N...]; later keys are ignored")
        ->delimiter(',');
    app.add_option("--dtype", flags.dtype, "Compute and output precision; auto: float64 if an input is float64")
        ->check(CLI::IsMember({"auto", "float32", "float64"}))
        ->capture_default_str();
    app.add_option("--threads", flags.threads, "Worker threads; default: all cores")->check(CLI::Range(1, 4096));
    app.add_flag("--no-progress", flags.no_progress,
                 "No progress bar (otherwise drawn on standard error, when it is a terminal, for runs over a second)");
    add_output_flags(app, flags.out);
}

AttentionInputs::AttentionInputs(const AttentionFlags& flags) : query_(io::read_tensor(flags.query)) {
    if (!flags.key.empty()) key_ = io::read_tensor(flags.key);
    if (!flags.value.empty()) value_ = io::read_tensor(flags.value);
}

AttentionOptions attention_options(const AttentionFlags& flags) {
    AttentionOptions options;
    if (flags.causal_option->count() > 0) {
        options.causal = flags.causal == "bottom-right" ? Causal::BottomRight : Causal::TopLeft;
    }
    if (!flags.mask.empty()) options.mask = io::read_tensor(flags.mask);
    if (!flags.key_padding_mask.empty()) options.key_padding_mask = io::read_tensor(flags.key_padding_mask);
    options.key_lengths = parse_key_lengths(flags.key_lengths);
    options.precision = precision_from(flags.dtype);
    options.threads = flags.threads;
    if (!flags.no_progress) options.progress = progress_bar("attn-cli: attention");
    return options;
}

}  // namespace attn::cli
