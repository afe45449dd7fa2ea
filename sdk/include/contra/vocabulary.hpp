#pragma once
/// \file
/// A tokenizer's vocabulary, as text encoders see it.

#include <cstdint>

namespace contra {

/// Token ids are 0 .. size-1; the four special ids are distinct.
struct Vocabulary {
  std::int64_t size = 0;  ///< 0: no tokens (not a text input)
  std::int32_t pad = 0;   ///< fills a row after `eos`
  std::int32_t bos = 1;   ///< first token of every row
  std::int32_t eos = 2;   ///< after the text's last token (text encoders pool here)
  std::int32_t unk = 3;   ///< what the tokenizer makes of what it cannot encode
};

}  // namespace contra
