// attn-cli inspect: summaries, top-k keys and heatmaps of attention-weight dumps
// (docs/cli.md, "attn-cli inspect"). The figures and pictures come from
// attn/inspect.hpp; this file only lays them out and writes them.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include "attn/inspect.hpp"
#include "attn/png.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace attn::cli {
namespace {

struct InspectFlags {
    std::string scores;
    std::size_t top_k = 3;
    std::size_t batch = 0, head = 0, query = 0;
    bool json = false;
    std::string heatmap;
    std::string labels, query_labels, key_labels;
    bool ansi = false;
    bool check_finite = false;
    std::size_t width = 0;
    CLI::Option* batch_option = nullptr;
    CLI::Option* head_option = nullptr;
    CLI::Option* query_option = nullptr;
    CLI::Option* width_option = nullptr;
};

std::optional<std::size_t> given(const CLI::Option* option, std::size_t value) {
    if (option->count() == 0) return std::nullopt;
    return value;
}

// --width, else the terminal's width, else $COLUMNS, else 80.
std::size_t terminal_width(const InspectFlags& f) {
    if (f.width_option->count() > 0) return f.width;
    winsize size{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    if (const char* columns = std::getenv("COLUMNS")) {
        const long parsed = std::strtol(columns, nullptr, 10);
        if (parsed > 0) return static_cast<std::size_t>(parsed);
    }
    return 80;
}

std::string printf_text(const char* format, double value) {
    if (std::isnan(value)) return "-";
    char buffer[48];
    std::snprintf(buffer, sizeof buffer, format, value);
    return buffer;
}

std::string pad_left(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

std::string pad_right(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

// '"token"' for index i, padded to the longest quoted token; "" without labels. A token
// is made printable (its control bytes, an escape sequence's ESC among them, as \xNN), so
// that a labels file cannot move the cursor or recolour the terminal.
class LabelColumn {
public:
    explicit LabelColumn(const Labels& labels) {
        for (const std::string& token : labels.tokens) {
            tokens_.push_back('"' + printable(token, /*keep_utf8=*/true) + '"');
            width_ = std::max(width_, tokens_.back().size());
        }
    }
    std::string operator()(std::size_t i) const { return tokens_.empty() ? "" : " " + pad_right(tokens_[i], width_); }

private:
    std::vector<std::string> tokens_;
    std::size_t width_ = 0;
};

void print_text_report(const InspectReport& report, const std::string& subject, std::size_t top_k,
                       const Labels& query_labels, const Labels& key_labels) {
    std::ostream& out = std::cout;
    const WeightsLayout& layout = report.layout;
    out << subject << ": " << dtype_name(report.dtype) << ' ' << shape_to_string(report.shape) << " read as "
        << layout.batches << (layout.batches == 1 ? " batch x " : " batches x ") << layout.heads
        << (layout.heads == 1 ? " head" : " heads") << " of " << layout.queries << " queries x " << layout.keys
        << " keys\n\n";
    // Column widths: each header word fits over its figures.
    out << "                      row sum   ------ entropy (bits) ------       max   share   zero\n"
        << "batch  head  queries  max error    mean     min     max uniform    weight   <1e-3   rows    NaN    Inf\n";
    for (const PanelSummary& p : report.panels) {
        out << pad_left(std::to_string(p.batch), 5) << pad_left(std::to_string(p.head), 6)
            << pad_left(std::to_string(p.rows), 9) << pad_left(printf_text("%.2g", p.row_sum_error), 11)
            << pad_left(printf_text("%.3f", p.entropy_bits.mean), 8)
            << pad_left(printf_text("%.3f", p.entropy_bits.min), 8)
            << pad_left(printf_text("%.3f", p.entropy_bits.max), 8)
            << pad_left(printf_text("%.3f", p.entropy_bits.uniform), 8)
            << pad_left(printf_text("%.4g", p.max_weight), 10) << pad_left(printf_text("%.3f", p.near_zero_share), 8)
            << pad_left(std::to_string(p.zero_rows), 7) << pad_left(std::to_string(p.nan), 7)
            << pad_left(std::to_string(p.inf), 7) << '\n';
    }
    if (top_k == 0) return;
    out << "\ntop " << top_k << (top_k == 1 ? " key" : " keys") << " per query: key weight\n";
    const std::size_t query_w = std::to_string(layout.queries > 0 ? layout.queries - 1 : 0).size();
    const std::size_t key_w = std::to_string(layout.keys > 0 ? layout.keys - 1 : 0).size();
    const LabelColumn query_label(query_labels), key_label(key_labels);
    for (const PanelSummary& p : report.panels) {
        out << "batch " << p.batch << ", head " << p.head << '\n';
        for (const TopKeys& entry : p.top_k) {
            out << "  query " << pad_left(std::to_string(entry.query), query_w) << query_label(entry.query) << " ->";
            for (std::size_t i = 0; i < entry.keys.size(); ++i) {
                out << "   " << pad_left(std::to_string(entry.keys[i]), key_w) << key_label(entry.keys[i]) << ' '
                    << printf_text("%.4f", entry.weights[i]);
            }
            out << '\n';
        }
    }
}

// Digits only: CLI11 would wrap "-1" round into a huge std::size_t, and its own range
// check words the bound as 1.8e308.
CLI::Validator index_check() {
    return {[](std::string& text) -> std::string {
                if (!text.empty() && text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos) {
                    return {};
                }
                return "expected a non-negative integer, found " + attn::quoted(text);
            },
            ""};
}

bool ends_with_png(const std::string& path) {
    if (path.size() < 4) return false;
    std::string ext = path.substr(path.size() - 4);
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext == ".png";
}

void run_inspect(const InspectFlags& f) {
    if (!f.heatmap.empty() && !ends_with_png(f.heatmap))
        throw Error(ErrorKind::Usage, "--heatmap", "expected a FILE.png to write, found " + attn::quoted(f.heatmap));
    check_distinct_outputs({{"standard output", "-"}, {"--heatmap", f.heatmap}});
    const std::string subject = io::display_name(f.scores);
    const Tensor weights = read_input(f.scores, f.check_finite);
    const WeightsLayout layout = weights_layout(weights.shape(), subject);

    Labels query_labels, key_labels;
    if (!f.labels.empty()) query_labels = key_labels = read_labels(f.labels);
    if (!f.query_labels.empty()) query_labels = read_labels(f.query_labels);
    if (!f.key_labels.empty()) key_labels = read_labels(f.key_labels);
    check_labels(query_labels, layout.queries, "query");
    check_labels(key_labels, layout.keys, "key");

    // Created first, so that an unwritable path fails before the work is done.
    std::unique_ptr<io::OutputFile> heatmap_file;
    if (!f.heatmap.empty()) heatmap_file = std::make_unique<io::OutputFile>(f.heatmap);

    InspectOptions options;
    options.top_k = f.ansi ? 0 : f.top_k;
    options.batch = given(f.batch_option, f.batch);
    options.head = given(f.head_option, f.head);
    options.query = given(f.query_option, f.query);
    if (f.ansi) {  // one panel: the map stands for the table
        options.batch = options.batch.value_or(0);
        options.head = options.head.value_or(0);
    }
    const InspectReport report = inspect_weights(weights, options, subject);

    if (heatmap_file) {
        HeatmapOptions heatmap;
        heatmap.batch = options.batch.value_or(0);
        heatmap.head = options.head;
        heatmap.title = subject;
        heatmap.query_labels = query_labels;
        heatmap.key_labels = key_labels;
        encode_png(render_heatmap(weights, heatmap, subject).image, *heatmap_file);
        heatmap_file->commit();
    }

    if (f.ansi) {
        AnsiOptions ansi;
        ansi.batch = *options.batch;
        ansi.head = *options.head;
        ansi.width = terminal_width(f);
        std::cout << render_ansi(weights, ansi, subject);
    } else if (f.json) {
        io::OutputFile out("-");
        encode_inspect_json(report, out);
        out.commit();
    } else {
        print_text_report(report, subject, options.top_k, query_labels, key_labels);
    }
    flush_stdout();  // a failed write is the one error line, without the warnings
    for (const std::string& warning : report.warnings) std::cerr << "attn-cli: warning: " << warning << '\n';
}

}  // namespace

void setup_inspect(CLI::App& sub) {
    const auto flags = run_with(sub, run_inspect);
    add_file_option(sub, "SCORES", flags->scores,
                    "Weights TENSOR (..., L, S): dim -3 is the head, earlier dims the batch")
        ->type_name("TENSOR")
        ->required();
    sub.add_option("--top-k", flags->top_k, "Keys listed per query; 0: none")
        ->type_name("K")
        ->check(index_check())
        ->capture_default_str();
    flags->batch_option =
        sub.add_option("--batch", flags->batch, "Only this batch (flattened index of the dims before the head)")
            ->type_name("B")
            ->check(index_check());
    flags->head_option = sub.add_option("--head", flags->head, "Only this head")->type_name("H")->check(index_check());
    flags->query_option =
        sub.add_option("--query", flags->query, "Top-k of this query only")->type_name("I")->check(index_check());
    auto* json = sub.add_flag("--json", flags->json, "Print the report as JSON (schema in README.md)");
    add_file_option(sub, "--heatmap", flags->heatmap,
                    "Write a PNG heatmap: one panel per head of --batch (default 0), colour bar, axis ticks")
        ->type_name("FILE.png");
    auto* labels =
        add_file_option(sub, "--labels", flags->labels, "Token per line for both axes (the queries are the keys)")
            ->type_name("FILE");
    add_file_option(sub, "--query-labels", flags->query_labels, "Token per line for the query axis")
        ->type_name("FILE")
        ->excludes(labels);
    add_file_option(sub, "--key-labels", flags->key_labels, "Token per line for the key axis")
        ->type_name("FILE")
        ->excludes(labels);
    sub.add_flag("--ansi", flags->ansi, "Draw one batch/head (default 0/0) as coloured cells instead of the table")
        ->excludes(json);
    flags->width_option = sub.add_option("--width", flags->width, "Columns for --ansi; default: the terminal's")
                              ->type_name("N")
                              ->check(integer_in(8, 100000));
    add_check_finite_flag(sub, flags->check_finite,
                          "Refuse weights holding NaN or an infinity (without it they are counted per head)");
}

}  // namespace attn::cli
