// Summaries of attention-weight dumps: one pass over the chosen panels, in row blocks
// spread over OpenMP threads, each row reduced in float64 (sum, sum of p*log2 p, top-k)
// and the blocks merged in order, so the figures do not depend on the thread count.
#include "attn/inspect.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <utility>

#include "attn/io.hpp"
#include "common/text.hpp"
#include "inspect/weights_panels.hpp"

namespace attn {

WeightsLayout weights_layout(const Shape& shape, const std::string& subject) {
    if (shape.size() < 2) {
        throw Error(ErrorKind::Shape, subject,
                    "expected attention weights of shape (..., L, S) with rank >= 2, found " + shape_to_string(shape));
    }
    WeightsLayout layout;
    layout.queries = shape[shape.size() - 2];
    layout.keys = shape[shape.size() - 1];
    if (shape.size() >= 3) layout.heads = shape[shape.size() - 3];
    for (std::size_t d = 0; d + 3 < shape.size(); ++d) layout.batches *= shape[d];
    return layout;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Rows per task: large enough to amortise the scheduling, small enough that one big
// panel (a rank-2 dump) still spreads over every thread.
constexpr std::size_t kRowsPerTask = 64;

// What one block of rows of one panel contributes; merged in block order.
struct BlockTotals {
    double entropy_sum = 0;
    std::size_t entropy_rows = 0;
    double entropy_min = std::numeric_limits<double>::infinity();
    double entropy_max = -std::numeric_limits<double>::infinity();
    double row_sum_error = -1;  // below any real error, so the first counting row sets it
    std::size_t worst_query = 0;
    std::size_t unnormalised_rows = 0;
    std::size_t zero_rows = 0;
    double max_weight = -std::numeric_limits<double>::infinity();
    std::size_t near_zero = 0;
    std::size_t nan = 0;
    std::size_t inf = 0;
    bool has_negative = false;
    std::size_t negative_offset = 0;  // in the panel
    double negative_value = 0;
};

struct Task {
    std::size_t panel_slot;  // index into the report's panels
    std::size_t first_row;
    std::size_t end_row;
};

// The k largest finite weights of a row as (weight, key), largest first, ties by lower key.
class TopKeysBuffer {
public:
    explicit TopKeysBuffer(std::size_t k) : k_(k) { best_.reserve(k); }
    void clear() { best_.clear(); }
    // Keys arrive in increasing order, so an equal weight never displaces an earlier key.
    void offer(double weight, std::size_t key) {
        if (best_.size() == k_ && !(weight > best_.back().first)) return;
        auto at = std::find_if(best_.begin(), best_.end(), [&](const auto& e) { return e.first < weight; });
        if (best_.size() == k_) best_.pop_back();
        best_.insert(at, {weight, key});
    }
    void store(TopKeys& out) const {
        out.keys.clear();
        out.weights.clear();
        for (const auto& [weight, key] : best_) {
            out.keys.push_back(key);
            out.weights.push_back(weight);
        }
    }
    bool accepts(double weight) const { return best_.size() < k_ || weight > best_.back().first; }

private:
    std::size_t k_;
    std::vector<std::pair<double, std::size_t>> best_;
};

template <class T>
void scan_block(const T* panel, const WeightsLayout& layout, const Task& task, const InspectOptions& options,
                std::vector<TopKeys>* top_k, BlockTotals& totals) {
    const std::size_t keys = layout.keys;
    const double near_zero = options.near_zero;
    TopKeysBuffer best(std::min(options.top_k, keys));
    for (std::size_t q = task.first_row; q < task.end_row; ++q) {
        const T* row = panel + q * keys;
        const bool want_top = options.top_k > 0 && keys > 0 && (!options.query || *options.query == q);
        best.clear();
        double sum = 0;
        double sum_plogp = 0;
        std::size_t nan = 0;
        std::size_t inf = 0;
        double row_max = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < keys; ++j) {
            const T value = row[j];
            if (!(value >= T(0))) {  // NaN or negative, both rare: one test on the common path
                if (std::isnan(value)) {
                    ++nan;
                    continue;
                }
                totals.has_negative = true;
                totals.negative_offset = q * keys + j;
                totals.negative_value = static_cast<double>(value);
                return;  // the run fails; the rest of the block does not matter
            }
            if (std::isinf(value)) {
                ++inf;
                continue;
            }
            const double x = value;
            sum += x;
            // log2 in T's own precision: log2f for float32, whose ~1e-7 relative error is far
            // below the digits shown.
            if (value > T(0)) sum_plogp += x * static_cast<double>(std::log2(value));
            if (x < near_zero) ++totals.near_zero;
            row_max = std::max(row_max, x);
            if (want_top && best.accepts(x)) best.offer(x, j);
        }
        totals.nan += nan;
        totals.inf += inf;
        totals.max_weight = std::max(totals.max_weight, row_max);
        if (want_top) {
            TopKeys& entry = (*top_k)[options.query ? 0 : q];
            entry.query = q;
            best.store(entry);
        }
        if (nan > 0 || inf > 0) continue;  // no meaningful sum or entropy
        if (sum == 0) {
            ++totals.zero_rows;
            continue;
        }
        const double error = std::abs(sum - 1);
        if (error > totals.row_sum_error) {
            totals.row_sum_error = error;
            totals.worst_query = q;
        }
        if (error > options.row_sum_tolerance) ++totals.unnormalised_rows;
        // Entropy of the row scaled to sum 1: -sum (p/s) log2 (p/s) = log2 s - sum(p log2 p)/s.
        const double entropy = std::max(0.0, std::log2(sum) - sum_plogp / sum);
        totals.entropy_sum += entropy;
        ++totals.entropy_rows;
        totals.entropy_min = std::min(totals.entropy_min, entropy);
        totals.entropy_max = std::max(totals.entropy_max, entropy);
    }
}

void merge_into(BlockTotals& running, const BlockTotals& block) {
    running.entropy_sum += block.entropy_sum;
    running.entropy_rows += block.entropy_rows;
    running.entropy_min = std::min(running.entropy_min, block.entropy_min);
    running.entropy_max = std::max(running.entropy_max, block.entropy_max);
    if (block.row_sum_error > running.row_sum_error) {
        running.row_sum_error = block.row_sum_error;
        running.worst_query = block.worst_query;
    }
    running.unnormalised_rows += block.unnormalised_rows;
    running.zero_rows += block.zero_rows;
    running.max_weight = std::max(running.max_weight, block.max_weight);
    running.near_zero += block.near_zero;
    running.nan += block.nan;
    running.inf += block.inf;
}

void finish_panel(PanelSummary& panel, const BlockTotals& totals) {
    // No row to count (all NaN, Inf or zeros, or none at all): no figure, not 0.
    if (totals.row_sum_error >= 0) {
        panel.row_sum_error = totals.row_sum_error;
        panel.worst_query = totals.worst_query;
    } else {
        panel.row_sum_error = kNaN;
        panel.worst_query.reset();
    }
    panel.unnormalised_rows = totals.unnormalised_rows;
    panel.zero_rows = totals.zero_rows;
    if (totals.entropy_rows > 0) {
        panel.entropy_bits.mean = totals.entropy_sum / static_cast<double>(totals.entropy_rows);
        panel.entropy_bits.min = totals.entropy_min;
        panel.entropy_bits.max = totals.entropy_max;
    } else {
        panel.entropy_bits.mean = panel.entropy_bits.min = panel.entropy_bits.max = kNaN;
    }
    panel.entropy_bits.uniform = panel.keys > 0 ? std::log2(static_cast<double>(panel.keys)) : kNaN;
    panel.max_weight = std::isfinite(totals.max_weight) ? totals.max_weight : kNaN;
    const std::size_t cells = panel.rows * panel.keys;
    panel.near_zero_share = cells > 0 ? static_cast<double>(totals.near_zero) / static_cast<double>(cells) : kNaN;
    panel.nan = totals.nan;
    panel.inf = totals.inf;
}

void add_warnings(InspectReport& report, const InspectOptions& options, const std::string& subject) {
    std::size_t unnormalised = 0, counted_rows = 0, nan = 0, inf = 0;
    const PanelSummary* worst = nullptr;
    for (const PanelSummary& panel : report.panels) {
        unnormalised += panel.unnormalised_rows;
        counted_rows += panel.rows;
        nan += panel.nan;
        inf += panel.inf;
        if (panel.unnormalised_rows > 0 && (worst == nullptr || panel.row_sum_error > worst->row_sum_error))
            worst = &panel;
    }
    if (worst != nullptr) {
        report.warnings.push_back(
            subject + ": " + std::to_string(unnormalised) + " of " + std::to_string(counted_rows) +
            " rows do not sum to 1 (largest |sum - 1| = " + detail::format_number(worst->row_sum_error) + " at batch " +
            std::to_string(worst->batch) + ", head " + std::to_string(worst->head) + ", query " +
            std::to_string(worst->worst_query.value_or(0)) + "; tolerance " +
            detail::format_number(options.row_sum_tolerance) + ")");
    }
    if (nan > 0 || inf > 0) {
        report.warnings.push_back(subject + ": " + std::to_string(nan) + " NaN and " + std::to_string(inf) +
                                  " Inf weights; their rows are left out of the row sums and entropies");
    }
}

// One summary per chosen panel, batch-major, with a top-k slot per query it will list.
std::vector<PanelSummary> chosen_panels(const WeightsLayout& layout, const InspectOptions& options) {
    std::vector<PanelSummary> panels;
    for (std::size_t b = 0; b < layout.batches; ++b) {
        if (options.batch && *options.batch != b) continue;
        for (std::size_t h = 0; h < layout.heads; ++h) {
            if (options.head && *options.head != h) continue;
            PanelSummary panel;
            panel.batch = b;
            panel.head = h;
            panel.rows = layout.queries;
            panel.keys = layout.keys;
            if (options.top_k > 0 && layout.keys > 0) panel.top_k.resize(options.query ? 1 : layout.queries);
            panels.push_back(std::move(panel));
        }
    }
    return panels;
}

// The blocks of kRowsPerTask rows of every panel, in memory order.
std::vector<Task> row_blocks(std::size_t panel_count, std::size_t queries) {
    std::vector<Task> tasks;
    for (std::size_t slot = 0; slot < panel_count; ++slot) {
        for (std::size_t first = 0; first < queries; first += kRowsPerTask) {
            tasks.push_back({slot, first, std::min(first + kRowsPerTask, queries)});
        }
    }
    return tasks;
}

// Tasks are in memory order, so the first one with a negative weight holds the first.
void throw_first_negative(const InspectReport& report, const std::vector<Task>& tasks,
                          const std::vector<BlockTotals>& blocks, const std::string& subject) {
    const WeightsLayout& layout = report.layout;
    for (std::size_t t = 0; t < tasks.size(); ++t) {
        if (!blocks[t].has_negative) continue;
        const PanelSummary& panel = report.panels[tasks[t].panel_slot];
        const std::size_t offset = detail::panel_offset(layout, panel.batch, panel.head) + blocks[t].negative_offset;
        throw Error(ErrorKind::Value, subject,
                    "negative weight " + detail::format_number(blocks[t].negative_value, 6) + " at " +
                        detail::position_string(report.shape, offset) + " (batch " + std::to_string(panel.batch) +
                        ", head " + std::to_string(panel.head) + ", query " +
                        std::to_string(blocks[t].negative_offset / layout.keys) + ", key " +
                        std::to_string(blocks[t].negative_offset % layout.keys) +
                        "); attention weights are >= 0 (logits passed as weights?)");
    }
}

// Each panel's blocks merged in row order, so the figures do not depend on the threads.
void finish_panels(InspectReport& report, const std::vector<Task>& tasks, const std::vector<BlockTotals>& blocks) {
    std::size_t t = 0;
    for (std::size_t slot = 0; slot < report.panels.size(); ++slot) {
        BlockTotals running;
        for (; t < tasks.size() && tasks[t].panel_slot == slot; ++t) merge_into(running, blocks[t]);
        finish_panel(report.panels[slot], running);
    }
}

}  // namespace

