// The rendered_words source's word list (word_list.hpp) on the bytes as the
// list file, read with the word lengths the source uses by default and with
// the widest its schema allows. A list that reads must hold what
// read_word_list promises, and is then split into test and train words,
// which must be disjoint, cover it and keep its order. (The source's fonts
// are files too, but FreeType reads those.)
#include "fuzz_support.hpp"

#include "word_list.hpp"

#include <algorithm>
#include <string>
#include <unordered_set>
#include <vector>

using namespace contra;
namespace words = contra::plugins::rendered_words;

namespace {

// rendered_words' min_length and max_length: the defaults, then the
// schema's whole range (one letter up to 64).
constexpr words::WordRules rule_sets[] = {{3, 12}, {1, 64}};

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), lower);
  return s;
}

bool ascii_letters(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); });
}

/// The words are ASCII letters of a length within `rules`, each distinct
/// from the others ignoring case.
void check_words(const std::vector<std::string>& list, const words::WordRules& rules) {
  std::unordered_set<std::string> lower_forms;
  for (const std::string& w : list) {
    const auto letters = static_cast<std::int64_t>(w.size());
    if (letters < rules.min_length || letters > rules.max_length || !ascii_letters(w))
      fuzz::finding("read_word_list kept \"" + w + "\", not " + std::to_string(rules.min_length) + " to " +
                    std::to_string(rules.max_length) + " ASCII letters");
    if (!lower_forms.insert(lowered(w)).second)
      fuzz::finding("read_word_list kept \"" + w + "\" twice, ignoring case");
  }
}

/// split_words with half the list as test words: the test split has that
/// many, and walking the list in order meets each word as the next word of
/// exactly one split (so they are disjoint, cover the list and keep its order).
void check_split(const std::vector<std::string>& list) {
  if (list.size() < 2) return;  // split_words needs a training word left
  const std::size_t test_count = list.size() / 2;
  const auto test = words::split_words(list, static_cast<std::int64_t>(test_count), true);
  const auto train = words::split_words(list, static_cast<std::int64_t>(test_count), false);
  if (test.size() != test_count || test.size() + train.size() != list.size())
    fuzz::finding("split_words of " + std::to_string(list.size()) + " words asked for " + std::to_string(test_count) +
                  " test words gave " + std::to_string(test.size()) + " test and " + std::to_string(train.size()) +
                  " train words");
  std::size_t next_test = 0, next_train = 0;
  for (const std::string& w : list) {
    const bool in_test = next_test < test.size() && test[next_test] == w;
    const bool in_train = next_train < train.size() && train[next_train] == w;
    if (in_test == in_train)
      fuzz::finding("split_words put \"" + w + "\" in " + (in_test ? "both splits" : "neither split, or out of order"));
    if (in_test)
      ++next_test;
    else
      ++next_train;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input = fuzz::write_file("words.txt", fuzz::bytes_of(data, size));
  for (const words::WordRules& rules : rule_sets)
    fuzz::run_reader(
        [&] {
          const std::vector<std::string> list = words::read_word_list(input, rules, "source.words: " + input);
          check_words(list, rules);
          check_split(list);
        },
        input);
  return 0;
}
