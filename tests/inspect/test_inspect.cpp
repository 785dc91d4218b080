// Summaries, top-k, labels, heatmaps and the terminal rendering of attention weights
// (attn/inspect.hpp), and PNG encoding (attn/png.hpp).
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "attn/inspect.hpp"
#include "attn/png.hpp"
#include "test_support.hpp"

using namespace attn;
using attn::test::contains;
using attn::test::error_of;

namespace {

constexpr std::uint32_t kViridisLow = 0x440154;   // viridis(0)
constexpr std::uint32_t kViridisHigh = 0xfde725;  // viridis(1)
constexpr std::uint32_t kViridisMid = 0x21918c;   // viridis(0.5): entry 128

Tensor weights_of(const Shape& shape, const std::vector<float>& values) {
    auto array = xt::xarray<float>::from_shape(shape);
    REQUIRE(array.size() == values.size());
    std::copy(values.begin(), values.end(), array.begin());
    return Tensor(std::move(array));
}

InspectReport inspect(const Tensor& weights, InspectOptions options = {}) {
    return inspect_weights(weights, options, "w.npy");
}

// A file with `text`, removed at the end of the test.
class TempFile {
public:
    explicit TempFile(const std::string& text) {
        char name[] = "/tmp/attn_inspect_XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path_ = name;
        std::ofstream(path_, std::ios::binary) << text;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

constexpr std::uint32_t kInk = 0x222222;  // tick marks and labels

// The offsets in [0, count) at which pixel_at(offset) is the ink colour.
template <class F>
std::vector<std::size_t> inked(std::size_t count, F&& pixel_at) {
    std::vector<std::size_t> offsets;
    for (std::size_t i = 0; i < count; ++i) {
        if (pixel_at(i) == kInk) offsets.push_back(i);
    }
    return offsets;
}

template <class Tick>
std::vector<std::string> labels_of(const std::vector<Tick>& ticks) {
    std::vector<std::string> labels;
    for (const Tick& tick : ticks) labels.push_back(tick.label);
    return labels;
}

// The colour at the centre of cell (query, key) of a heatmap panel.
std::uint32_t cell_pixel(const Heatmap& map, std::size_t panel, std::size_t query, std::size_t key) {
    const HeatmapPanel& p = map.panels.at(panel);
    return map.image.pixel(p.x + key * p.cell_width + p.cell_width / 2,
                           p.y + query * p.cell_height + p.cell_height / 2);
}

}  // namespace

TEST_CASE("inspect: a uniform row has entropy log2 S, a one-hot row 0") {
    // Head 0 is uniform over 8 keys, head 1 one-hot, head 2 is 0.5/0.5 (1 bit).
    std::vector<float> values(3 * 2 * 8, 0.0f);
    for (std::size_t i = 0; i < 16; ++i) values[i] = 0.125f;
    values[16 + 3] = 1.0f;
    values[24 + 7] = 1.0f;
    values[32 + 0] = values[32 + 5] = 0.5f;
    values[40 + 1] = values[40 + 2] = 0.5f;
    const InspectReport report = inspect(weights_of({3, 2, 8}, values));
    REQUIRE(report.panels.size() == 3);
    const EntropyBits& uniform = report.panels[0].entropy_bits;
    CHECK(uniform.uniform == doctest::Approx(3.0));
    CHECK(uniform.mean == doctest::Approx(3.0).epsilon(1e-12));
    CHECK(uniform.min == doctest::Approx(3.0).epsilon(1e-12));
    CHECK(uniform.max == doctest::Approx(3.0).epsilon(1e-12));
    CHECK(report.panels[1].entropy_bits.mean == 0.0);
    CHECK(report.panels[1].entropy_bits.max == 0.0);
    CHECK(report.panels[2].entropy_bits.mean == doctest::Approx(1.0).epsilon(1e-12));
    CHECK(report.panels[0].max_weight == doctest::Approx(0.125));
    CHECK(report.panels[1].max_weight == 1.0);
    CHECK(report.panels[1].near_zero_share == doctest::Approx(14.0 / 16));
    CHECK(report.panels[0].near_zero_share == 0.0);
    for (const PanelSummary& p : report.panels) {
        CHECK(p.row_sum_error < 1e-7);
        CHECK(p.nan == 0);
        CHECK(p.inf == 0);
    }
    CHECK(report.warnings.empty());
}

TEST_CASE("inspect: entropy is that of the row scaled to sum 1") {
    // (0.2, 0.2) scaled is (0.5, 0.5): 1 bit, though the row sums to 0.4.
    const InspectReport report = inspect(weights_of({1, 2}, {0.2f, 0.2f}));
    CHECK(report.panels[0].entropy_bits.mean == doctest::Approx(1.0).epsilon(1e-6));  // log2f: float32 precision
    CHECK(report.panels[0].row_sum_error == doctest::Approx(0.6).epsilon(1e-6));
}

TEST_CASE("inspect: top-k keys per query, largest first, ties by lower key") {
    const Tensor w = weights_of({2, 4}, {0.1f, 0.4f, 0.1f, 0.4f, 0.7f, 0.0f, 0.2f, 0.1f});
    SUBCASE("k = 3") {
        const InspectReport report = inspect(w);
        const auto& top = report.panels[0].top_k;
        REQUIRE(top.size() == 2);
        CHECK(top[0].query == 0);
        CHECK(top[0].keys == std::vector<std::size_t>{1, 3, 0});
        CHECK(top[0].weights[0] == doctest::Approx(0.4));
        CHECK(top[0].weights[2] == doctest::Approx(0.1));
        CHECK(top[1].keys == std::vector<std::size_t>{0, 2, 3});
        CHECK(top[1].weights == std::vector<double>{0.7f, 0.2f, 0.1f});
    }
    SUBCASE("k larger than S lists every key") {
        InspectOptions options;
        options.top_k = 10;
        const InspectReport report = inspect(w, options);
        CHECK(report.panels[0].top_k[1].keys == std::vector<std::size_t>{0, 2, 3, 1});
    }
    SUBCASE("one query") {
        InspectOptions options;
        options.query = 1;
        options.top_k = 1;
        const InspectReport report = inspect(w, options);
        REQUIRE(report.panels[0].top_k.size() == 1);
        CHECK(report.panels[0].top_k[0].query == 1);
        CHECK(report.panels[0].top_k[0].keys == std::vector<std::size_t>{0});
    }
    SUBCASE("k = 0 lists none") {
        InspectOptions options;
        options.top_k = 0;
        CHECK(inspect(w, options).panels[0].top_k.empty());
    }
}

TEST_CASE("inspect: top-k over many rows and threads equals a sort") {
    // 3 heads x 300 queries x 50 keys: several row blocks per panel.
    std::vector<float> values(3 * 300 * 50);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>((i * 7919) % 1009) / 1009.0f;
    InspectOptions options;
    options.top_k = 4;
    const InspectReport report = inspect(weights_of({3, 300, 50}, values), options);
    for (std::size_t h = 0; h < 3; ++h) {
        for (std::size_t q = 0; q < 300; q += 37) {
            std::vector<std::size_t> order(50);
            for (std::size_t j = 0; j < 50; ++j) order[j] = j;
            const float* row = &values[(h * 300 + q) * 50];
            std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return row[a] > row[b]; });
            order.resize(4);
            CHECK(report.panels[h].top_k[q].keys == order);
        }
    }
}

