// Pictures of attention weights: the PNG heatmap grid and the terminal rendering.
// Both average large panels down in blocks (never crop) and colour with viridis, the
// perceptually uniform map of matplotlib (Smith, van der Walt, Firing; CC0).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "attn/inspect.hpp"
#include "inspect/weights_panels.hpp"
#include "render/bitmap_font.hpp"

namespace attn {

namespace {

// matplotlib's 256 viridis entries, each channel rounded to 8 bits; 8 a line.
// clang-format off
constexpr std::uint32_t kViridis[256] = {
    0x440154, 0x440256, 0x450457, 0x450559, 0x46075a, 0x46085c, 0x460a5d, 0x460b5e,
    0x470d60, 0x470e61, 0x471063, 0x471164, 0x471365, 0x481467, 0x481668, 0x481769,
    0x48186a, 0x481a6c, 0x481b6d, 0x481c6e, 0x481d6f, 0x481f70, 0x482071, 0x482173,
    0x482374, 0x482475, 0x482576, 0x482677, 0x482878, 0x482979, 0x472a7a, 0x472c7a,
    0x472d7b, 0x472e7c, 0x472f7d, 0x46307e, 0x46327e, 0x46337f, 0x463480, 0x453581,
    0x453781, 0x453882, 0x443983, 0x443a83, 0x443b84, 0x433d84, 0x433e85, 0x423f85,
    0x424086, 0x424186, 0x414287, 0x414487, 0x404588, 0x404688, 0x3f4788, 0x3f4889,
    0x3e4989, 0x3e4a89, 0x3e4c8a, 0x3d4d8a, 0x3d4e8a, 0x3c4f8a, 0x3c508b, 0x3b518b,
    0x3b528b, 0x3a538b, 0x3a548c, 0x39558c, 0x39568c, 0x38588c, 0x38598c, 0x375a8c,
    0x375b8d, 0x365c8d, 0x365d8d, 0x355e8d, 0x355f8d, 0x34608d, 0x34618d, 0x33628d,
    0x33638d, 0x32648e, 0x32658e, 0x31668e, 0x31678e, 0x31688e, 0x30698e, 0x306a8e,
    0x2f6b8e, 0x2f6c8e, 0x2e6d8e, 0x2e6e8e, 0x2e6f8e, 0x2d708e, 0x2d718e, 0x2c718e,
    0x2c728e, 0x2c738e, 0x2b748e, 0x2b758e, 0x2a768e, 0x2a778e, 0x2a788e, 0x29798e,
    0x297a8e, 0x297b8e, 0x287c8e, 0x287d8e, 0x277e8e, 0x277f8e, 0x27808e, 0x26818e,
    0x26828e, 0x26828e, 0x25838e, 0x25848e, 0x25858e, 0x24868e, 0x24878e, 0x23888e,
    0x23898e, 0x238a8d, 0x228b8d, 0x228c8d, 0x228d8d, 0x218e8d, 0x218f8d, 0x21908d,
    0x21918c, 0x20928c, 0x20928c, 0x20938c, 0x1f948c, 0x1f958b, 0x1f968b, 0x1f978b,
    0x1f988b, 0x1f998a, 0x1f9a8a, 0x1e9b8a, 0x1e9c89, 0x1e9d89, 0x1f9e89, 0x1f9f88,
    0x1fa088, 0x1fa188, 0x1fa187, 0x1fa287, 0x20a386, 0x20a486, 0x21a585, 0x21a685,
    0x22a785, 0x22a884, 0x23a983, 0x24aa83, 0x25ab82, 0x25ac82, 0x26ad81, 0x27ad81,
    0x28ae80, 0x29af7f, 0x2ab07f, 0x2cb17e, 0x2db27d, 0x2eb37c, 0x2fb47c, 0x31b57b,
    0x32b67a, 0x34b679, 0x35b779, 0x37b878, 0x38b977, 0x3aba76, 0x3bbb75, 0x3dbc74,
    0x3fbc73, 0x40bd72, 0x42be71, 0x44bf70, 0x46c06f, 0x48c16e, 0x4ac16d, 0x4cc26c,
    0x4ec36b, 0x50c46a, 0x52c569, 0x54c568, 0x56c667, 0x58c765, 0x5ac864, 0x5cc863,
    0x5ec962, 0x60ca60, 0x63cb5f, 0x65cb5e, 0x67cc5c, 0x69cd5b, 0x6ccd5a, 0x6ece58,
    0x70cf57, 0x73d056, 0x75d054, 0x77d153, 0x7ad151, 0x7cd250, 0x7fd34e, 0x81d34d,
    0x84d44b, 0x86d549, 0x89d548, 0x8bd646, 0x8ed645, 0x90d743, 0x93d741, 0x95d840,
    0x98d83e, 0x9bd93c, 0x9dd93b, 0xa0da39, 0xa2da37, 0xa5db36, 0xa8db34, 0xaadc32,
    0xaddc30, 0xb0dd2f, 0xb2dd2d, 0xb5de2b, 0xb8de29, 0xbade28, 0xbddf26, 0xc0df25,
    0xc2df23, 0xc5e021, 0xc8e020, 0xcae11f, 0xcde11d, 0xd0e11c, 0xd2e21b, 0xd5e21a,
    0xd8e219, 0xdae319, 0xdde318, 0xdfe318, 0xe2e418, 0xe5e419, 0xe7e419, 0xeae51a,
    0xece51b, 0xefe51c, 0xf1e51d, 0xf4e61e, 0xf6e620, 0xf8e621, 0xfbe723, 0xfde725,
};
// clang-format on

}  // namespace

std::uint32_t viridis(double t) {
    if (!(t > 0)) t = 0;  // NaN too: callers colour NaN themselves
    if (t > 1) t = 1;
    return kViridis[static_cast<std::size_t>(std::lround(t * 255))];
}

namespace {

constexpr std::uint32_t kWhite = 0xffffff;
constexpr std::uint32_t kInk = 0x222222;
constexpr std::uint32_t kFrame = 0x9e9e9e;
constexpr std::uint32_t kNaNColour = 0x808080;

// ---- downsampling -------------------------------------------------------------------

// A panel averaged over blocks of row_factor x col_factor weights (the last blocks may be
// smaller); a NaN in a block makes the cell NaN, so holes stay visible.
struct CellGrid {
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::vector<double> cells;  // rows x cols
    double at(std::size_t r, std::size_t c) const { return cells[r * cols + c]; }
};

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

template <class T>
CellGrid average_blocks(const T* panel, std::size_t queries, std::size_t keys, std::size_t row_factor,
                        std::size_t col_factor) {
    CellGrid grid;
    grid.rows = ceil_div(queries, row_factor);
    grid.cols = ceil_div(keys, col_factor);
    grid.cells.assign(grid.rows * grid.cols, 0.0);
    for (std::size_t r = 0; r < grid.rows; ++r) {
        double* sums = &grid.cells[r * grid.cols];
        const std::size_t first_query = r * row_factor;
        const std::size_t end_query = std::min(queries, first_query + row_factor);
        for (std::size_t q = first_query; q < end_query; ++q) {
            const T* row = panel + q * keys;
            for (std::size_t c = 0; c < grid.cols; ++c) {
                const std::size_t end_key = std::min(keys, (c + 1) * col_factor);
                double sum = 0;
                for (std::size_t j = c * col_factor; j < end_key; ++j) sum += static_cast<double>(row[j]);
                sums[c] += sum;
            }
        }
        for (std::size_t c = 0; c < grid.cols; ++c) {
            const std::size_t width = std::min(keys, (c + 1) * col_factor) - c * col_factor;
            sums[c] /= static_cast<double>((end_query - first_query) * width);
        }
    }
    return grid;
}

// The panels (batch, head) of `heads`, averaged down, one per head; in parallel.
std::vector<CellGrid> average_panels(const Tensor& weights, const WeightsLayout& layout, std::size_t batch,
                                     const std::vector<std::size_t>& heads, std::size_t row_factor,
                                     std::size_t col_factor) {
    std::vector<CellGrid> grids(heads.size());
    detail::parallel_over_weights(weights, heads.size(), 1, [&](std::size_t i, const auto* values) {
        grids[i] = average_blocks(values + detail::panel_offset(layout, batch, heads[i]), layout.queries, layout.keys,
                                  row_factor, col_factor);
    });
    return grids;
}

// The largest finite cell, the top of the colour scale; 1 when there is none above 0.
double colour_scale_top(const std::vector<CellGrid>& grids) {
    double top = 0;
    for (const CellGrid& grid : grids) {
        for (double v : grid.cells) {
            if (std::isfinite(v)) top = std::max(top, v);
        }
    }
    return top > 0 ? top : 1;
}

std::uint32_t cell_colour(double value, double top) { return std::isnan(value) ? kNaNColour : viridis(value / top); }

// ---- drawing ------------------------------------------------------------------------

// Text is the 5x7 font scaled 2x: 10x14 glyphs (18 px lines with descenders) on a 12 px
// advance, legible at 100 %.
constexpr std::size_t kTextScale = 2;
constexpr std::size_t kCharAdvance = (detail::kGlyphWidth + 1) * kTextScale;
constexpr std::size_t kCharHeight = (detail::kGlyphHeight + detail::kDescent) * kTextScale;
constexpr std::size_t kCapHeight = detail::kGlyphHeight * kTextScale;  // what centring on a tick centres
constexpr std::size_t kMaxLabelChars = 12;

void fill_rect(Image& image, std::size_t x, std::size_t y, std::size_t w, std::size_t h, std::uint32_t colour) {
    const std::size_t x_end = std::min(image.width, x + w);
    const std::size_t y_end = std::min(image.height, y + h);
    for (std::size_t yy = y; yy < y_end; ++yy) {
        for (std::size_t xx = x; xx < x_end; ++xx) image.set_pixel(xx, yy, colour);
    }
}

void draw_frame(Image& image, std::size_t x, std::size_t y, std::size_t w, std::size_t h, std::uint32_t colour) {
    fill_rect(image, x, y, w, 1, colour);
    fill_rect(image, x, y + h - 1, w, 1, colour);
    fill_rect(image, x, y, 1, h, colour);
    fill_rect(image, x + w - 1, y, 1, h, colour);
}

std::size_t text_width(const std::string& text) { return text.empty() ? 0 : text.size() * kCharAdvance - kTextScale; }

// Calls ink(i, gx, gy) for every set pixel of the glyphs of `text`: character i, font
// column gx, font row gy (descenders already dropped).
template <class F>
void for_each_glyph_pixel(const std::string& text, F&& ink) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        const std::uint8_t* rows = detail::glyph_rows(text[i]);
        const int drop = detail::glyph_drop(text[i]);
        for (int gy = 0; gy < detail::kGlyphHeight; ++gy) {
            for (int gx = 0; gx < detail::kGlyphWidth; ++gx) {
                if ((rows[gy] >> (detail::kGlyphWidth - 1 - gx) & 1) != 0) ink(i, gx, gy + drop);
            }
        }
    }
}

