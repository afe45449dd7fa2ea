// The tokenizer against SentencePiece's own command-line tools: the tests
// train tiny models with spm_train and compare contra's ids with spm_encode's
// on the same sentences. Without spm_train they skip, saying so.
#include "sentencepiece.hpp"

#include <test_support.hpp>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

using contra::ConfigError;
using contra::plugins::SentencePieceTokenizer;
using contra::test::TempDir;
using contra::test::read_file;
using contra::test::write_file;

namespace {

bool have_spm_tools() { return std::system("command -v spm_train >/dev/null 2>&1 && command -v spm_encode >/dev/null 2>&1") == 0; }

#define REQUIRE_SPM_TOOLS()                                                                     \
  if (!have_spm_tools()) {                                                                      \
    WARN("SKIPPED: spm_train / spm_encode not installed (Debian: apt-get install sentencepiece)"); \
    return;                                                                                     \
  }

SentencePieceTokenizer open(const std::string& model) {
  return SentencePieceTokenizer(SentencePieceTokenizer::schema().bind({{"model", model}}));
}

/// Deterministic English-like sentences over a small vocabulary, a few with
/// accented letters, for training.
std::string training_corpus() {
  const char* words[] = {"the",   "quick", "brown",  "fox",    "jumps",  "over",   "lazy",    "dog",  "a",
                         "cat",   "sat",   "on",     "mat",    "red",    "green",  "blue",    "sky",  "is",
                         "under", "tree",  "river",  "flows",  "slowly", "past",   "old",     "mill", "and",
                         "birds", "sing",  "caf\xc3\xa9", "na\xc3\xafve", "stra\xc3\x9f" "e", "running", "walked", "quickly",
                         "contrastive", "learning", "image", "text", "pairs"};
  const std::size_t n = sizeof words / sizeof words[0];
  std::uint64_t state = 12345;
  std::string corpus;
  for (int line = 0; line < 600; ++line) {
    const int length = 4 + line % 9;
    for (int w = 0; w < length; ++w) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      corpus += (w ? " " : "") + std::string(words[(state >> 33) % n]);
    }
    corpus += line % 3 == 0 ? ".\n" : "\n";
  }
  return corpus;
}

/// Sentences to encode: seen and unseen words, punctuation, digits, letters
/// the training text never had (unk), repeated spaces.
const std::vector<std::string>& test_sentences() {
  static const std::vector<std::string> s = {
      "the quick brown fox jumps over the lazy dog.",
      "contrastive learning of image text pairs",
      "a caf\xc3\xa9 by the river",
      "unseen words like zebra and quixotic",
      "digits 12345 and punctuation!? (yes)",
      "\xe6\xbc\xa2\xe5\xad\x97 and \xf0\x9f\x98\x80 are unknown here",
      "  spaces   between   words  ",
      "x",
  };
  return s;
}

/// A model trained by spm_train in `dir` from training_corpus(); `options`
/// are more spm_train flags. Returns the .model path.
std::string train(const TempDir& dir, const std::string& name, const std::string& options) {
  const std::string corpus = dir.file("corpus.txt");
  if (!std::filesystem::exists(corpus)) write_file(corpus, training_corpus());
  const std::string prefix = dir.file(name);
  const std::string command = "spm_train --input='" + corpus + "' --model_prefix='" + prefix +
                              "' --vocab_size=120 --hard_vocab_limit=false --character_coverage=1.0 " + options +
                              " >'" + prefix + ".log' 2>&1";
  INFO(command << "\n" << read_file(prefix + ".log"));
  REQUIRE(std::system(command.c_str()) == 0);
  return prefix + ".model";
}