TEST_CASE("inspect: row-sum error of a perturbed tensor is a warning") {
    std::vector<float> values(2 * 3 * 4, 0.25f);
    values[(1 * 3 + 2) * 4 + 1] += 0.05f;  // head 1, query 2
    const InspectReport report = inspect(weights_of({2, 3, 4}, values));
    CHECK(report.panels[0].row_sum_error < 1e-7);
    CHECK(report.panels[1].row_sum_error == doctest::Approx(0.05).epsilon(1e-5));
    CHECK(report.panels[1].worst_query == 2);
    CHECK(report.panels[1].unnormalised_rows == 1);
    REQUIRE(report.warnings.size() == 1);
    const std::string& warning = report.warnings[0];
    CHECK(contains(warning, "w.npy: 1 of 6 rows do not sum to 1"));
    CHECK(contains(warning, "head 1, query 2"));
    CHECK(contains(warning, "0.05"));

    SUBCASE("within the tolerance: no warning") {
        values[(1 * 3 + 2) * 4 + 1] = 0.25f + 1e-4f;
        CHECK(inspect(weights_of({2, 3, 4}, values)).warnings.empty());
    }
}

TEST_CASE("inspect: the layout of ranks 2 to 5") {
    CHECK(weights_layout({5, 7}, "w").panels() == 1);
    const WeightsLayout three = weights_layout({4, 5, 7}, "w");
    CHECK(three.batches == 1);
    CHECK(three.heads == 4);
    const WeightsLayout five = weights_layout({2, 3, 8, 5, 7}, "w");
    CHECK(five.batches == 6);
    CHECK(five.heads == 8);
    CHECK(five.queries == 5);
    CHECK(five.keys == 7);

    SUBCASE("rank < 2 is a shape error") {
        const std::string message = error_of([] { inspect(Tensor(xt::xarray<float>{0.5f, 0.5f})); }, ErrorKind::Shape);
        CHECK(contains(message, "w.npy"));
        CHECK(contains(message, "rank >= 2"));
        CHECK(contains(message, "(2,)"));
    }
    SUBCASE("panels in batch-major order, narrowed by batch and head") {
        std::vector<float> values(2 * 3 * 1 * 2, 0.5f);
        const Tensor w = weights_of({2, 3, 1, 2}, values);
        const InspectReport all = inspect(w);
        REQUIRE(all.panels.size() == 6);
        CHECK(all.panels[4].batch == 1);
        CHECK(all.panels[4].head == 1);
        InspectOptions options;
        options.batch = 1;
        options.head = 2;
        const InspectReport one = inspect(w, options);
        REQUIRE(one.panels.size() == 1);
        CHECK(one.panels[0].batch == 1);
        CHECK(one.panels[0].head == 2);
    }
}