// Left to right, (x, y) the top-left corner.
void draw_text(Image& image, std::size_t x, std::size_t y, const std::string& text, std::uint32_t colour = kInk) {
    for_each_glyph_pixel(text, [&](std::size_t i, int gx, int gy) {
        fill_rect(image, x + i * kCharAdvance + static_cast<std::size_t>(gx) * kTextScale,
                  y + static_cast<std::size_t>(gy) * kTextScale, kTextScale, kTextScale, colour);
    });
}

// Bottom to top (turned a quarter left, as matplotlib's rotated labels read); (x, bottom)
// is the bottom-left corner, the text is kCharHeight wide.
void draw_text_up(Image& image, std::size_t x, std::size_t bottom, const std::string& text,
                  std::uint32_t colour = kInk) {
    for_each_glyph_pixel(text, [&](std::size_t i, int gx, int gy) {
        const std::size_t up = i * kCharAdvance + static_cast<std::size_t>(gx + 1) * kTextScale;
        if (up > bottom) return;
        fill_rect(image, x + static_cast<std::size_t>(gy) * kTextScale, bottom - up, kTextScale, kTextScale, colour);
    });
}

// Text as the font can draw it: one '?' per non-ASCII character or control byte, and cut
// to `max_chars` with a final '~'.
std::string drawable_text(const std::string& token, std::size_t max_chars) {
    std::string text;
    for (const char c : token) {
        const auto byte = static_cast<unsigned char>(c);
        if ((byte & 0xc0) == 0x80) continue;  // a UTF-8 continuation byte: its character has its '?'
        text += byte >= 0x20 && byte < 0x7f ? c : '?';
    }
    if (text.size() > max_chars) text = text.substr(0, max_chars - 1) + "~";
    return text;
}

