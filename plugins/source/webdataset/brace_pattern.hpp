#pragma once
/// \file
/// Shard lists written as brace patterns, as WebDataset writes them
/// ("cc3m-{000000..000331}.tar").

#include <cstddef>
#include <string>
#include <vector>

namespace contra::plugins::webdataset {

/// Most paths one pattern may expand to: more is surely a typo in a range.
inline constexpr std::size_t max_expanded_paths = 1000000;

/// Expands `pattern` as Python's braceexpand (which WebDataset uses) does,
/// left to right: "{000..099}" is the integers 0 to 99 padded to the width
/// of the longer bound when either is written with a leading zero
/// ("{0..9}" pads nothing; "{9..0}" counts down; "{0..10..5}" steps by 5),
/// "{a,b,c}" the alternatives, each itself a pattern; a brace with neither
/// stays as it is ("{x}"). Throws ConfigError, starting with `where`, for a
/// '{' or '}' without its partner and for more than max_expanded_paths paths.
std::vector<std::string> expand_braces(const std::string& pattern, const std::string& where);

}  // namespace contra::plugins::webdataset