TEST_CASE("inspect: out-of-range selections are usage errors") {
    const Tensor w = weights_of({2, 2, 2}, std::vector<float>(8, 0.5f));
    InspectOptions options;
    options.batch = 1;
    CHECK(contains(error_of([&] { inspect(w, options); }, ErrorKind::Usage), "batch: expected 0 to 0"));
    CHECK(test::error_arg_of([&] { inspect(w, options); }) == Arg::Batch);
    options = {};
    options.head = 2;
    CHECK(contains(error_of([&] { inspect(w, options); }, ErrorKind::Usage), "head: expected 0 to 1"));
    options = {};
    options.query = 5;
    CHECK(contains(error_of([&] { inspect(w, options); }, ErrorKind::Usage), "found 5"));
}

TEST_CASE("inspect: a negative weight is an error naming its position") {
    std::vector<float> values(2 * 3 * 4, 0.25f);
    values[(1 * 3 + 2) * 4 + 3] = -0.5f;
    const std::string message = error_of([&] { inspect(weights_of({2, 3, 4}, values)); }, ErrorKind::Value);
    CHECK(contains(message, "w.npy: negative weight -0.5 at (1, 2, 3)"));
    CHECK(contains(message, "head 1, query 2, key 3"));
    values[5] = -std::numeric_limits<float>::infinity();  // earlier: reported first
    CHECK(contains(error_of([&] { inspect(weights_of({2, 3, 4}, values)); }, ErrorKind::Value), "-inf at (0, 1, 1)"));
}

TEST_CASE("inspect: NaN, Inf and rows of zeros are counted and left out of the row figures") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const InspectReport report = inspect(weights_of({4, 2}, {0.5f, 0.5f, nan, 0.1f, inf, 0.0f, 0.0f, 0.0f}));
    const PanelSummary& p = report.panels[0];
    CHECK(p.nan == 1);
    CHECK(p.inf == 1);
    CHECK(p.zero_rows == 1);
    CHECK(p.row_sum_error < 1e-7);  // only row 0 counts
    CHECK(p.entropy_bits.mean == doctest::Approx(1.0));
    CHECK(p.max_weight == 0.5);
    REQUIRE(report.warnings.size() == 1);
    CHECK(contains(report.warnings[0], "1 NaN and 1 Inf"));
}