// ---- layout -------------------------------------------------------------------------

constexpr std::size_t kMargin = 16;                   // around the figure
constexpr std::size_t kTick = 5;                      // a tick mark's length
constexpr std::size_t kGap = 4;                       // between a tick and its label, a label and an axis name
constexpr std::size_t kLabelGap = 8;                  // labels clear of ticks: no minus signs
constexpr std::size_t kBarWidth = 20;                 // the colour bar's gradient
constexpr std::size_t kTitleBand = kCharHeight + 10;  // a panel's title, above its cells
constexpr std::size_t kHeaderHeight = 2 * (kCharHeight + 8) + 8;  // the figure's title and info lines

// The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `minimum`.
double nice_step(double minimum) {
    double step = 1;
    while (step < minimum) {
        for (const double m : {2.0, 2.5, 2.0}) {  // 1 -> 2 -> 5 -> 10
            step *= m;
            if (step >= minimum) break;
        }
    }
    return step;
}

// One axis of a panel: how its indices become cells and pixels, and where its ticks go.
struct Axis {
    std::size_t count = 0;   // L or S
    std::size_t factor = 1;  // indices per cell
    std::size_t cells = 0;
    std::size_t cell_px = 1;
    std::size_t pixels() const { return cells * cell_px; }
    // The pixel centre of index i along the axis.
    std::size_t centre(std::size_t i) const {
        return static_cast<std::size_t>((static_cast<double>(i) + 0.5) * static_cast<double>(cell_px) /
                                        static_cast<double>(factor));
    }
};