InspectReport inspect_weights(const Tensor& weights, const InspectOptions& options, const std::string& subject) {
    InspectReport report;
    report.shape = weights.shape();
    report.dtype = weights.dtype();
    report.layout = weights_layout(report.shape, subject);
    const WeightsLayout& layout = report.layout;
    if (options.batch) detail::check_index(*options.batch, layout.batches, Arg::Batch, "batches");
    if (options.head) detail::check_index(*options.head, layout.heads, Arg::Head, "heads");
    if (options.query) detail::check_index(*options.query, layout.queries, Arg::QueryIndex, "queries");

    report.panels = chosen_panels(layout, options);
    const std::vector<Task> tasks = row_blocks(report.panels.size(), layout.queries);
    std::vector<BlockTotals> blocks(tasks.size());
    detail::parallel_over_weights(weights, tasks.size(), 4, [&](std::size_t t, const auto* values) {
        const Task& task = tasks[t];
        PanelSummary& panel = report.panels[task.panel_slot];
        scan_block(values + detail::panel_offset(layout, panel.batch, panel.head), layout, task, options, &panel.top_k,
                   blocks[t]);
    });
    throw_first_negative(report, tasks, blocks, subject);
    finish_panels(report, tasks, blocks);
    add_warnings(report, options, subject);
    return report;
}