TEST_CASE("inspect: a figure with no rows or weights to count is NaN, null in JSON, not 0") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    SUBCASE("every row NaN or zeros") {
        // Head 0: both rows NaN; head 1: both rows zeros.
        const InspectReport report = inspect(weights_of({2, 2, 2}, {nan, nan, nan, 0.5f, 0, 0, 0, 0}));
        for (const PanelSummary& p : report.panels) {
            CHECK(std::isnan(p.row_sum_error));
            CHECK_FALSE(p.worst_query.has_value());
            CHECK(std::isnan(p.entropy_bits.mean));
            CHECK(p.entropy_bits.uniform == 1.0);  // S is known
        }
        CHECK(report.panels[1].near_zero_share == 1.0);
        io::StringSink sink;
        encode_inspect_json(report, sink);
        const nlohmann::json doc = nlohmann::json::parse(sink.bytes());
        for (const auto& panel : doc["panels"]) {
            CHECK(panel["row_sum_error"].is_null());
            CHECK(panel["worst_query"].is_null());
        }
    }
    SUBCASE("no rows or no keys") {
        for (const Shape& shape : {Shape{1, 0, 3}, Shape{1, 2, 0}}) {
            const PanelSummary p = inspect(Tensor(xt::xarray<float>::from_shape(shape))).panels[0];
            CHECK(std::isnan(p.row_sum_error));
            CHECK_FALSE(p.worst_query.has_value());
            CHECK(std::isnan(p.near_zero_share));
            CHECK(std::isnan(p.max_weight));
        }
        CHECK(std::isnan(inspect(Tensor(xt::xarray<float>::from_shape({1, 2, 0}))).panels[0].entropy_bits.uniform));
    }
    SUBCASE("one row that counts gives the figures") {
        const PanelSummary p = inspect(weights_of({2, 2}, {nan, 0.5f, 0.25f, 0.25f})).panels[0];
        CHECK(p.row_sum_error == doctest::Approx(0.5));
        CHECK(p.worst_query == std::optional<std::size_t>(1));
    }
}

TEST_CASE("inspect: float64 and integer dumps read the same") {
    const Tensor as_double(xt::xarray<double>{{0.25, 0.75}, {1.0, 0.0}});
    const Tensor as_int(xt::xarray<std::int32_t>{{0, 1}, {1, 0}});
    CHECK(inspect(as_double).panels[0].top_k[0].keys == std::vector<std::size_t>{1, 0});
    CHECK(inspect(as_int).panels[0].entropy_bits.max == 0.0);
}

TEST_CASE("inspect: the JSON report parses and carries the figures") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const Tensor w = weights_of({1, 2, 1, 2}, {0.25f, 0.75f, nan, 1.0f});
    io::StringSink sink;
    encode_inspect_json(inspect(w), sink);
    const nlohmann::json doc = nlohmann::json::parse(sink.bytes());
    CHECK(doc["shape"] == nlohmann::json({1, 2, 1, 2}));
    CHECK(doc["dtype"] == "float32");
    CHECK(doc["layout"]["heads"] == 2);
    REQUIRE(doc["panels"].size() == 2);
    const auto& first = doc["panels"][0];
    CHECK(first["entropy_bits"]["uniform"].get<double>() == 1.0);
    CHECK(first["top_k"][0]["keys"] == nlohmann::json({1, 0}));
    CHECK(first["top_k"][0]["weights"][0].get<double>() == 0.75);
    CHECK(doc["panels"][1]["nan"] == 1);
    CHECK(doc["panels"][1]["entropy_bits"]["mean"].is_null());  // its only row holds a NaN
    REQUIRE(doc["warnings"].size() == 1);
    CHECK(contains(doc["warnings"][0].get<std::string>(), "NaN"));
}

