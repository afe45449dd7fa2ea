#pragma once
/// \file
/// `sentencepiece` tokenizer: a trained SentencePiece model (unigram or BPE).

#include <contra/roles/tokenizer.hpp>
#include <contra/schema.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace contra::plugins {

/// Token ids are the model's piece ids. The model's unk is contra's unk;
/// its pad, bos and eos are contra's when the model has them, and each one it
/// lacks (spm_train's defaults have no pad) gets an id past the model's
/// pieces, in the order pad, bos, eos. The model is loaded once and only read
/// afterwards: encode() and decode() are thread-safe.
class SentencePieceTokenizer final : public contra::Tokenizer {
 public:
  static contra::Schema schema();
  /// Loads the model; throws ConfigError naming the file when it is missing,
  /// unreadable or not a SentencePiece model.
  explicit SentencePieceTokenizer(const contra::Params& p);
  ~SentencePieceTokenizer() override;

  contra::Vocabulary vocabulary() const override { return vocabulary_; }
  void encode(std::string_view text, std::vector<std::int32_t>& out) const override;
  /// The model's decoding of `tokens` with the special ids, and ids that are
  /// no piece of the model, left out.
  std::string decode(const std::vector<std::int32_t>& tokens) const override;

  /// Pieces in the model (the vocabulary may hold up to three ids more).
  std::int64_t pieces() const noexcept { return pieces_; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> model_;
  std::int64_t pieces_ = 0;
  contra::Vocabulary vocabulary_;
};

}  // namespace contra::plugins
