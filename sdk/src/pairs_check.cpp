#include <contra/errors.hpp>
#include <contra/pairs_check.hpp>

#include <limits>
#include <string>
#include <vector>

namespace contra {

namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

[[noreturn]] void fail(std::string_view who, const std::string& what) {
  throw UsageError(std::string(who) + ": " + what);
}

void check_row_count(std::string_view who, const std::vector<std::int64_t>* field, const char* name,
                     std::int64_t rows) {
  if (field && static_cast<std::int64_t>(field->size()) != rows)
    fail(who, std::string(name) + " has " + str(static_cast<std::int64_t>(field->size())) + " entries for " +
                  str(rows) + " rows");
}

struct ListUse {
  const char* name;
  const char* source;  // where such a list comes from, for the hint
  PairsForms::Use use;
  bool given;
};

// "it takes Pairs::all (the all_pairs miner), or Pairs::negative and/or
// Pairs::memory_negative with optional Pairs::positive".
std::string what_it_takes(const PairsForms& forms, const ListUse (&lists)[5]) {
  std::string primary, optional;
  for (const ListUse& l : lists) {
    if (l.use == PairsForms::refused) continue;
    const bool is_primary = l.use == PairsForms::primary;
    std::string& to = is_primary ? primary : optional;
    if (!to.empty()) to += is_primary ? " and/or " : ", ";
    to += std::string(l.name) + l.source;
  }
  std::string listed = primary;
  if (!listed.empty() && !optional.empty()) listed += " with optional " + optional;
  const std::string all = "Pairs::all (the all_pairs miner)";
  if (forms.all && !listed.empty()) return "it takes " + all + ", or " + listed;
  if (forms.all) return "it takes " + all + " only";
  return "it takes " + listed;
}

}  // namespace

std::int64_t check_embeddings(std::string_view who, const Embeddings& emb, Device device, const EmbeddingsUse& use) {
  const Tensor& z = emb.z;
  if (z.rank() != 2 || z.dtype() != DType::f32 || z.device() != device || z.dim(1) < 1)
    fail(who, std::string("expected embeddings as an f32 [M, D] ") + (device == Device::cpu ? "CPU" : "cuda") +
                  " tensor, got " + dtype_name(z.dtype()) + " " + z.shape().str() + " on " +
                  device_name(z.device()));
  const std::int64_t rows = z.dim(0);
  if (rows > std::numeric_limits<std::int32_t>::max())
    fail(who, str(rows) + " rows do not fit the int32 row indices of Pairs");
  if (use.sample && (!emb.sample || static_cast<std::int64_t>(emb.sample->size()) != rows))
    fail(who, "Embeddings::sample must give the sample of each of the " + str(rows) + " rows");
  if (use.label) check_row_count(who, emb.label, "Embeddings::label", rows);
  if (use.ids) check_row_count(who, emb.ids, "Embeddings::ids", rows);
  return rows;
}

PairsSelection check_pairs_form(std::string_view who, const Pairs& pairs, const PairsForms& forms) {
  const ListUse lists[5] = {
      {"Pairs::positive", "", forms.positive, !pairs.positive.empty()},
      {"Pairs::negative", "", forms.negative, !pairs.negative.empty()},
      {"Pairs::memory_negative", "", forms.memory_negative, !pairs.memory_negative.empty()},
      {"Pairs::triplets", " (a triplet miner)", forms.triplets, !pairs.triplets.empty()},
      {"Pairs::synthetic_negative", "", forms.synthetic_negative, !pairs.synthetic_negative.empty()},
  };
  bool any_list = false, any_primary = false;
  for (const ListUse& l : lists) {
    if (l.given && l.use == PairsForms::refused)
      fail(who, std::string(l.name) + " is not supported; " + what_it_takes(forms, lists));
    any_list = any_list || l.given;
    any_primary = any_primary || (l.given && l.use == PairsForms::primary);
  }
  if (pairs.all && !forms.all) fail(who, "Pairs::all is not supported; " + what_it_takes(forms, lists));
  if (pairs.all && any_list)
    fail(who, "Pairs::all together with explicit pair lists is ambiguous; a miner sets one or the other");
  if (pairs.all) return PairsSelection::all;
  if (any_primary) return PairsSelection::listed;
  if (!any_list && forms.may_be_empty) return PairsSelection::none;
  fail(who, "nothing selected to compute on; " + what_it_takes(forms, lists));
}