TEST_CASE("inspect: the JSON report's exact text: header, panels a line each, top-k, warnings") {
    InspectReport report;
    report.shape = {1, 2};
    report.layout.queries = 1;
    report.layout.keys = 2;
    PanelSummary panel;
    panel.rows = 1;
    panel.keys = 2;
    panel.row_sum_error = 0.5;
    panel.worst_query = 0;
    panel.unnormalised_rows = 1;
    panel.entropy_bits = {std::numeric_limits<double>::quiet_NaN(), 0.25, 1, 1};
    panel.max_weight = 0.75;
    panel.top_k = {{0, {1, 0}, {0.75, 0.25}}, {0, {}, {}}};
    report.panels = {panel, panel};
    report.panels[1].head = 1;
    report.panels[1].top_k.clear();
    report.warnings = {"w: \"x\""};
    io::StringSink sink;
    encode_inspect_json(report, sink);
    const std::string panel_figures =
        "\"rows\": 1, \"keys\": 2, \"row_sum_error\": 0.5, \"worst_query\": 0, \"unnormalised_rows\": 1, "
        "\"zero_rows\": 0, \"entropy_bits\": {\"mean\": null, \"min\": 0.25, \"max\": 1, \"uniform\": 1}, "
        "\"max_weight\": 0.75, \"near_zero_share\": 0, \"nan\": 0, \"inf\": 0, \"top_k\": [";
    CHECK(sink.bytes() ==
          "{\"shape\": [1, 2], \"dtype\": \"float32\", "
          "\"layout\": {\"batches\": 1, \"heads\": 1, \"queries\": 1, \"keys\": 2},\n"
          " \"panels\": [\n"
          "  {\"batch\": 0, \"head\": 0, " +
              panel_figures +
              "\n"
              "    {\"query\": 0, \"keys\": [1, 0], \"weights\": [0.75, 0.25]},\n"
              "    {\"query\": 0, \"keys\": [], \"weights\": []}]},\n"
              "  {\"batch\": 0, \"head\": 1, " +
              panel_figures +
              "]}],\n"
              " \"warnings\": [\"w: \\\"x\\\"\"]}\n");

    SUBCASE("no panels") {
        report.panels.clear();
        report.warnings.clear();
        io::StringSink empty;
        encode_inspect_json(report, empty);
        CHECK(contains(empty.bytes(), "\"keys\": 2},\n \"panels\": [],\n \"warnings\": []}\n"));
    }
}

TEST_CASE("inspect: labels, one per line") {
    TempFile file("the\r\ncat\n\nsat\n");
    const Labels labels = read_labels(file.path());
    CHECK(labels.tokens == std::vector<std::string>{"the", "cat", "", "sat"});
    CHECK(labels.source == file.path());
    check_labels(labels, 4, "query");
    const std::string message = error_of([&] { check_labels(labels, 5, "key"); }, ErrorKind::Value);
    CHECK(contains(message, file.path() + ": expected 5 labels, one per key"));
    CHECK(contains(message, "found 4"));
    check_labels(Labels{}, 7, "query");  // no labels: nothing to check
    CHECK(contains(error_of([] { read_labels("/nonexistent/tokens.txt"); }, ErrorKind::Io), "tokens.txt"));
}

TEST_CASE("inspect: viridis ends and middle") {
    CHECK(viridis(0) == kViridisLow);
    CHECK(viridis(1) == kViridisHigh);
    CHECK(viridis(0.5) == kViridisMid);
    CHECK(viridis(-3) == kViridisLow);
    CHECK(viridis(7) == kViridisHigh);
}