// Panels aim at kPanelPx pixels a side: small L gets big cells (at most kMaxCellPx), large
// L is averaged down to max_cells cells of one pixel.
constexpr std::size_t kPanelPx = 512;
constexpr std::size_t kMaxCellPx = 48;

Axis make_axis(std::size_t count, std::size_t max_cells) {
    Axis axis;
    axis.count = count;
    axis.factor = std::max<std::size_t>(1, ceil_div(count, std::max<std::size_t>(1, max_cells)));
    axis.cells = ceil_div(count, axis.factor);
    axis.cell_px = std::clamp<std::size_t>(kPanelPx / axis.cells, 1, kMaxCellPx);
    return axis;
}

// Ticks at indices 0, step, 2 step, ... at least `spacing_px` apart, labelled with the
// token when there are labels, else with the index.
std::vector<HeatmapAxisTick> axis_ticks(const Axis& axis, std::size_t spacing_px, const Labels& labels) {
    const double px_per_index = static_cast<double>(axis.cell_px) / static_cast<double>(axis.factor);
    const auto step = static_cast<std::size_t>(nice_step(static_cast<double>(spacing_px) / px_per_index));
    std::vector<HeatmapAxisTick> ticks;
    for (std::size_t i = 0; i < axis.count; i += step) {
        ticks.push_back({i, axis.centre(i),
                         labels.tokens.empty() ? std::to_string(i) : drawable_text(labels.tokens[i], kMaxLabelChars)});
    }
    return ticks;
}