std::string pairs_mismatch(const PairsForms& forms, const MinedLists& lists) {
  if (!forms.declared || !lists.declared) return {};
  // What one step would hand the loss: one entry in each list the miner fills.
  Pairs pairs;
  pairs.all = lists.all;
  if (lists.positive) pairs.positive.emplace_back(0, 1);
  if (lists.negative) pairs.negative.emplace_back(0, 1);
  if (lists.memory_negative) pairs.memory_negative.emplace_back(0, 0);
  if (lists.triplets) pairs.triplets.push_back({0, 1, 2});
  if (lists.synthetic_negative) pairs.synthetic_negative.emplace_back(0, 0);
  const std::string who = "-";
  try {
    check_pairs_form(who, pairs, forms);
  } catch (const UsageError& e) {
    return std::string(e.what()).substr(who.size() + 2);  // without "<who>: "
  }
  return {};
}

std::string mined_lists_text(const MinedLists& lists) {
  std::vector<const char*> names;
  if (lists.all) names.push_back("Pairs::all");
  if (lists.positive) names.push_back("Pairs::positive");
  if (lists.negative) names.push_back("Pairs::negative");
  if (lists.memory_negative) names.push_back("Pairs::memory_negative");
  if (lists.triplets) names.push_back("Pairs::triplets");
  if (lists.synthetic_negative) names.push_back("Pairs::synthetic_negative");
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += std::string(i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return out.empty() ? "nothing" : out;
}

void check_pair_indices(std::string_view who, const Pairs& pairs, const Embeddings& emb) {
  const std::int64_t rows = emb.rows();
  auto in_rows = [rows](std::int64_t i) { return i >= 0 && i < rows; };
  auto check_list = [&](const std::vector<std::pair<std::int32_t, std::int32_t>>& list, const char* kind) {
    for (const auto& [a, b] : list)
      if (!in_rows(a) || !in_rows(b))
        fail(who, std::string(kind) + " pair (" + str(a) + ", " + str(b) + ") is outside the " + str(rows) +
                      " rows");
  };
  check_list(pairs.positive, "positive");
  check_list(pairs.negative, "negative");
  if (!pairs.memory_negative.empty()) {
    const MemoryView* memory = emb.memory;
    const std::int64_t keys = memory ? memory->size() : 0;
    if (keys == 0)
      fail(who, std::string("Pairs::memory_negative lists memory keys, but the memory is ") +
                    (memory ? "empty" : "absent"));
    const std::vector<std::int64_t>* ids =
        memory->ids && static_cast<std::int64_t>(memory->ids->size()) == keys ? memory->ids : nullptr;
    auto pair = [](std::int64_t a, std::int64_t k) {
      return "memory negative (row " + str(a) + ", key " + str(k) + ")";
    };
    for (const auto& [a, k] : pairs.memory_negative) {
      if (!in_rows(a) || k < 0 || k >= keys)
        fail(who, pair(a, k) + " is outside the " + str(rows) + " rows or the " + str(keys) + " keys");
      if (ids && (*ids)[static_cast<std::size_t>(k)] < 0) fail(who, pair(a, k) + " is an empty slot of the memory");
    }
  }
  for (const Triplet& t : pairs.triplets)
    if (!in_rows(t.anchor) || !in_rows(t.positive) || !in_rows(t.negative))
      fail(who, "triplet (" + str(t.anchor) + ", " + str(t.positive) + ", " + str(t.negative) + ") is outside the " +
                    str(rows) + " rows");
  if (!pairs.synthetic_negative.empty() || pairs.synthetic.defined()) {
    const Tensor& s = pairs.synthetic;
    if (!s.defined() || s.numel() == 0)
      fail(who, "Pairs::synthetic_negative lists synthetic rows, but Pairs::synthetic is empty");
    const std::int64_t width = emb.z.dim(1);
    if (s.rank() != 2 || s.dtype() != DType::f32 || s.dim(1) != width || s.device() != emb.z.device())
      fail(who, "Pairs::synthetic must be f32 [S, " + str(width) + "] (the embeddings' width) on " +
                    device_name(emb.z.device()) + ", got " + dtype_name(s.dtype()) + " " + s.shape().str() + " on " +
                    device_name(s.device()));
    const std::int64_t count = s.dim(0);
    for (const auto& [a, k] : pairs.synthetic_negative)
      if (!in_rows(a) || k < 0 || k >= count)
        fail(who, "synthetic negative (row " + str(a) + ", synthetic " + str(k) + ") is outside the " + str(rows) +
                      " rows or the " + str(count) + " synthetic rows");
    if (!pairs.synthetic_origin.empty() && static_cast<std::int64_t>(pairs.synthetic_origin.size()) != count)
      fail(who, "Pairs::synthetic_origin has " + str(static_cast<std::int64_t>(pairs.synthetic_origin.size())) +
                    " entries for " + str(count) + " synthetic rows");
  }
}

}  // namespace contra
