#pragma once
/// \file
/// The word list of the `rendered_words` source: read, filtered and split.

#include <cstdint>
#include <string>
#include <vector>

namespace contra::plugins::rendered_words {

/// Which lines of a word list are words.
struct WordRules {
  std::int64_t min_length = 1;  ///< letters, inclusive
  std::int64_t max_length = 1;  ///< letters, inclusive
};

/// The words of the file at `path`: lines of ASCII letters only (surrounding
/// spaces, tabs, a trailing CR and a leading UTF-8 BOM aside) whose length
/// lies within `rules`, first spelling kept of each case-insensitively
/// distinct word, in file order. Reads the file in chunks and never holds
/// more than one candidate line, so any bytes (binary, one endless line) are
/// safe. Throws ConfigError, starting with `what` (e.g. "source.words:
/// /usr/share/dict/words"), when the file cannot be read, is empty, or holds
/// no word.
std::vector<std::string> read_word_list(const std::string& path, const WordRules& rules, const std::string& what);

/// Splits `words` into `test_count` test words and the rest: the test words
/// are those whose lower-case form has the smallest hash, so a word's split
/// depends on the word alone (not on its position, the seed or the other
/// words' rendering) and the two splits never share a word. Each split keeps
/// file order. Requires test_count < words.size().
std::vector<std::string> split_words(const std::vector<std::string>& words, std::int64_t test_count, bool test);

}  // namespace contra::plugins::rendered_words