// ---- JSON ---------------------------------------------------------------------------

namespace {

void append_json_string(std::string& out, const std::string& text) { out += detail::json_quote(text); }

// Shortest round-trip text; JSON has no NaN or infinity, so they are null.
void append_json_number(std::string& out, double value) {
    if (!std::isfinite(value)) {
        out += "null";
        return;
    }
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, result.ptr);
}

void append_json_count(std::string& out, std::size_t value) { out += std::to_string(value); }

void append_json_optional_count(std::string& out, const std::optional<std::size_t>& value) {
    if (value) {
        append_json_count(out, *value);
    } else {
        out += "null";
    }
}

template <class T, class F>
void append_json_array(std::string& out, const std::vector<T>& values, F&& append_one) {
    out += '[';
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ", ";
        append_one(out, values[i]);
    }
    out += ']';
}

// `"name": ` after `separator`: member names are plain ASCII, no escaping needed.
void append_json_key(std::string& out, const char* separator, const char* name) {
    out += separator;
    out += '"';
    out += name;
    out += "\": ";
}

// `"name": value` for each member, the first after `separator` ("{" to open an object),
// the others after ", ".
template <class T, class F>
void append_json_members(std::string& out, const char* separator,
                         std::initializer_list<std::pair<const char*, T>> members, F&& append_value) {
    for (const auto& [name, value] : members) {
        append_json_key(out, separator, name);
        append_value(out, value);
        separator = ", ";
    }
}