/// spm_encode --output_format=id on each sentence: the reference ids.
std::vector<std::vector<std::int32_t>> spm_encode(const TempDir& dir, const std::string& model,
                                                  const std::vector<std::string>& sentences) {
  std::string input;
  for (const auto& s : sentences) input += s + "\n";
  write_file(dir.file("sentences.txt"), input);
  const std::string command = "spm_encode --model='" + model + "' --output_format=id <'" +
                              dir.file("sentences.txt") + "' >'" + dir.file("ids.txt") + "' 2>'" +
                              dir.file("encode.log") + "'";
  INFO(command << "\n" << read_file(dir.file("encode.log")));
  REQUIRE(std::system(command.c_str()) == 0);
  std::vector<std::vector<std::int32_t>> ids;
  std::istringstream lines(read_file(dir.file("ids.txt")));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream numbers(line);
    ids.emplace_back();
    for (std::int32_t id; numbers >> id;) ids.back().push_back(id);
  }
  return ids;
}

std::vector<std::int32_t> encode(const SentencePieceTokenizer& t, std::string_view text) {
  std::vector<std::int32_t> ids{-7};  // encode() must clear what was there
  t.encode(text, ids);
  return ids;
}

}  // namespace

TEST_CASE("sentencepiece: schema is well formed", "[plugins][sentencepiece]") {
  CHECK_NOTHROW(SentencePieceTokenizer::schema().check_well_formed());
}

TEST_CASE("sentencepiece: ids are spm_encode's, for unigram and BPE models", "[plugins][sentencepiece]") {
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  for (const char* type : {"unigram", "bpe"}) {
    INFO("model type " << type);
    const std::string model = train(dir, type, std::string("--model_type=") + type);
    const auto tokenizer = open(model);
    const auto reference = spm_encode(dir, model, test_sentences());
    REQUIRE(reference.size() == test_sentences().size());
    bool some_unk = false;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      INFO("sentence \"" << test_sentences()[i] << "\"");
      const auto ids = encode(tokenizer, test_sentences()[i]);
      CHECK(ids == reference[i]);
      for (auto id : ids) some_unk = some_unk || id == tokenizer.vocabulary().unk;
    }
    CHECK(some_unk);  // the CJK and emoji sentence
  }
}

TEST_CASE("sentencepiece: spm_train's default model has no pad: it gets the id past the pieces",
          "[plugins][sentencepiece]") {
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  const auto t = open(train(dir, "default", ""));
  const contra::Vocabulary v = t.vocabulary();
  CHECK(v.unk == 0);
  CHECK(v.bos == 1);
  CHECK(v.eos == 2);
  CHECK(v.pad == t.pieces());
  CHECK(v.size == t.pieces() + 1);
}

TEST_CASE("sentencepiece: a model's own pad piece is used, missing bos and eos get ids past the pieces",
          "[plugins][sentencepiece]") {
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  const auto with_pad = open(train(dir, "pad", "--pad_id=3"));
  CHECK(with_pad.vocabulary().pad == 3);
  CHECK(with_pad.vocabulary().size == with_pad.pieces());

  const auto no_bos_eos = open(train(dir, "unk_only", "--bos_id=-1 --eos_id=-1"));
  const contra::Vocabulary v = no_bos_eos.vocabulary();
  const std::int64_t n = no_bos_eos.pieces();
  CHECK(v.unk == 0);
  CHECK(v.pad == n);
  CHECK(v.bos == n + 1);
  CHECK(v.eos == n + 2);
  CHECK(v.size == n + 3);
  for (auto id : encode(no_bos_eos, test_sentences()[0])) CHECK(id < n);  // reserved ids are never made
}

TEST_CASE("sentencepiece: decode inverts encode and skips special ids", "[plugins][sentencepiece]") {
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  const auto t = open(train(dir, "unigram", ""));
  const contra::Vocabulary v = t.vocabulary();
  for (const char* s : {"the quick brown fox jumps over the lazy dog.", "a caf\xc3\xa9 by the river"}) {
    auto ids = encode(t, s);
    CHECK(t.decode(ids) == s);
    ids.insert(ids.begin(), v.bos);
    ids.push_back(v.eos);
    ids.push_back(v.pad);
    ids.push_back(-1);
    ids.push_back(static_cast<std::int32_t>(v.size + 10));
    CHECK(t.decode(ids) == s);
  }
}

