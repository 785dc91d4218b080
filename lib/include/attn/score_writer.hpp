// attn/score_writer.hpp - attention weights or logits streamed into a file as they are
// computed.
//
// The kernel hands a ScoreSink blocks of whole rows from several threads in any order.
// StreamingScoreWriter encodes each block (.npy or JSON) on the thread that computed it,
// then writes it once the blocks before it are written, so a (…, L, S) tensor of many
// gigabytes goes to disk while memory holds only a few blocks. Archives (.npz,
// .safetensors) need the whole tensor and are not streamed.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>

#include "attn/attention.hpp"
#include "attn/io.hpp"
#include "attn/tensor.hpp"

namespace attn {

class StreamingScoreWriter final : public TypedScoreSink<StreamingScoreWriter> {
public:
    // `out` must outlive the writer; `name` is what errors call the output.
    StreamingScoreWriter(io::ByteSink& out, io::Format format, io::JsonLayout layout, std::string name);

    // Whether this format can be streamed: .npy and JSON.
    static bool streams(io::Format format) noexcept { return format == io::Format::Npy || format == io::Format::Json; }

    void begin(DType dtype, const Shape& shape) override;
    // Wakes every block waiting for its turn; they throw, and so does every later call.
    void cancel() noexcept override;
    // After the computation: checks that every row came, then writes the end of the file.
    void finish();

private:
    friend class TypedScoreSink<StreamingScoreWriter>;
    template <class T>
    void write_block(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const T* values);
    [[noreturn]] void throw_cancelled() const;  // the write error if there was one

    io::ByteSink& out_;
    io::Format format_;
    io::JsonLayout layout_;
    std::string name_;
    DType dtype_ = DType::Float32;
    Shape shape_;
    std::size_t rows_per_matrix_ = 0, row_length_ = 0, total_rows_ = 0;
    bool whole_ = false;  // no elements: written whole by begin()

    std::mutex mutex_;
    std::condition_variable turn_;
    std::size_t next_row_ = 0;  // the first row not yet written
    bool cancelled_ = false;
    std::exception_ptr write_failure_;
};

}  // namespace attn
