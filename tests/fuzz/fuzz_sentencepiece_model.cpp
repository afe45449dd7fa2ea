// The sentencepiece tokenizer on the bytes as its .model file. First
// model_check's unsafe_reason() on the raw bytes, which promises never to
// throw for any bytes (the tokenizer calls it only on what libsentencepiece
// loaded, a narrower set the fuzzer rarely leaves). Then the tokenizer, as
// contra opens it: libsentencepiece loads the bytes, model_check refuses
// what would crash Encode(), the special ids are assigned; a model it accepts
// encodes a fixed sentence (which reaches the normalizer's trie) into ids of
// its vocabulary, and decodes them (which reaches the denormalizer's).
#include "fuzz_support.hpp"

#include "model_check.hpp"
#include "sentencepiece.hpp"

#include <string>
#include <vector>

using namespace contra;
using namespace std::string_literals;

namespace {

// Words, punctuation, digits, letters NFKC changes (fullwidth, a ligature),
// a CJK word, an emoji, invalid UTF-8 and a NUL byte.
const std::string sentence =
    "The quick brown fox, 12345 caf\xc3\xa9 \xef\xbc\xa1\xef\xbd\x82 \xef\xac\x81ne "
    "\xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80 \xff\xfe broken \x80 utf-8 \0 end"s;

void exercise(const plugins::SentencePieceTokenizer& tokenizer) {
  const Vocabulary vocabulary = tokenizer.vocabulary();
  std::vector<std::int32_t> ids;
  tokenizer.encode(sentence, ids);
  for (const std::int32_t id : ids)
    if (id < 0 || id >= vocabulary.size || id == vocabulary.pad || id == vocabulary.bos || id == vocabulary.eos)
      fuzz::finding("encode() made id " + std::to_string(id) + ", not a piece of the vocabulary of " +
                    std::to_string(vocabulary.size) + " ids");
  (void)tokenizer.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::bytes_of(data, size);
  fuzz::run_reader([&] { (void)plugins::sentencepiece_model::unsafe_reason(bytes); });
  const std::string input = fuzz::write_file("input.model", bytes);
  const Schema schema = plugins::SentencePieceTokenizer::schema();
  fuzz::run_reader([&] { exercise(plugins::SentencePieceTokenizer(schema.bind({{"model", input}}))); }, input);
  return 0;
}