TEST_CASE("inspect: heatmap PNG decodes with the expected size and colours") {
    // Two heads of 2 x 3; head 1 has a 1.0 at (0, 2), the rest are 0 or small.
    const Tensor w = weights_of({2, 2, 3}, {0.5f, 0.5f, 0.0f, 0.0f, 0.5f, 0.5f,  //
                                            0.0f, 0.0f, 1.0f, 0.0f, 0.5f, 0.5f});
    HeatmapOptions options;
    const Heatmap map = render_heatmap(w, options, "w.npy");
    CHECK(map.scale_top == 1.0);
    REQUIRE(map.panels.size() == 2);
    CHECK(map.panels[1].head == 1);
    CHECK(map.panels[0].width == 3 * map.panels[0].cell_width);
    CHECK(map.panels[0].height == 2 * map.panels[0].cell_height);
    CHECK(map.panels[1].x > map.panels[0].x + map.panels[0].width);  // side by side

    io::StringSink png;
    encode_png(map.image, png);
    CHECK(png.bytes().substr(0, 8) == "\x89PNG\r\n\x1a\n");
    const Image decoded = decode_png(png.bytes(), "heatmap.png");
    CHECK(decoded.width == map.image.width);
    CHECK(decoded.height == map.image.height);
    CHECK(decoded.rgb == map.image.rgb);
    Heatmap at = map;
    at.image = decoded;
    CHECK(cell_pixel(at, 1, 0, 2) == kViridisHigh);
    CHECK(cell_pixel(at, 1, 0, 0) == kViridisLow);
    CHECK(cell_pixel(at, 0, 0, 0) == kViridisMid);
    CHECK(cell_pixel(at, 0, 1, 0) == kViridisLow);

    SUBCASE("one head, with labels") {
        options.head = 1;
        options.query_labels = {{"a", "b"}, "q.txt"};
        options.key_labels = {{"x", "y", "z"}, "k.txt"};
        const Heatmap one = render_heatmap(w, options, "w.npy");
        REQUIRE(one.panels.size() == 1);
        CHECK(cell_pixel(one, 0, 0, 2) == kViridisHigh);
    }
    SUBCASE("labels of the wrong count") {
        options.key_labels = {{"x", "y"}, "k.txt"};
        CHECK(contains(error_of([&] { render_heatmap(w, options, "w.npy"); }, ErrorKind::Value),
                       "k.txt: expected 3 labels, one per key"));
    }
}

TEST_CASE("inspect: a large panel is averaged down, never cropped") {
    // 1000 x 1000 with max 512 cells a side: 2 x 2 blocks, 500 cells. Block (0, 0) is all
    // 1.0, block (0, 1) half 1.0, the rest 0.
    std::vector<float> values(1000 * 1000, 0.0f);
    values[0] = values[1] = values[1000] = values[1001] = 1.0f;
    values[2] = values[1002] = 1.0f;
    const Heatmap map = render_heatmap(weights_of({1000, 1000}, values), HeatmapOptions{}, "w.npy");
    REQUIRE(map.panels.size() == 1);
    const HeatmapPanel& p = map.panels[0];
    CHECK(p.keys_per_cell == 2);
    CHECK(p.queries_per_cell == 2);
    CHECK(p.width == 500 * p.cell_width);
    CHECK(p.height == 500 * p.cell_height);
    CHECK(cell_pixel(map, 0, 0, 0) == kViridisHigh);
    CHECK(cell_pixel(map, 0, 0, 1) == kViridisMid);
    CHECK(cell_pixel(map, 0, 499, 499) == kViridisLow);
}

