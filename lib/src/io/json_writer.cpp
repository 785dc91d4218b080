// JSON tensors written (docs/formats.md, "JSON tensors"): encode_json, encode_json_archive
// and the row-block pieces of json_rows.hpp.
//
// Output streams through a fixed chunk buffer into the ByteSink; every number is the
// shortest text that reads back to the same value (float_format.hpp), non-finite values
// spelt as Python's json spells them, and large tensors are formatted on every core.

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "attn/error.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"
#include "common/text.hpp"
#include "io/element_decode.hpp"
#include "io/float_format.hpp"
#include "io/json_rows.hpp"

namespace attn::io {
namespace {

// Output is handed to the sink in pieces of this size, so writing needs no more memory
// than the tensor itself plus one chunk.
constexpr std::size_t kWriteChunk = std::size_t{1} << 20;

// Enough room for any one formatted element: the room format_shortest needs (its text is
// at most 24 characters, ".0" may follow it) and any integer's to_chars text.
constexpr std::size_t kMaxElementText = 40;
static_assert(kMaxElementText >= attn::detail::kShortestTextRoom);

// The most empty arrays the nested layout writes for a tensor without elements.
constexpr std::size_t kMaxEmptyArrays = std::size_t{1} << 24;
// Elements a thread formats at a time when a large tensor is written in parallel.
constexpr std::size_t kParallelBlockElements = std::size_t{1} << 18;

// Collects output in one fixed chunk and hands it to the sink each time it fills.
class ChunkWriter {
public:
    explicit ChunkWriter(ByteSink& sink) : sink_(sink), buffer_(new char[kWriteChunk]) {}

    void put(std::string_view text) {
        if (text.size() > kWriteChunk - size_) {
            flush();
            if (text.size() > kWriteChunk) {  // straight through, still in chunks
                for (std::size_t at = 0; at < text.size(); at += kWriteChunk) {
                    sink_.write(text.data() + at, std::min(kWriteChunk, text.size() - at));
                }
                return;
            }
        }
        std::memcpy(buffer_.get() + size_, text.data(), text.size());
        size_ += text.size();
    }
    void put(char c) {
        *reserve(1) = c;
        ++size_;
    }

    // Room for `size` bytes at the returned pointer; commit() says how many were used.
    char* reserve(std::size_t size) {
        if (kWriteChunk - size_ < size) flush();
        return buffer_.get() + size_;
    }
    void commit(char* end) { size_ = static_cast<std::size_t>(end - buffer_.get()); }

    void flush() {
        if (size_ > 0) sink_.write(buffer_.get(), size_);
        size_ = 0;
    }

private:
    ByteSink& sink_;
    std::unique_ptr<char[]> buffer_;
    std::size_t size_ = 0;
};

void put_repeated(ChunkWriter& writer, char c, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) writer.put(c);
}

char* put_word(char* out, std::string_view word) {
    std::memcpy(out, word.data(), word.size());
    return out + word.size();
}

// One element at `out` (kMaxElementText bytes of room). `mark_float` adds ".0" to an
// integral-looking float so that bare arrays read back as floats (json gives int, and
// torch.tensor/np.array an integer dtype, for "1"); the object form names its dtype.
template <class T>
char* format_element(char* out, T value, bool mark_float) {
    if constexpr (is_half_v<T>) {
        return format_element(out, static_cast<float>(value), mark_float);  // exact
    } else if constexpr (std::is_same_v<T, bool>) {
        return put_word(out, value ? "true" : "false");
    } else if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(value)) return put_word(out, "NaN");
        if (std::isinf(value)) return put_word(out, value > 0 ? "Infinity" : "-Infinity");
        char* end = attn::detail::format_shortest(out, value);
        // "-0" would read back as the integer 0 and lose the sign: always write "-0.0".
        // Only an integral value can print without '.' or 'e'; testing that first keeps
        // the scan off the path of every other value.
        if ((mark_float || value == 0) && value == std::trunc(value)) {
            bool integral_looking = true;
            for (const char* q = out; q < end; ++q) {
                if (*q == '.' || *q == 'e') {
                    integral_looking = false;
                    break;
                }
            }
            if (integral_looking && (mark_float || std::signbit(value))) {
                *end++ = '.';
                *end++ = '0';
            }
        }
        return end;
    } else {
        return std::to_chars(out, out + kMaxElementText, value).ptr;
    }
}