// An array of objects, each on a line of its own after `indent`; append_object writes one
// from its "{" to its "}".
template <class T, class F>
void append_json_object_lines(std::string& out, const std::vector<T>& items, const char* indent, F&& append_object) {
    out += '[';
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += i > 0 ? ",\n" : "\n";
        out += indent;
        append_object(out, items[i]);
    }
    out += ']';
}

// Everything before the panels: the tensor and how it splits into panels.
void append_report_header(std::string& out, const InspectReport& report) {
    append_json_key(out, "{", "shape");
    append_json_array(out, report.shape, append_json_count);
    append_json_key(out, ", ", "dtype");
    append_json_string(out, std::string(dtype_name(report.dtype)));
    append_json_key(out, ", ", "layout");
    append_json_members<std::size_t>(out, "{",
                                     {{"batches", report.layout.batches},
                                      {"heads", report.layout.heads},
                                      {"queries", report.layout.queries},
                                      {"keys", report.layout.keys}},
                                     append_json_count);
    append_json_key(out, "},\n ", "panels");
}

void append_top_keys(std::string& out, const TopKeys& entry) {
    append_json_key(out, "{", "query");
    append_json_count(out, entry.query);
    append_json_key(out, ", ", "keys");
    append_json_array(out, entry.keys, append_json_count);
    append_json_key(out, ", ", "weights");
    append_json_array(out, entry.weights, append_json_number);
    out += '}';
}