TEST_CASE("sentencepiece: invalid UTF-8 and NUL bytes encode without error", "[plugins][sentencepiece]") {
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  const auto t = open(train(dir, "unigram", ""));
  const contra::Vocabulary v = t.vocabulary();
  for (const std::string& s : {std::string("\xff\xfe broken \xc3"), std::string("a\0b", 3), std::string()}) {
    const auto ids = encode(t, s);
    for (auto id : ids) CHECK((id >= 0 && id < t.pieces()));
    if (s.empty()) CHECK(ids.empty());
    (void)t.decode(ids);
  }
  const auto broken = encode(t, "\xff\xfe");
  CHECK(std::find(broken.begin(), broken.end(), v.unk) != broken.end());
}

TEST_CASE("sentencepiece: encode from several threads at once gives each thread's ids", "[plugins][sentencepiece]") {
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  const auto t = open(train(dir, "unigram", ""));
  std::vector<std::vector<std::int32_t>> expected;
  for (const auto& s : test_sentences()) expected.push_back(encode(t, s));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      std::vector<std::int32_t> ids;
      for (int round = 0; round < 300; ++round)
        for (std::size_t i = 0; i < expected.size(); ++i) {
          t.encode(test_sentences()[(i + static_cast<std::size_t>(k)) % expected.size()], ids);
          mismatches[static_cast<std::size_t>(k)] += ids != expected[(i + static_cast<std::size_t>(k)) % expected.size()];
        }
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("sentencepiece: a missing, empty or non-model file is a ConfigError naming it", "[plugins][sentencepiece]") {
  TempDir dir("sentencepiece");
  const std::string missing = dir.file("missing.model");
  CHECK_THROWS_AS(open(missing), ConfigError);
  CHECK_THROWS_WITH(open(missing), "sentencepiece.model: " + missing + ": cannot open: No such file or directory");
  CHECK_THROWS_WITH(open(""), "sentencepiece.model: expected a SentencePiece .model file, found \"\"");

  write_file(dir.file("empty.model"), "");
  CHECK_THROWS_WITH(open(dir.file("empty.model")),
                    "sentencepiece.model: " + dir.file("empty.model") + ": empty file; expected a SentencePiece .model file");
  CHECK_THROWS_WITH(open(dir.path().string()),
                    "sentencepiece.model: " + dir.path().string() + ": not a regular file; expected a SentencePiece "
                    ".model file");

  write_file(dir.file("text.model"), "this is a vocabulary file, not a model\n");
  CHECK_THROWS_AS(open(dir.file("text.model")), ConfigError);
  CHECK_THROWS_WITH(open(dir.file("text.model")),
                    Catch::Matchers::StartsWith("sentencepiece.model: " + dir.file("text.model") +
                                                ": not a SentencePiece model: "));
}

TEST_CASE("sentencepiece: a model whose normalization trie points outside its map is refused",
          "[plugins][sentencepiece]") {
  // libsentencepiece follows the trie of NormalizerSpec.precompiled_charsmap
  // without bounds checks: such a model crashes its Encode().
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  const std::string model = read_file(train(dir, "unigram", ""));
  // NormalizerSpec: name "nmt_nfkc" (field 1), then the map (field 2): its
  // length as a varint, the trie's byte count (u32), the trie's units.
  const std::string spec_start = std::string("\x0a\x08nmt_nfkc\x12");
  const std::size_t at = model.find(spec_start);
  REQUIRE(at != std::string::npos);
  std::size_t map = at + spec_start.size();
  while (static_cast<unsigned char>(model[map]) & 0x80) ++map;
  ++map;  // past the varint
  const std::size_t trie = map + 4;
  const std::string path = dir.file("damaged.model");
  const std::string prefix = "sentencepiece.model: " + path + ": a damaged SentencePiece model: ";

  std::string root_far = model;
  const char far_unit[4] = {'\x00', '\xfc', '\xff', '\xff'};  // label 0, offset 2^22 - 1
  root_far.replace(trie, 4, far_unit, 4);
  write_file(path, root_far);
  CHECK_THROWS_WITH(open(path), prefix + "its normalization map's trie points outside the map");

  std::string trie_too_long = model;
  const char huge[4] = {'\xff', '\xff', '\xff', '\x7f'};
  trie_too_long.replace(map, 4, huge, 4);
  write_file(path, trie_too_long);
  CHECK_THROWS_AS(open(path), ConfigError);  // SentencePiece's own check, or ours

  write_file(path, model);
  CHECK_NOTHROW(open(path));
}

TEST_CASE("sentencepiece: a piece starting with a NUL byte is a ConfigError, not libsentencepiece's exception",
          "[plugins][sentencepiece]") {
  // libsentencepiece builds tries of the pieces with Darts, which takes such
  // a piece for an empty key and throws its own exception out of
  // LoadFromSerializedProto (found by tests/fuzz/fuzz_sentencepiece_model).
  REQUIRE_SPM_TOOLS();
  TempDir dir("sentencepiece");
  std::string model = read_file(train(dir, "user_symbol", "--user_defined_symbols=XYZ"));
  // The SentencePiece message of the user-defined piece: field 1, 3 bytes.
  const std::size_t at = model.find("\x0a\x03XYZ");
  REQUIRE(at != std::string::npos);
  model[at + 2] = '\0';
  const std::string path = dir.file("nul_piece.model");
  write_file(path, model);
  CHECK_THROWS_AS(open(path), ConfigError);
  CHECK_THROWS_WITH(open(path), Catch::Matchers::StartsWith("sentencepiece.model: " + path +
                                                            ": not a SentencePiece model: "));
}

TEST_CASE("sentencepiece: hostile model bytes are refused or load, never crash", "[plugins][sentencepiece]") {
  // Garbage, and a trained model cut short or with bytes overwritten: each
  // must either load (and then encode) or be a ConfigError naming the file.
  TempDir dir("sentencepiece");
  std::vector<std::string> inputs;
  std::uint64_t state = 99;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  for (int k = 0; k < 20; ++k) {
    std::string garbage(static_cast<std::size_t>(1 + next() % 4000), '\0');
    for (auto& c : garbage) c = static_cast<char>(next() >> 56);
    inputs.push_back(garbage);
  }
  if (have_spm_tools()) {
    const std::string model = read_file(train(dir, "unigram", ""));
    for (std::size_t cut : {std::size_t(1), std::size_t(10), model.size() / 3, model.size() / 2, model.size() - 1})
      inputs.push_back(model.substr(0, cut));
    for (int k = 0; k < 200; ++k) {
      std::string damaged = model;
      for (int flips = 0; flips < 1 + k % 4; ++flips) damaged[next() % damaged.size()] = static_cast<char>(next() >> 56);
      inputs.push_back(damaged);
    }
  } else {
    WARN("SKIPPED in part: spm_train not installed, so no damaged trained models are tried");
  }
  const std::string path = dir.file("hostile.model");
  int loaded = 0, refused = 0;
  for (const auto& bytes : inputs) {
    write_file(path, bytes);
    try {
      const auto t = open(path);
      ++loaded;
      for (const auto& s : test_sentences()) {
        std::vector<std::int32_t> ids;
        t.encode(s, ids);
        for (auto id : ids) REQUIRE((id >= 0 && id < t.vocabulary().size));
        (void)t.decode(ids);
      }
    } catch (const ConfigError& e) {
      ++refused;
      REQUIRE_THAT(e.what(), Catch::Matchers::StartsWith("sentencepiece.model: " + path + ": "));
    }
  }
  CHECK(refused >= 20);  // the garbage at least
  INFO(loaded << " damaged models loaded, " << refused << " refused");
  SUCCEED();
}