TEST_CASE("inspect: heatmap ticks are thinned to round steps, the marks drawn where they say") {
    // 30 queries x 100 keys: cells of 17 x 5 px. Query labels want 40 px: every 5th query
    // (85 px); key numbers want the width of "99" and two characters, 46 px: every 10th key.
    const Heatmap map = render_heatmap(weights_of({30, 100}, std::vector<float>(3000, 0.01f)), {}, "w.npy");
    REQUIRE(map.panels.size() == 1);
    const HeatmapPanel& p = map.panels[0];
    REQUIRE(p.cell_height == 17);
    REQUIRE(p.cell_width == 5);
    std::vector<std::size_t> query_offsets, key_offsets;
    for (std::size_t i = 0; i < 6; ++i) {
        CHECK(map.query_ticks.at(i).index == 5 * i);
        query_offsets.push_back(17 * 5 * i + 8);  // the centre of the query's cell
    }
    for (std::size_t i = 0; i < 10; ++i) {
        CHECK(map.key_ticks.at(i).index == 10 * i);
        key_offsets.push_back(5 * 10 * i + 2);
    }
    CHECK(map.query_ticks.size() == 6);
    CHECK(map.key_ticks.size() == 10);
    CHECK(labels_of(map.query_ticks) == std::vector<std::string>{"0", "5", "10", "15", "20", "25"});
    CHECK(map.key_ticks[9].label == "90");

    // The marks: left of the frame (one column clear of it) and under it.
    const auto query_marks = inked(p.height, [&](std::size_t y) { return map.image.pixel(p.x - 2, p.y + y); });
    const auto key_marks = inked(p.width, [&](std::size_t x) { return map.image.pixel(p.x + x, p.y + p.height + 1); });
    CHECK(query_marks == query_offsets);
    CHECK(key_marks == key_offsets);
    for (std::size_t i = 0; i < 6; ++i) CHECK(map.query_ticks[i].offset == query_offsets[i]);
    for (std::size_t i = 0; i < 10; ++i) CHECK(map.key_ticks[i].offset == key_offsets[i]);

    SUBCASE("averaged down: ticks at index centres, half a pixel an index") {
        // 1000 x 1000 averaged 2 x 2: 0.5 px an index, so queries every 100 (50 px) and
        // keys ("999": 58 px) every 200.
        const Heatmap big =
            render_heatmap(weights_of({1000, 1000}, std::vector<float>(1000 * 1000, 0.001f)), {}, "w.npy");
        REQUIRE(big.key_ticks.size() == 5);
        REQUIRE(big.query_ticks.size() == 10);
        CHECK(big.key_ticks[4].index == 800);
        CHECK(big.key_ticks[4].offset == 400);
        CHECK(big.query_ticks[9].index == 900);
        CHECK(big.query_ticks[9].offset == 450);
    }
    SUBCASE("big cells: a label per query and key, tokens as the font can draw them") {
        HeatmapOptions options;
        options.query_labels = {{"the", "a_very_long_token", "caf\xc3\xa9"}, "q.txt"};
        options.key_labels = {{"x", "\x01y"}, "k.txt"};
        const Heatmap labelled = render_heatmap(weights_of({3, 2}, std::vector<float>(6, 0.5f)), options, "w.npy");
        CHECK(labels_of(labelled.query_ticks) == std::vector<std::string>{"the", "a_very_long~", "caf?"});
        CHECK(labels_of(labelled.key_ticks) == std::vector<std::string>{"x", "?y"});
        const HeatmapPanel& one = labelled.panels.at(0);
        CHECK(labelled.query_ticks[2].offset == 2 * one.cell_height + one.cell_height / 2);
        CHECK(labelled.key_ticks[1].offset == one.cell_width + one.cell_width / 2);
    }
}