void append_panel(std::string& out, const PanelSummary& panel) {
    append_json_members<std::size_t>(
        out, "{", {{"batch", panel.batch}, {"head", panel.head}, {"rows", panel.rows}, {"keys", panel.keys}},
        append_json_count);
    append_json_key(out, ", ", "row_sum_error");
    append_json_number(out, panel.row_sum_error);
    append_json_key(out, ", ", "worst_query");
    append_json_optional_count(out, panel.worst_query);
    append_json_members<std::size_t>(
        out, ", ", {{"unnormalised_rows", panel.unnormalised_rows}, {"zero_rows", panel.zero_rows}}, append_json_count);
    append_json_key(out, ", ", "entropy_bits");
    append_json_members<double>(out, "{",
                                {{"mean", panel.entropy_bits.mean},
                                 {"min", panel.entropy_bits.min},
                                 {"max", panel.entropy_bits.max},
                                 {"uniform", panel.entropy_bits.uniform}},
                                append_json_number);
    append_json_members<double>(
        out, "}, ", {{"max_weight", panel.max_weight}, {"near_zero_share", panel.near_zero_share}}, append_json_number);
    append_json_members<std::size_t>(out, ", ", {{"nan", panel.nan}, {"inf", panel.inf}}, append_json_count);
    append_json_key(out, ", ", "top_k");
    append_json_object_lines(out, panel.top_k, "    ", append_top_keys);
    out += '}';
}

}  // namespace

void encode_inspect_json(const InspectReport& report, io::ByteSink& sink) {
    std::string out;
    append_report_header(out, report);
    append_json_object_lines(out, report.panels, "  ", [&](std::string& text, const PanelSummary& panel) {
        append_panel(text, panel);
        // Flushed per panel: a 2x8x2048 report with top-k is megabytes of text.
        sink.write(text);
        text.clear();
    });
    append_json_key(out, ",\n ", "warnings");
    append_json_array(out, report.warnings, append_json_string);
    out += "}\n";
    sink.write(out);
}

// ---- labels -------------------------------------------------------------------------

Labels read_labels(const std::string& path) {
    Labels labels;
    labels.source = io::display_name(path);
    const std::string text = io::read_file(path, "a labels file (one token per line)");
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string token = text.substr(start, end - start);
        if (!token.empty() && token.back() == '\r') token.pop_back();
        labels.tokens.push_back(std::move(token));
        start = end + 1;
    }
    return labels;
}

void check_labels(const Labels& labels, std::size_t expected, const std::string& axis) {
    if (labels.tokens.empty() && labels.source.empty()) return;
    if (labels.tokens.size() == expected) return;
    const std::string plural = axis == "query" ? "queries" : axis + "s";
    throw Error(ErrorKind::Value, labels.source,
                "expected " + std::to_string(expected) + " labels, one per " + axis + " (the weights have " +
                    std::to_string(expected) + " " + (expected == 1 ? axis : plural) + "), found " +
                    std::to_string(labels.tokens.size()) + " lines");
}

}  // namespace attn
