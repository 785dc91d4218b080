// attn/inspect.hpp - summaries, top-k keys and pictures of attention-weight dumps
// (docs/cli.md, "attn-cli inspect").
//
// A weights tensor (..., L, S) is read as panels of L queries x S keys: dim -3 is the
// head and the dims before it, flattened row-major, are the batch. So (L, S) is one
// panel, (N, L, S) is N heads of one batch (an averaged or single-head dump shows its
// batch items as heads), and (B1, B2, H, L, S) has B1*B2 batches.
//
// inspect_weights reads every element of the chosen panels once, accumulating in
// float64. Negative weights (including -inf) are an error (ErrorKind::Value, naming the
// first position); NaN and +inf are counted, and rows holding them are left out of the
// row sums and entropies. Rows of zeros are what a query that may attend no key gets
// (PyTorch >= 2.5): they are counted and left out too. Rows whose sum is off 1 by more
// than the tolerance do not fail: the report carries a warning, the caller shows it.
//
// render_heatmap and render_ansi draw a panel grid with the viridis colour map; they
// downsample large L or S by averaging blocks and never crop. Nothing here prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attn/io.hpp"
#include "attn/png.hpp"
#include "attn/tensor.hpp"

namespace attn {

// How a weights tensor splits into panels.
struct WeightsLayout {
    std::size_t batches = 1;  // product of the dims before -3
    std::size_t heads = 1;    // dim -3, or 1 for a rank-2 tensor
    std::size_t queries = 0;  // L, dim -2
    std::size_t keys = 0;     // S, dim -1
    std::size_t panels() const noexcept { return batches * heads; }
};

// The layout of `shape`; throws ErrorKind::Shape naming `subject` when the rank is below 2.
WeightsLayout weights_layout(const Shape& shape, const std::string& subject);

struct InspectOptions {
    std::size_t top_k = 3;             // keys listed per query; 0: none
    std::optional<std::size_t> batch;  // only this batch (else all)
    std::optional<std::size_t> head;   // only this head (else all)
    std::optional<std::size_t> query;  // top-k of this query only (else every query)
    double near_zero = 1e-3;           // a weight below this counts as near zero
    double row_sum_tolerance = 1e-3;   // a row sum further than this from 1 gives a warning
};

struct EntropyBits {
    // Over the rows that count (finite, not all zero); NaN when no row counts. Each row is
    // normalised to sum 1 first, so the figure stays meaningful when the sums are off.
    double mean = 0;
    double min = 0;
    double max = 0;
    double uniform = 0;  // log2 S: the entropy of a uniform row, the largest possible; NaN when S is 0
};

struct TopKeys {
    std::size_t query = 0;
    std::vector<std::size_t> keys;  // by weight, largest first; equal weights by key index
    std::vector<double> weights;
};

struct PanelSummary {
    std::size_t batch = 0;
    std::size_t head = 0;
    std::size_t rows = 0;  // L
    std::size_t keys = 0;  // S
    // Figures over rows or weights are NaN (worst_query empty) when there are none to count:
    // every row NaN, Inf or zeros, or L or S 0. encode_inspect_json writes them as null.
    double row_sum_error = 0;                // max |sum - 1| over the rows that count
    std::optional<std::size_t> worst_query;  // the row of row_sum_error
    std::size_t unnormalised_rows = 0;       // rows that count whose |sum - 1| exceeds the tolerance
    std::size_t zero_rows = 0;               // rows of zeros (fully masked queries)
    EntropyBits entropy_bits;
    double max_weight = 0;       // largest finite weight
    double near_zero_share = 0;  // share of the L*S weights below InspectOptions::near_zero; NaN when L*S is 0
    std::size_t nan = 0;
    std::size_t inf = 0;         // +inf weights
    std::vector<TopKeys> top_k;  // one per query (or the chosen one); empty when top_k is 0
};

struct InspectReport {
    Shape shape;
    DType dtype = DType::Float32;
    WeightsLayout layout;
    std::vector<PanelSummary> panels;   // batch-major, then head
    std::vector<std::string> warnings;  // one line each, naming the subject; nothing failed
};

// Summarises the chosen panels of `weights` in one pass. `subject` (usually the file)
// starts every message. Throws ErrorKind::Shape for rank < 2, ErrorKind::Value for a
// negative weight, ErrorKind::Usage naming Arg::Batch, Arg::Head or Arg::QueryIndex when out
// of range.
InspectReport inspect_weights(const Tensor& weights, const InspectOptions& options, const std::string& subject);

// The report as one JSON document and a newline (schema in README.md, "inspect"):
// {"shape", "dtype", "layout", "panels": [...], "warnings"}; NaN as null.
void encode_inspect_json(const InspectReport& report, io::ByteSink& sink);

// Token strings for the axes of a panel.
struct Labels {
    std::vector<std::string> tokens;
    std::string source;  // the file they came from, named in errors
};
// One token per line (a final newline and "\r" line ends are dropped); empty lines are
// tokens too, so the count matches the lines a tokenizer dump has.
Labels read_labels(const std::string& path);
// Throws ErrorKind::Value naming the source unless it holds exactly `expected` tokens;
// `axis` ("query" or "key") says what they label. No labels pass.
void check_labels(const Labels& labels, std::size_t expected, const std::string& axis);

// The viridis colour (0xRRGGBB) of t in [0, 1] (clamped); 0 is #440154, 1 is #fde725.
std::uint32_t viridis(double t);

struct HeatmapOptions {
    std::size_t batch = 0;
    std::optional<std::size_t> head;    // one panel only; else every head of the batch
    std::string title;                  // a line above the grid (e.g. the file name)
    Labels query_labels;                // empty, or exactly L tokens
    Labels key_labels;                  // empty, or exactly S tokens
    std::size_t max_panel_cells = 512;  // larger L or S is averaged down to at most this many cells
};

// Where a panel landed in the image: its cells, in pixels, and the weights each averages.
struct HeatmapPanel {
    std::size_t head = 0;
    std::size_t x = 0, y = 0;                     // top-left pixel of cell (0, 0)
    std::size_t width = 0, height = 0;            // in pixels; no weight is cropped
    std::size_t cell_width = 1, cell_height = 1;  // pixels per cell
    std::size_t keys_per_cell = 1, queries_per_cell = 1;
};

// A tick of the panels' axes: the query or key it marks, its offset in pixels from the
// panel's first row (queries) or column (keys), and its label as drawn.
struct HeatmapAxisTick {
    std::size_t index = 0;
    std::size_t offset = 0;
    std::string label;
};

// A tick of the colour bar: the weight it marks, its row in the image, its label as drawn.
struct HeatmapScaleTick {
    double value = 0;
    std::size_t y = 0;
    std::string label;
};

// Where the colour bar landed: the gradient runs from the scale top (row y) down to 0
// (row y + height - 1).
struct HeatmapColourBar {
    std::size_t x = 0, y = 0;
    std::size_t width = 0, height = 0;
    std::vector<HeatmapScaleTick> ticks;  // 0 and steps of 1, 2 or 5 x 10^n, bottom to top
};

struct Heatmap {
    Image image;
    std::vector<HeatmapPanel> panels;
    double scale_top = 1;  // the weight drawn in the brightest colour
    // Every panel has the same ticks: a label per query or key when they are far enough
    // apart, else one every 1, 2 or 5 x 10^n indices.
    std::vector<HeatmapAxisTick> query_ticks;  // top to bottom
    std::vector<HeatmapAxisTick> key_ticks;    // left to right
    HeatmapColourBar colour_bar;
};

// A grid of one titled panel per head ("head 0", ...) with query/key axis ticks (token
// strings when labels are given), and a colour bar with values. The colour scale runs
// from 0 to the largest shown cell, shared by all panels; NaN cells are grey. Besides the
// image, the result says where the panels, ticks and colour bar landed. Throws
// ErrorKind::Shape for empty weights, ErrorKind::Value for labels of the wrong count.
Heatmap render_heatmap(const Tensor& weights, const HeatmapOptions& options, const std::string& subject);

struct AnsiOptions {
    std::size_t batch = 0;
    std::size_t head = 0;
    std::size_t width = 80;  // terminal columns available
};

// One panel as text with 24-bit colour escapes: two queries per line (half blocks), one
// column or more per key, averaged down to fit `width`; a header line names the panel
// and a last line shows the colour scale.
std::string render_ansi(const Tensor& weights, const AnsiOptions& options, const std::string& subject);

}  // namespace attn
