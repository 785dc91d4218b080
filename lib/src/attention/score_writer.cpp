#include "attn/score_writer.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "io/json_rows.hpp"

namespace attn {

StreamingScoreWriter::StreamingScoreWriter(io::ByteSink& out, io::Format format, io::JsonLayout layout,
                                           std::string name)
    : out_(out), format_(format), layout_(layout), name_(std::move(name)) {
    if (!streams(format)) throw Error(ErrorKind::Usage, name_, "only .npy and JSON outputs can be streamed");
}

void StreamingScoreWriter::begin(DType dtype, const Shape& shape) {
    dtype_ = dtype;
    shape_ = shape;
    row_length_ = shape.back();
    rows_per_matrix_ = shape[shape.size() - 2];
    total_rows_ = checked_element_count(shape, name_) / std::max<std::size_t>(row_length_, 1);
    whole_ = checked_element_count(shape, name_) == 0;
    io::WriteOptions options;
    options.json_layout = layout_;
    if (whole_) {  // nothing will come: the encoders write an empty tensor their own way
        total_rows_ = 0;
        io::encode_tensor(Tensor::empty(dtype, shape), format_, out_, options);
        return;
    }
    // The whole file is known before any row: reserve it, so that a disk too small fails
    // now rather than gigabytes later (JSON: at least "0, " per value).
    const std::uint64_t values = std::min<std::uint64_t>(checked_element_count(shape, name_), UINT64_MAX / 8);
    if (format_ == io::Format::Npy) {
        const std::string header = io::npy_header(dtype, shape);
        out_.expect(header.size() + values * dtype_size(dtype));
        out_.write(header);
    } else {
        out_.expect(values * 3);
        out_.write(io::detail::json_open(dtype, shape, layout_));
    }
}

template <class T>
void StreamingScoreWriter::write_block(std::size_t matrix, std::size_t row_begin, std::size_t row_count,
                                       const T* values) {
    if (whole_) return;
    if (dtype_of<T>::value != dtype_) {
        throw Error(ErrorKind::Value, name_,
                    "rows of " + std::string(dtype_name(dtype_of<T>::value)) + " for a " +
                        std::string(dtype_name(dtype_)) + " tensor");
    }
    const std::size_t first = matrix * rows_per_matrix_ + row_begin;
    // Encode before taking the turn: formatting text is the costly part and runs on
    // every thread at once; only the writes are in order.
    io::StringSink text;
    if (format_ == io::Format::Json) io::detail::json_rows(values, shape_, first, row_count, layout_, text);
    std::unique_lock<std::mutex> lock(mutex_);
    turn_.wait(lock, [&] { return cancelled_ || next_row_ == first; });
    if (cancelled_) throw_cancelled();
    try {
        if (format_ == io::Format::Json) {
            out_.write(text.bytes());
        } else {  // little-endian host (element_decode.cpp): the values are the npy data
            out_.write(reinterpret_cast<const char*>(values), row_count * row_length_ * sizeof(T));
        }
    } catch (...) {
        // The file is broken: release the others, with this error (whichever thread's
        // error the caller reports, it is this one, not "cancelled").
        write_failure_ = std::current_exception();
        cancelled_ = true;
        turn_.notify_all();
        throw;
    }
    next_row_ += row_count;
    turn_.notify_all();
}

void StreamingScoreWriter::cancel() noexcept {
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        cancelled_ = true;
    }
    turn_.notify_all();
}

void StreamingScoreWriter::throw_cancelled() const {
    if (write_failure_) std::rethrow_exception(write_failure_);
    throw Error(ErrorKind::Io, name_, "writing was cancelled");
}

void StreamingScoreWriter::finish() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (cancelled_) throw_cancelled();
    if (next_row_ != total_rows_) {
        throw Error(ErrorKind::Value, name_,
                    "expected " + std::to_string(total_rows_) + " rows, found " + std::to_string(next_row_));
    }
    if (!whole_ && format_ == io::Format::Json) out_.write(io::detail::json_close(shape_, layout_));
}

template void StreamingScoreWriter::write_block<float>(std::size_t, std::size_t, std::size_t, const float*);
template void StreamingScoreWriter::write_block<double>(std::size_t, std::size_t, std::size_t, const double*);

}  // namespace attn