// Rows [first, last) of a tensor of this shape as nested-array text, with the brackets
// and separators before each row (none before row 0: the caller opened `rank` levels).
// `values` holds row `first` onwards; a row is the last dimension of the first `rank`.
template <class T>
void format_rows(ChunkWriter& writer, const T* values, const Shape& shape, std::size_t rank, std::size_t first,
                 std::size_t last, bool mark_float) {
    const std::size_t row_length = shape[rank - 1];
    // The odometer starts at the index of row first − 1, whose brackets came before.
    std::vector<std::size_t> index(rank);  // over the outer dimensions
    for (std::size_t d = rank - 1, rest = first == 0 ? 0 : first - 1; d-- > 0;) {
        index[d] = rest % shape[d];
        rest /= shape[d];
    }
    for (std::size_t row = first; row < last; ++row, values += row_length) {
        if (row > 0) {
            std::size_t levels = 1;  // the row itself and every outer level that wrapped
            for (std::size_t d = rank - 1; d-- > 0;) {
                if (++index[d] < shape[d]) break;
                index[d] = 0;
                ++levels;
            }
            put_repeated(writer, ']', levels);
            writer.put(", ");
            put_repeated(writer, '[', levels);
        }
        for (std::size_t i = 0; i < row_length; ++i) {
            char* out = writer.reserve(kMaxElementText + 2);
            if (i > 0) {
                *out++ = ',';
                *out++ = ' ';
            }
            writer.commit(format_element(out, values[i], mark_float));
        }
    }
}

// The levels the nested layout writes for a tensor of this shape: arrays inside an
// empty one have no elements, so the levels down to the first 0.
std::size_t written_rank(const Shape& shape) {
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 0) return d + 1;
    }
    return shape.size();
}

// The innermost arrays of the first `rank` levels of the shape. Without elements the text
// is not bounded by the tensor's memory: (1, 10^11, 0) is 10^11 empty arrays. Refuses
// what no reader could want.
std::size_t written_rows(const Shape& shape, std::size_t rank) {
    const std::size_t row_length = shape[rank - 1];
    std::size_t rows = 1;
    for (std::size_t d = 0; d + 1 < rank; ++d) {
        if (row_length == 0 && rows > kMaxEmptyArrays / shape[d]) {
            throw Error(ErrorKind::Value, Arg::JsonLayout,
                        "a tensor of shape " + shape_to_string(shape) +
                            " has no elements but would be written as more than " + std::to_string(kMaxEmptyArrays) +
                            " empty arrays; write the object layout instead");
        }
        rows *= shape[d];
    }
    return rows;
}

// Rows [0, rows) as format_rows writes them. Formatting numbers is nearly all the cost:
// blocks of rows are formatted on every core, a wave of blocks at a time (memory stays
// bounded), and written in order.
template <class T>
void format_rows_in_parallel(ChunkWriter& writer, const T* data, const Shape& shape, std::size_t rank, std::size_t rows,
                             bool mark_float) {
    const std::size_t row_length = shape[rank - 1];
    const std::size_t block_rows =
        std::max<std::size_t>(1, kParallelBlockElements / std::max<std::size_t>(1, row_length));
    const std::size_t blocks = (rows + block_rows - 1) / block_rows;
    const int threads = blocks > 1 ? omp_get_max_threads() : 1;
    if (threads <= 1) {
        format_rows(writer, data, shape, rank, 0, rows, mark_float);
        return;
    }
    std::vector<StringSink> parts(static_cast<std::size_t>(threads));
    for (std::size_t wave = 0; wave < blocks; wave += parts.size()) {
        const std::size_t wave_blocks = std::min(parts.size(), blocks - wave);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
        for (std::size_t k = 0; k < wave_blocks; ++k) {
            const std::size_t first = (wave + k) * block_rows;
            StringSink& part = parts[k];
            part = StringSink();
            ChunkWriter block_writer(part);
            format_rows(block_writer, data + first * row_length, shape, rank, first, std::min(rows, first + block_rows),
                        mark_float);
            block_writer.flush();
        }
        writer.flush();
        for (std::size_t k = 0; k < wave_blocks; ++k) writer.put(parts[k].bytes());
    }
}