// Query labels stack one text line apart (every label, or one in about 40 px); key numbers
// sit side by side, key tokens are turned upright and so stack one text line apart too.
void place_axis_ticks(Heatmap& heatmap, const Axis& y_axis, const Axis& x_axis, const HeatmapOptions& options) {
    const std::size_t line_px = kCharHeight + 4;
    const std::size_t y_spacing = 2 * kCharHeight + 4;
    const std::size_t x_spacing =
        options.key_labels.tokens.empty() ? text_width(std::to_string(x_axis.count - 1)) + 2 * kCharAdvance : line_px;
    heatmap.query_ticks = axis_ticks(y_axis, y_spacing, options.query_labels);
    heatmap.key_ticks = axis_ticks(x_axis, x_spacing, options.key_labels);
}

std::size_t widest_label(const std::vector<HeatmapAxisTick>& ticks) {
    std::size_t widest = 0;
    for (const HeatmapAxisTick& tick : ticks) widest = std::max(widest, text_width(tick.label));
    return widest;
}

// The panels' grid: one block per head, each a titled panel with its ticks, labels and
// axis names; four blocks a row, or about the square root of the count for many heads.
struct Grid {
    std::size_t left = 0;         // from a block's left edge to its panel's first column
    std::size_t key_label_h = 0;  // the band of the key labels under a panel
    std::size_t block_w = 0, block_h = 0;
    std::size_t cols = 0, rows = 0;
};

Grid plan_grid(const Heatmap& heatmap, const Axis& y_axis, const Axis& x_axis, bool upright_keys,
               const std::vector<std::size_t>& heads) {
    Grid grid;
    grid.left = kCharHeight + 2 * kGap + widest_label(heatmap.query_ticks) + kLabelGap + kTick;
    grid.key_label_h = upright_keys ? widest_label(heatmap.key_ticks) : kCharHeight;
    const std::size_t bottom = kTick + kGap + grid.key_label_h + 2 * kGap + kCharHeight + kGap;
    // A panel narrower than its title ("head 12") gets the title's width.
    grid.block_w = grid.left + std::max(x_axis.pixels(), text_width("head " + std::to_string(heads.back()))) + 28;
    grid.block_h = kTitleBand + y_axis.pixels() + bottom + 16;
    const std::size_t n = heads.size();
    const auto root = static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    grid.cols = n <= 4 ? n : std::min(n, std::max<std::size_t>(4, root));
    grid.rows = ceil_div(n, grid.cols);
    return grid;
}

std::vector<HeatmapPanel> place_panels(const Grid& grid, const std::vector<std::size_t>& heads, const Axis& y_axis,
                                       const Axis& x_axis) {
    std::vector<HeatmapPanel> panels;
    for (std::size_t k = 0; k < heads.size(); ++k) {
        HeatmapPanel panel;
        panel.head = heads[k];
        panel.x = kMargin + (k % grid.cols) * grid.block_w + grid.left;
        panel.y = kHeaderHeight + (k / grid.cols) * grid.block_h + kTitleBand;
        panel.width = x_axis.pixels();
        panel.height = y_axis.pixels();
        panel.cell_width = x_axis.cell_px;
        panel.cell_height = y_axis.cell_px;
        panel.keys_per_cell = x_axis.factor;
        panel.queries_per_cell = y_axis.factor;
        panels.push_back(panel);
    }
    return panels;
}

// Values for the colour bar: 0 and steps of 1, 2 or 5 x 10^n up to `top`, 3 to 6 of them;
// `decimals` is what the step needs to print.
std::vector<double> scale_ticks(double top, int& decimals) {
    const double raw = top / 5;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude;
    for (const double m : {1.0, 2.0, 5.0, 10.0}) {
        step = m * magnitude;
        if (step >= raw) break;
    }
    decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
    std::vector<double> ticks;
    for (std::size_t i = 0; static_cast<double>(i) * step <= top * (1 + 1e-9); ++i) {
        ticks.push_back(static_cast<double>(i) * step);
    }
    return ticks;
}

