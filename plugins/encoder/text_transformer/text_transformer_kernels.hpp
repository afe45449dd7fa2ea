#pragma once
// text_transformer's own kernels for its GPU build (text_transformer_kernels.cu),
// queued on `stream` (a cudaStream_t). No CUDA header here.

#include <cstdint>

namespace contra::plugins::text_kernels {

/// h[i] = token_embedding[ids[i]] + positional_embedding[i mod L] for the
/// rows·L positions; h [rows·L, width].
void embed(const std::int32_t* ids, const float* token_embedding, const float* positional_embedding,
           std::int64_t rows, std::int64_t length, std::int64_t width, float* h, void* stream);
/// The pooled row of each text: its eos position (valid[r] − 1), or the mean
/// of its valid positions (`mean`).
void pool(const float* h, const std::int32_t* valid, std::int64_t rows, std::int64_t length, std::int64_t width,
          bool mean, float* pooled, void* stream);
/// pool() backwards into dh [rows·L, width] (every other position 0).
void unpool(const float* dpooled, const std::int32_t* valid, std::int64_t rows, std::int64_t length,
            std::int64_t width, bool mean, float* dh, void* stream);
/// Adds dh's valid positions into the embeddings' gradients: each column's
/// sums run over the positions in order (no atomics: the same bits every run).
void embedding_backward(const float* dh, const std::int32_t* ids, const std::int32_t* valid, std::int64_t rows,
                        std::int64_t length, std::int64_t width, float* token_grad, float* positional_grad,
                        void* stream);
/// The last launch's error (cudaGetErrorString), or "" when none.
const char* last_error();

}  // namespace contra::plugins::text_kernels