// The data as nested arrays, "[[1, 2], [3, 4]]" (Python's json.dumps separators).
template <class T>
void write_nested(ChunkWriter& writer, const T* data, const Shape& shape, bool mark_float) {
    if (shape.empty()) {
        writer.commit(format_element(writer.reserve(kMaxElementText), data[0], mark_float));
        return;
    }
    const std::size_t rank = written_rank(shape);
    const std::size_t rows = written_rows(shape, rank);
    put_repeated(writer, '[', rank);
    format_rows_in_parallel(writer, data, shape, rank, rows, mark_float);
    put_repeated(writer, ']', rank);
}

// What the object layout writes before the data: {"shape": [2, 3], "dtype": "float32", "data":
std::string object_head(DType dtype, const Shape& shape) {
    std::string head = R"({"shape": [)";
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (d > 0) head += ", ";
        head += std::to_string(shape[d]);
    }
    head += R"(], "dtype": ")";
    head += dtype_name(dtype);
    head += R"(", "data": )";
    return head;
}

void write_tensor_json(ChunkWriter& writer, const Tensor& tensor, JsonLayout layout) {
    const Shape shape = tensor.shape();
    attn::detail::check_rank(shape.size(), ErrorKind::Value, "tensor", "its shape");
    if (layout == JsonLayout::Object) writer.put(object_head(tensor.dtype(), shape));
    if (layout == JsonLayout::Object && tensor.size() == 0 && !shape.empty()) {
        // Flat and empty: the shape says the rest, and nested empties could be any size.
        writer.put("[]}");
        return;
    }
    tensor.visit([&](const auto& values) { write_nested(writer, values.data(), shape, layout == JsonLayout::Nested); });
    if (layout == JsonLayout::Object) writer.put('}');
}

}  // namespace

namespace detail {

std::string json_open(DType dtype, const Shape& shape, JsonLayout layout) {
    return (layout == JsonLayout::Object ? object_head(dtype, shape) : std::string()) + std::string(shape.size(), '[');
}

std::string json_close(const Shape& shape, JsonLayout layout) {
    return std::string(shape.size(), ']') + (layout == JsonLayout::Object ? "}\n" : "\n");
}

template <class T>
void json_rows(const T* values, const Shape& shape, std::size_t first, std::size_t count, JsonLayout layout,
               ByteSink& out) {
    ChunkWriter writer(out);
    format_rows(writer, values, shape, shape.size(), first, first + count, layout == JsonLayout::Nested);
    writer.flush();
}

template void json_rows<float>(const float*, const Shape&, std::size_t, std::size_t, JsonLayout, ByteSink&);
template void json_rows<double>(const double*, const Shape&, std::size_t, std::size_t, JsonLayout, ByteSink&);

}  // namespace detail

void encode_json(const Tensor& tensor, ByteSink& sink, JsonLayout layout) {
    ChunkWriter writer(sink);
    write_tensor_json(writer, tensor, layout);
    writer.put('\n');
    writer.flush();
}

void encode_json_archive(const NamedTensors& tensors, ByteSink& sink) {
    ChunkWriter writer(sink);
    writer.put('{');
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        writer.put(i == 0 ? "\n" : ",\n");
        writer.put(attn::detail::json_quote(tensors[i].first));
        writer.put(": ");
        write_tensor_json(writer, tensors[i].second, JsonLayout::Object);
    }
    writer.put(tensors.empty() ? "}\n" : "\n}\n");
    writer.flush();
}

}  // namespace attn::io