TEST_CASE("inspect: the colour bar runs from 0 to the scale top, ticks at round values") {
    SUBCASE("top 1: steps of 0.2") {
        const Heatmap map = render_heatmap(weights_of({2, 2, 3}, {0.5f, 0.5f, 0.0f, 0.0f, 0.5f, 0.5f,  //
                                                                  0.0f, 0.0f, 1.0f, 0.0f, 0.5f, 0.5f}),
                                           {}, "w.npy");
        const HeatmapColourBar& bar = map.colour_bar;
        CHECK(bar.x > map.panels.at(1).x + map.panels.at(1).width);  // right of the grid
        CHECK(bar.y == map.panels.at(0).y);                          // level with the first row
        CHECK(bar.height == 160);                                    // the panels are 96 px tall
        CHECK(bar.x + bar.width < map.image.width);
        CHECK(labels_of(bar.ticks) == std::vector<std::string>{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"});
        std::vector<std::size_t> rows;
        for (const HeatmapScaleTick& tick : bar.ticks) rows.push_back(tick.y - bar.y);
        CHECK(rows == std::vector<std::size_t>{159, 127, 95, 64, 32, 0});  // (1 - v) * 159, rounded
        CHECK(bar.ticks[3].value == doctest::Approx(0.6));
        // The gradient, and the marks just right of its frame.
        CHECK(map.image.pixel(bar.x, bar.y) == kViridisHigh);
        CHECK(map.image.pixel(bar.x + bar.width - 1, bar.y + bar.height - 1) == kViridisLow);
        const auto marks =
            inked(bar.height, [&](std::size_t y) { return map.image.pixel(bar.x + bar.width + 1, bar.y + y); });
        CHECK(marks == std::vector<std::size_t>{0, 32, 64, 95, 127, 159});
    }
    SUBCASE("top 0.37: steps of 0.1, the top left unlabelled") {
        const Heatmap map = render_heatmap(weights_of({1, 1}, {0.37f}), {}, "w.npy");
        CHECK(map.scale_top == doctest::Approx(0.37));
        CHECK(labels_of(map.colour_bar.ticks) == std::vector<std::string>{"0.0", "0.1", "0.2", "0.3"});
        CHECK(map.colour_bar.ticks.back().y > map.colour_bar.y);
    }
    SUBCASE("top 3: whole numbers") {
        const Heatmap map = render_heatmap(weights_of({1, 2}, {3.0f, 1.0f}), {}, "w.npy");
        CHECK(labels_of(map.colour_bar.ticks) == std::vector<std::string>{"0", "1", "2", "3"});
        CHECK(map.colour_bar.ticks.back().y == map.colour_bar.y);
    }
}

TEST_CASE("inspect: heatmap of empty weights is a shape error") {
    CHECK(contains(error_of(
                       [] {
                           render_heatmap(Tensor(xt::xarray<float>::from_shape({2, 0, 3})), {}, "w.npy");
                       },
                       ErrorKind::Shape),
                   "nothing to draw"));
}

TEST_CASE("inspect: the terminal rendering fits its width") {
    const Tensor small = weights_of({2, 2}, {1.0f, 0.0f, 0.0f, 1.0f});
    AnsiOptions options;
    options.width = 40;
    const std::string text = render_ansi(small, options, "w.npy");
    CHECK(contains(text, "w.npy: batch 0, head 0"));
    CHECK(contains(text, "\x1b[38;2;253;231;37m"));  // the 1.0 cells, #fde725
    CHECK(contains(text, "\x1b[48;2;68;1;84m"));     // the 0.0 cells, #440154

    // 300 keys into 60 columns: averaged 5 x 5, so 60 cells a line after the index.
    const Tensor wide = weights_of({300, 300}, std::vector<float>(300 * 300, 1.0f / 300));
    options.width = 64;
    const std::string map = render_ansi(wide, options, "w.npy");
    CHECK(contains(map, "each cell averages 5 x 5"));
    std::size_t lines = 0;
    for (std::size_t start = map.find('\n') + 1; start < map.size();) {
        const std::size_t end = map.find('\n', start);
        const std::string line = map.substr(start, end - start);
        std::size_t blocks = 0;
        for (std::size_t at = line.find("\u2580"); at != std::string::npos; at = line.find("\u2580", at + 1)) ++blocks;
        if (blocks > 0) {
            CHECK(blocks == 60);
            ++lines;
        }
        start = end + 1;
    }
    CHECK(lines == 30);  // 60 cell rows, two a line
}

TEST_CASE("inspect: PNG round trip and bad input") {
    Image image(3, 2, 0x102030);
    image.set_pixel(2, 1, 0xff0080);
    io::StringSink sink;
    encode_png(image, sink);
    const Image back = decode_png(sink.bytes(), "x.png");
    CHECK(back.width == 3);
    CHECK(back.height == 2);
    CHECK(back.pixel(0, 0) == 0x102030);
    CHECK(back.pixel(2, 1) == 0xff0080);
    CHECK(contains(error_of([] { decode_png("not a png", "x.png"); }, ErrorKind::Format), "x.png"));
    CHECK(contains(error_of([&] { decode_png(sink.bytes().substr(0, 40), "cut.png"); }, ErrorKind::Format), "cut.png"));
    CHECK(contains(error_of(
                       [] {
                           io::StringSink s;
                           encode_png(Image{}, s);
                       },
                       ErrorKind::Value),
                   "image"));
}
