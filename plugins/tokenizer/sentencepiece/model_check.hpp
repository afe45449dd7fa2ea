#pragma once
/// \file
/// Checks of the parts of a SentencePiece model that libsentencepiece reads
/// without bounds checks.

#include <string>
#include <string_view>

namespace contra::plugins::sentencepiece_model {

/// Why the serialized ModelProto `model` is unsafe to use, or "" when it is
/// safe. SentencePiece 0.1.x follows the double-array trie of a model's
/// precompiled normalization map (NormalizerSpec.precompiled_charsmap, in
/// ModelProto's normalizer_spec and denormalizer_spec) without checking its
/// indices, so a damaged map crashes Encode(). This walks every state of
/// that trie once and checks that each read Encode() can make stays inside
/// the map: any input bytes are then safe. `model` must already have loaded
/// in SentencePiece (it is well-formed protobuf). Never throws for any bytes.
std::string unsafe_reason(std::string_view model);

}  // namespace contra::plugins::sentencepiece_model
