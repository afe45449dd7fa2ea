#pragma once
// @NAME@: a contra memory plugin (a first-in first-out queue of normalised embeddings).

#include <contra/roles/memory.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::Memory {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

  void configure(const contra::MemoryContext& ctx) override;
  const contra::MemoryView& view() const override { return view_; }
  void update(const contra::Embeddings& batch) override;
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;

 private:
  std::int64_t size_, next_ = 0;
  contra::Tensor keys_;
  std::vector<std::int64_t> ids_;
  contra::MemoryView view_;
};
