// TensorScoreSink: the ScoreSink that collects weights or logits into one tensor (the
// streaming one, StreamingScoreWriter, is in score_writer.cpp).
#include <algorithm>

#include "attn/attention.hpp"

namespace attn {

void TensorScoreSink::begin(DType dtype, const Shape& shape) {
    tensor_ = Tensor::empty(dtype, shape);
    row_size_ = shape.back();
    matrix_size_ = row_size_ * shape[shape.size() - 2];
}

template <class T>
void TensorScoreSink::write_block(std::size_t matrix, std::size_t row_begin, std::size_t row_count, const T* values) {
    T* out = tensor_.values<T>().data() + matrix * matrix_size_ + row_begin * row_size_;
    std::copy(values, values + row_count * row_size_, out);
}

template void TensorScoreSink::write_block<float>(std::size_t, std::size_t, std::size_t, const float*);
template void TensorScoreSink::write_block<double>(std::size_t, std::size_t, std::size_t, const double*);

}  // namespace attn
