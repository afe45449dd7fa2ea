#include "word_list.hpp"

#include <contra/errors.hpp>
#include <contra/rng.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <unordered_set>

namespace contra::plugins::rendered_words {

namespace {

// A list this long is not a word list (/usr/share/dict/words has about 10^5
// lines); refusing it bounds the memory a hostile file can claim.
constexpr std::size_t max_words = std::size_t(1) << 22;

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), lower);
  return s;
}

/// Takes the file's bytes in any chunks and keeps the lines that are words.
/// A line is buffered only while it can still be one, so memory stays
/// bounded by max_length whatever the line lengths are.
class WordCollector {
 public:
  WordCollector(const WordRules& rules, const std::string& what) : rules_(rules), what_(what) {}

  void feed(const char* bytes, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const char c = bytes[i];
      if (c == '\n') {
        end_line();
        continue;
      }
      if (!candidate_) continue;
      if (c == ' ' || c == '\t' || c == '\r') {
        trailing_blank_ = !line_.empty();
      } else if (is_letter(c) && !trailing_blank_ &&
                 static_cast<std::int64_t>(line_.size()) < rules_.max_length) {
        line_ += c;
      } else {
        candidate_ = false;  // another byte, a blank inside, or too long
      }
    }
  }

  std::vector<std::string> finish() {
    end_line();
    return std::move(words_);
  }
  std::uint64_t lines() const noexcept { return lines_; }

 private:
  void end_line() {
    if (candidate_ && static_cast<std::int64_t>(line_.size()) >= rules_.min_length &&
        seen_.insert(lowered(line_)).second) {
      if (words_.size() == max_words)
        throw ConfigError(what_ + ": more than " + std::to_string(max_words) + " words; expected a word list " +
                          "of at most that many");
      words_.push_back(line_);
    }
    ++lines_;
    line_.clear();
    candidate_ = true;
    trailing_blank_ = false;
  }

  WordRules rules_;
  const std::string& what_;
  std::string line_;             // the current line's letters so far
  bool candidate_ = true;        // the current line may still be a word
  bool trailing_blank_ = false;  // blanks followed the letters: only more blanks may follow
  std::uint64_t lines_ = 0;
  std::unordered_set<std::string> seen_;  // lower-case forms kept
  std::vector<std::string> words_;
};

}  // namespace

std::vector<std::string> read_word_list(const std::string& path, const WordRules& rules, const std::string& what) {
  const std::string expected = "expected a word list, one word per line (e.g. /usr/share/dict/words)";
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw ConfigError(what + ": cannot open: " + std::strerror(errno) + "; " + expected);
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) == 0 && S_ISDIR(st.st_mode))
    throw ConfigError(what + ": a folder; " + expected);

  WordCollector collector(rules, what);
  std::uint64_t bytes = 0;
  char chunk[1 << 16];
  bool first = true;
  while (const std::size_t n = std::fread(chunk, 1, sizeof chunk, file.get())) {
    std::size_t skip = 0;
    if (first && n >= 3 && std::memcmp(chunk, "\xef\xbb\xbf", 3) == 0) skip = 3;  // UTF-8 byte order mark
    first = false;
    collector.feed(chunk + skip, n - skip);
    bytes += n;
  }
  if (std::ferror(file.get())) throw ConfigError(what + ": cannot read: " + std::strerror(errno));
  if (bytes == 0) throw ConfigError(what + ": empty file; " + expected);
  std::vector<std::string> words = collector.finish();
  if (words.empty())
    throw ConfigError(what + ": no word in its " + std::to_string(collector.lines()) +
                      (collector.lines() == 1 ? " line" : " lines") + "; expected lines of " +
                      std::to_string(rules.min_length) + " to " + std::to_string(rules.max_length) +
                      " ASCII letters (a-z, A-Z)");
  return words;
}

std::vector<std::string> split_words(const std::vector<std::string>& words, std::int64_t test_count, bool test) {
  // FNV-1a of the lower-case word, then mixed: a fixed function, so splits
  // agree across runs, machines and parameter changes.
  auto hash = [](const std::string& word) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (char c : word) h = (h ^ static_cast<unsigned char>(lower(c))) * 0x100000001b3ull;
    return contra::mix64(h);
  };
  struct Ranked {
    std::uint64_t hash;
    std::string lower;  // ties (hash collisions) broken by the word itself
    std::size_t index;
    bool operator<(const Ranked& o) const { return hash != o.hash ? hash < o.hash : lower < o.lower; }
  };
  std::vector<Ranked> ranked(words.size());
  for (std::size_t i = 0; i < words.size(); ++i) ranked[i] = {hash(words[i]), lowered(words[i]), i};
  const auto cut = ranked.begin() + test_count;
  std::nth_element(ranked.begin(), cut, ranked.end());
  std::vector<bool> is_test(words.size(), false);
  for (auto it = ranked.begin(); it != cut; ++it) is_test[it->index] = true;

  std::vector<std::string> out;
  out.reserve(test ? static_cast<std::size_t>(test_count) : words.size() - static_cast<std::size_t>(test_count));
  for (std::size_t i = 0; i < words.size(); ++i)
    if (is_test[i] == test) out.push_back(words[i]);
  return out;
}

}  // namespace contra::plugins::rendered_words
