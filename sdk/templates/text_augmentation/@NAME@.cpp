// @NAME@: a contra text augmentation plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>

contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [[tower.NAME.chain]] table against this and `contra plugins
  // --describe` prints it.
  return contra::Schema("@NAME@", "drops the first or the last token of a text with probability p")
      .add<double>("p", 0.5, "probability of dropping a token, the first or the last alike").range(0.0, 1.0);
}

@CLASS@::@CLASS@(const contra::Params& p) : p_(p.get<double>("p")) {}

// Skeleton: with probability p, the first or the last token (each half the
// time) is left out; a text of one token is kept whole, so that no text
// vanishes. Replace with your transform; draw every random number from `rng`
// (keyed by seed, epoch, sample, view and position in the chain) so that runs
// are reproducible at any thread count. New ids must come from `vocabulary`
// (its unk, say, for masking), and never be its pad, bos or eos.
void @CLASS@::apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out,
                    const contra::Vocabulary& /*vocabulary*/, contra::Rng& rng) const {
  out.assign(in.begin(), in.end());
  if (out.size() < 2 || !rng.bernoulli(p_)) return;
  if (rng.bernoulli(0.5))
    out.erase(out.begin());
  else
    out.pop_back();
}

// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(CONTRA_TEXT_AUGMENTATION(@CLASS@))
