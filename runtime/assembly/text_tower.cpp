#include "assembly/text_tower.hpp"

#include "assembly/make_plugin.hpp"

#include <contra/errors.hpp>
#include <contra/guard.hpp>
#include <contra/rng.hpp>

#include <algorithm>

namespace contra::runtime {

std::string fields_text(const SourceInfo& info) {
  if (info.fields.empty()) return "one image field, \"image\"";
  std::string s;
  for (const FieldInfo& f : info.fields)
    s += (s.empty() ? "\"" : ", \"") + f.name + "\" (" + (f.kind == FieldKind::text ? "text" : "image") + ")";
  return s;
}

TextTower::TextTower(const TowerSpec& spec, const PluginRegistry& registry, const SourceInfo& info)
    : name_(spec.name) {
  const std::string table = "tower." + spec.name;
  std::string field = spec.params.get<std::string>("field");
  if (field.empty()) field = spec.name;
  // The field's place among the record's text fields.
  std::size_t texts = 0;
  bool found = false;
  for (const FieldInfo& f : info.fields) {
    if (f.name == field) {
      if (f.kind != FieldKind::text)
        throw ConfigError(table + ": field \"" + field + "\" of the source holds images; a [tower.NAME] embeds a text "
                          "field so far (the first tower, [encoder], embeds the images)");
      found = true;
      break;
    }
    if (f.kind == FieldKind::text) ++texts;
  }
  if (!found)
    throw ConfigError(table + ": the source has no field \"" + field + "\"; its records hold " + fields_text(info));
  text_field_ = texts;
  length_ = spec.params.get<std::int64_t>("length");

  tokenizer_ = make_plugin<Tokenizer>(registry, spec.tokenizer);
  tokenizer_label_ = spec.tokenizer.label();
  vocabulary_ = guarded(tokenizer_label_ + ": vocabulary() failed", [&] { return tokenizer_->vocabulary(); });
  const Vocabulary& v = vocabulary_;
  const std::int32_t special[] = {v.pad, v.bos, v.eos, v.unk};
  bool distinct = true;
  for (int i = 0; i < 4; ++i)
    for (int j = i + 1; j < 4; ++j) distinct = distinct && special[i] != special[j];
  const bool in_range =
      std::all_of(std::begin(special), std::end(special), [&](std::int32_t id) { return id >= 0 && id < v.size; });
  if (v.size < 5 || !in_range || !distinct)
    throw PluginError(tokenizer_label_ + ": vocabulary() gave size " + std::to_string(v.size) + " with pad " +
                      std::to_string(v.pad) + ", bos " + std::to_string(v.bos) + ", eos " + std::to_string(v.eos) +
                      ", unk " + std::to_string(v.unk) + "; expected four distinct ids below the size, and size >= 5");
  for (const PluginSpec& ps : spec.chain) {
    Op op{make_plugin<TextAugmentation>(registry, ps), ps.label()};
    if (op.plugin->concurrency() == Concurrency::serial) parallel_ = false;
    chain_.push_back(std::move(op));
  }
}

void TextTower::make_row(const std::string& text, const Draw& draw, Scratch& scratch, std::int32_t* row,
                         bool augment) const {
  // Every row of every step comes here: the messages are made on failure only.
  const auto sample = [&] { return " (sample " + std::to_string(draw.sample) + ")"; };
  try {
    tokenizer_->encode(text, scratch.a);
  } catch (...) {
    throw PluginError(tokenizer_label_ + ": encode() failed" + sample() + ": " + current_exception_message());
  }
  std::vector<std::int32_t>* tokens = &scratch.a;
  std::vector<std::int32_t>* spare = &scratch.b;
  for (std::size_t op = 0; augment && op < chain_.size(); ++op) {
    Rng rng(draw.seed, draw.epoch, draw.sample, draw.view, static_cast<std::uint32_t>(op));
    try {
      chain_[op].plugin->apply(*tokens, *spare, vocabulary_, rng);
    } catch (...) {
      throw PluginError(chain_[op].label + ": apply() failed" + sample() + ": " + current_exception_message());
    }
    std::swap(tokens, spare);
  }
  const std::size_t fit = std::min(tokens->size(), static_cast<std::size_t>(length_ - 2));
  for (std::size_t i = 0; i < fit; ++i) {
    const std::int32_t id = (*tokens)[i];
    if (id < 0 || id >= vocabulary_.size)
      throw PluginError((chain_.empty() || !augment ? tokenizer_label_ : chain_.back().label) + ": made token id " +
                        std::to_string(id) + sample() + ", outside the vocabulary of " +
                        std::to_string(vocabulary_.size));
  }
  row[0] = vocabulary_.bos;
  std::copy_n(tokens->begin(), fit, row + 1);
  row[fit + 1] = vocabulary_.eos;
  std::fill(row + fit + 2, row + length_, vocabulary_.pad);
}

}  // namespace contra::runtime
