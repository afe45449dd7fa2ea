#pragma once
/// \file
/// hardest_k on the GPU: the same pairs, parameters and checks as the CPU
/// build (hardest_k.hpp, README.md), for embeddings on Device::cuda.

#include "hardest_k.hpp"

#include <contra/roles/miner.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>

namespace contra::plugins {

struct HardestKCudaState;

/// Per chunk of anchor rows, their similarities to the K memory keys by one
/// cuBLAS product (TF32 or bf16 products when contra::cuda::math_mode()
/// asks), then one thread block per anchor selects its k hardest keys by a
/// radix select over 64-bit keys (the similarity's order-preserving bits
/// above the complemented key index, so that equal similarities go to the
/// lower key, as on the CPU; NaN counts as −inf, empty slots and the anchor's
/// own sample are left out). Only the chosen keys (8 bytes each) come back;
/// the host orders each anchor's k, hardest first. Memory keys on the host (a
/// CPU memory) are copied to the GPU first.
class HardestKCuda final : public contra::Miner {
 public:
  /// The CPU build's schema: the two builds take the same TOML table.
  static contra::Schema schema() { return HardestK::schema(); }
  explicit HardestKCuda(const contra::Params& p);
  ~HardestKCuda() override;

  /// z.z: [M, D] f32 on cuda; z.memory's keys on either device; the rest as
  /// the CPU build. Runs on contra::cuda::current_stream() and synchronises
  /// it once per chunk, to read the choices back.
  contra::MinedLists mined_lists() const override {
    contra::MinedLists l;
    l.declared = true;
    l.positive = true;
    l.memory_negative = true;
    return l;
  }
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  std::int64_t k_;
  std::int64_t chunk_;
  std::unique_ptr<HardestKCudaState> state_;
};

}  // namespace contra::plugins
