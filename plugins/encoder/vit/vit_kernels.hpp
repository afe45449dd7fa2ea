#pragma once
// vit's own kernels for its GPU build (vit_kernels.cu), queued on `stream`
// (a cudaStream_t). No CUDA header here. Images are [N, C, H, W]; patch rows
// [N·P, C·p·p] with P = (H/p)·(W/p) patches row-major over the grid, their
// features in (channel, y, x) order, as the CPU build lays them out.

#include <cstdint>

namespace contra::plugins::vit_kernels {

struct PatchGrid {
  std::int64_t images, channels, height, width, patch;
  std::int64_t grid_w() const { return width / patch; }
  std::int64_t patches() const { return (height / patch) * (width / patch); }
  std::int64_t features() const { return channels * patch * patch; }
};

/// Images → patch rows.
void extract_patches(const float* images, const PatchGrid& g, float* patches, void* stream);
/// Patch rows → images (patches do not overlap: each pixel is one entry).
void fold_patches(const float* patches, const PatchGrid& g, float* images, void* stream);
/// tokens [N·L, width] (L = P + 1): the class embedding, then the embedded
/// patches [N·P, width], each plus its positional embedding.
void assemble_tokens(const float* embedded_patches, const float* class_embedding, const float* positional_embedding,
                     std::int64_t images, std::int64_t length, std::int64_t width, float* tokens, void* stream);
/// assemble_tokens() backwards: adds into the class and positional
/// embeddings' gradients (sums over the images in order) and writes the
/// patch rows' gradients [N·P, width].
void token_backward(const float* dtokens, std::int64_t images, std::int64_t length, std::int64_t width,
                    float* class_grad, float* positional_grad, float* dpatch_rows, void* stream);
/// The class token's row of each image, or the mean of its L rows.
void pool(const float* h, std::int64_t images, std::int64_t length, std::int64_t width, bool mean, float* pooled,
          void* stream);
/// pool() backwards into dh [N·L, width].
void unpool(const float* dpooled, std::int64_t images, std::int64_t length, std::int64_t width, bool mean, float* dh,
            void* stream);
/// The last launch's error (cudaGetErrorString), or "" when none.
const char* last_error();

}  // namespace contra::plugins::vit_kernels