std::string fixed(double value, int decimals) {
    char buffer[48];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

// The colour bar right of the grid, level with the first row of panels and at least
// 160 px tall; its ticks at round values from 0 up to `top`.
HeatmapColourBar place_colour_bar(const Grid& grid, std::size_t panel_h, double top) {
    HeatmapColourBar bar;
    bar.x = kMargin + grid.cols * grid.block_w;
    bar.y = kHeaderHeight + kTitleBand;
    bar.width = kBarWidth;
    bar.height = std::max<std::size_t>(panel_h, 160);
    int decimals = 0;
    for (const double v : scale_ticks(top, decimals)) {
        const auto row = static_cast<std::size_t>(std::lround((1 - v / top) * static_cast<double>(bar.height - 1)));
        bar.ticks.push_back({v, bar.y + row, fixed(v, decimals)});
    }
    return bar;
}

// The width the colour bar's title and tick labels need right of the gradient.
std::size_t colour_bar_label_width(const HeatmapColourBar& bar) {
    std::size_t width = text_width("weight");
    for (const HeatmapScaleTick& tick : bar.ticks) width = std::max(width, text_width(tick.label) + 30);
    return width;
}

// "1 query", "5 queries".
std::string counted(std::size_t n, const std::string& one, const std::string& many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The header's second line: what was drawn, and how it was averaged down.
std::string figure_info(const WeightsLayout& layout, std::size_t batch, const Axis& y_axis, const Axis& x_axis) {
    std::string info =
        layout.batches > 1 ? "batch " + std::to_string(batch) + " of " + std::to_string(layout.batches) + ": " : "";
    info += counted(layout.heads, "head", "heads") + ", " + counted(layout.queries, "query", "queries") + " x " +
            counted(layout.keys, "key", "keys");
    if (y_axis.factor > 1 || x_axis.factor > 1) {
        info += "; each cell averages " + std::to_string(y_axis.factor) + " x " + std::to_string(x_axis.factor) +
                " weights";
    }
    return info;
}

std::vector<std::size_t> chosen_heads(const WeightsLayout& layout, const std::optional<std::size_t>& head) {
    if (head) return {*head};
    std::vector<std::size_t> heads(layout.heads);
    for (std::size_t h = 0; h < heads.size(); ++h) heads[h] = h;
    return heads;
}

void require_cells(const WeightsLayout& layout, const std::string& subject, const Shape& shape) {
    if (layout.queries == 0 || layout.keys == 0 || layout.panels() == 0)
        throw Error(ErrorKind::Shape, subject, "nothing to draw: the weights " + shape_to_string(shape) + " are empty");
}

// ---- painting -----------------------------------------------------------------------

// A panel's title above it and its cells inside a frame.
void draw_cells(Image& image, const HeatmapPanel& panel, const CellGrid& cells, double top) {
    const std::string title = "head " + std::to_string(panel.head);
    draw_text(image, panel.x + panel.width / 2 - std::min(panel.width / 2, text_width(title) / 2), panel.y - kTitleBand,
              title);
    for (std::size_t r = 0; r < cells.rows; ++r) {
        for (std::size_t c = 0; c < cells.cols; ++c) {
            fill_rect(image, panel.x + c * panel.cell_width, panel.y + r * panel.cell_height, panel.cell_width,
                      panel.cell_height, cell_colour(cells.at(r, c), top));
        }
    }
    draw_frame(image, panel.x - 1, panel.y - 1, panel.width + 2, panel.height + 2, kFrame);
}

// Ticks left of the panel, their labels right-aligned against them, and "query" upright
// at the block's left edge.
void draw_query_axis(Image& image, const HeatmapPanel& panel, const Heatmap& heatmap, const Grid& grid) {
    for (const HeatmapAxisTick& tick : heatmap.query_ticks) {
        const std::size_t y = panel.y + tick.offset;
        fill_rect(image, panel.x - 1 - kTick, y, kTick, 1, kInk);
        draw_text(image, panel.x - 1 - kTick - kLabelGap - text_width(tick.label), y - std::min(y, kCapHeight / 2),
                  tick.label);
    }
    const std::size_t name_bottom = panel.y + panel.height / 2 + text_width("query") / 2;
    draw_text_up(image, panel.x - grid.left + kGap, name_bottom, "query");
}

// Ticks under the panel, their labels below them (tokens upright, ending at the axis as
// matplotlib's rotated tick labels do), and "key" under the labels.
void draw_key_axis(Image& image, const HeatmapPanel& panel, const Heatmap& heatmap, const Grid& grid,
                   bool upright_keys) {
    const std::size_t label_top = panel.y + panel.height + 1 + kTick + kGap;
    for (const HeatmapAxisTick& tick : heatmap.key_ticks) {
        const std::size_t x = panel.x + tick.offset;
        fill_rect(image, x, panel.y + panel.height + 1, 1, kTick, kInk);
        if (upright_keys) {
            draw_text_up(image, x - kCapHeight / 2, label_top + text_width(tick.label), tick.label);
        } else {
            draw_text(image, x - std::min(x, text_width(tick.label) / 2), label_top, tick.label);
        }
    }
    draw_text(image, panel.x + panel.width / 2 - text_width("key") / 2, label_top + grid.key_label_h + 2 * kGap, "key");
}

// Viridis from 0 (bottom) to the top of the scale, titled "weight", ticks at round values.
void draw_colour_bar(Image& image, const HeatmapColourBar& bar) {
    draw_text(image, bar.x, kHeaderHeight, "weight");
    for (std::size_t y = 0; y < bar.height; ++y) {
        const double t = 1 - static_cast<double>(y) / static_cast<double>(bar.height - 1);
        fill_rect(image, bar.x, bar.y + y, bar.width, 1, viridis(t));
    }
    draw_frame(image, bar.x - 1, bar.y - 1, bar.width + 2, bar.height + 2, kFrame);
    for (const HeatmapScaleTick& tick : bar.ticks) {
        fill_rect(image, bar.x + bar.width + 1, tick.y, kTick, 1, kInk);
        draw_text(image, bar.x + bar.width + 1 + kTick + kLabelGap, tick.y - std::min(tick.y, kCapHeight / 2),
                  tick.label);
    }
}

}  // namespace

Heatmap render_heatmap(const Tensor& weights, const HeatmapOptions& options, const std::string& subject) {
    const Shape shape = weights.shape();
    const WeightsLayout layout = weights_layout(shape, subject);
    detail::check_index(options.batch, layout.batches, Arg::Batch, "batches");
    if (options.head) detail::check_index(*options.head, layout.heads, Arg::Head, "heads");
    require_cells(layout, subject, shape);
    check_labels(options.query_labels, layout.queries, "query");
    check_labels(options.key_labels, layout.keys, "key");

    const Axis y_axis = make_axis(layout.queries, options.max_panel_cells);
    const Axis x_axis = make_axis(layout.keys, options.max_panel_cells);
    const std::vector<std::size_t> heads = chosen_heads(layout, options.head);
    const std::vector<CellGrid> cells =
        average_panels(weights, layout, options.batch, heads, y_axis.factor, x_axis.factor);
    const bool upright_keys = !options.key_labels.tokens.empty();

    Heatmap heatmap;
    heatmap.scale_top = colour_scale_top(cells);
    place_axis_ticks(heatmap, y_axis, x_axis, options);
    const Grid grid = plan_grid(heatmap, y_axis, x_axis, upright_keys, heads);
    heatmap.panels = place_panels(grid, heads, y_axis, x_axis);
    heatmap.colour_bar = place_colour_bar(grid, y_axis.pixels(), heatmap.scale_top);

    const std::string title = drawable_text(options.title.empty() ? subject : options.title, 160);
    const std::string info = figure_info(layout, options.batch, y_axis, x_axis);
    // A narrow grid (one small panel) still shows the whole header.
    const std::size_t width = std::max(heatmap.colour_bar.x + kBarWidth + colour_bar_label_width(heatmap.colour_bar),
                                       kMargin + std::max(text_width(title), text_width(info))) +
                              kMargin;
    const std::size_t height =
        kHeaderHeight + std::max(grid.rows * grid.block_h, kTitleBand + heatmap.colour_bar.height + kCharHeight) +
        kMargin;
    heatmap.image = Image(width, height, kWhite);
    Image& image = heatmap.image;
    draw_text(image, kMargin, 8, title);
    draw_text(image, kMargin, 8 + kCharHeight + 8, info, 0x555555);
    for (std::size_t k = 0; k < heatmap.panels.size(); ++k) {
        draw_cells(image, heatmap.panels[k], cells[k], heatmap.scale_top);
        draw_query_axis(image, heatmap.panels[k], heatmap, grid);
        draw_key_axis(image, heatmap.panels[k], heatmap, grid, upright_keys);
    }
    draw_colour_bar(image, heatmap.colour_bar);
    return heatmap;
}

// ---- terminal -----------------------------------------------------------------------

namespace {

void append_colour(std::string& out, bool foreground, std::uint32_t colour) {
    out += foreground ? "\x1b[38;2;" : "\x1b[48;2;";
    out += std::to_string(colour >> 16 & 0xff) + ";" + std::to_string(colour >> 8 & 0xff) + ";" +
           std::to_string(colour & 0xff) + "m";
}

}  // namespace

std::string render_ansi(const Tensor& weights, const AnsiOptions& options, const std::string& subject) {
    const Shape shape = weights.shape();
    const WeightsLayout layout = weights_layout(shape, subject);
    detail::check_index(options.batch, layout.batches, Arg::Batch, "batches");
    detail::check_index(options.head, layout.heads, Arg::Head, "heads");
    require_cells(layout, subject, shape);

    // A column is about half as wide as a line is tall, so one column by one half-line
    // ("▀": foreground the upper cell, background the lower) is a square cell.
    const std::size_t index_w = std::to_string(layout.queries - 1).size();
    const std::size_t columns = options.width > index_w + 1 ? options.width - index_w - 1 : 1;
    const std::size_t factor = ceil_div(layout.keys, columns);
    const std::size_t cell_w = factor > 1 ? 1 : std::clamp<std::size_t>(columns / layout.keys, 1, 4);
    const std::vector<CellGrid> grids = average_panels(weights, layout, options.batch, {options.head}, factor, factor);
    const CellGrid& grid = grids.front();
    const double top = colour_scale_top(grids);

    std::string out = subject + ": batch " + std::to_string(options.batch) + ", head " + std::to_string(options.head) +
                      " - " + std::to_string(layout.queries) + " queries (rows) x " + std::to_string(layout.keys) +
                      " keys (columns)";
    if (factor > 1)
        out += ", each cell averages " + std::to_string(factor) + " x " + std::to_string(factor) + " weights";
    out += '\n';
    const std::size_t half_lines = grid.rows * cell_w;
    for (std::size_t upper = 0; upper < half_lines; upper += 2) {
        const std::size_t r_upper = upper / cell_w;
        const bool has_lower = upper + 1 < half_lines;
        const std::size_t r_lower = (upper + 1) / cell_w;
        // The line names the first query of the cell row that starts on it, if one does.
        std::string index;
        if (upper % cell_w == 0) {
            index = std::to_string(r_upper * factor);
        } else if (has_lower && (upper + 1) % cell_w == 0) {
            index = std::to_string(r_lower * factor);
        }
        out += std::string(index_w - std::min(index_w, index.size()), ' ') + index + ' ';
        for (std::size_t c = 0; c < grid.cols; ++c) {
            append_colour(out, true, cell_colour(grid.at(r_upper, c), top));
            if (has_lower) {
                append_colour(out, false, cell_colour(grid.at(r_lower, c), top));
            } else {
                out += "\x1b[49m";
            }
            for (std::size_t k = 0; k < cell_w; ++k) out += "\u2580";
        }
        out += "\x1b[0m\n";
    }
    // The scale: 0 ... top in 16 steps.
    out += std::string(index_w + 1, ' ') + "0 ";
    for (int i = 0; i < 16; ++i) {
        append_colour(out, false, viridis(i / 15.0));
        out += ' ';
    }
    out += "\x1b[0m " + detail::format_number(top) + "\n";
    return out;
}

}  // namespace attn
