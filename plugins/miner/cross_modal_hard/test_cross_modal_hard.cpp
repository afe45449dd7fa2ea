// cross_modal_hard: the pairs it lists on embeddings worked by hand, its
// refusals, and that info_nce takes what it fills.
#include "cross_modal_hard.hpp"

#include <contra/pairs_check.hpp>
#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <utility>
#include <vector>

using namespace contra;
using contra::plugins::CrossModalHard;

namespace {

using PairList = std::vector<std::pair<std::int32_t, std::int32_t>>;

// Three images (view 0, rows 0-2) and their captions (view 1, rows 3-5) on
// the unit circle, at these angles (degrees):
//   image 0 (row 0): 0     caption 0 (row 3): 10
//   image 1 (row 1): 90    caption 1 (row 4): 100
//   image 2 (row 2): 20    caption 2 (row 5): 200
// Cosines of the other samples' rows of the other tower, hardest first:
//   image 0:   caption 1 cos 100° = −0.17, caption 2 cos 200° = −0.94
//   image 1:   caption 0 cos 80° = 0.17,   caption 2 cos 110° = −0.34
//   image 2:   caption 0 cos 10° = 0.98,   caption 1 cos 80° = 0.17
//   caption 0: image 2 cos 10° = 0.98,     image 1 cos 80° = 0.17
//   caption 1: image 2 cos 80° = 0.17,     image 0 cos 100° = −0.17
//   caption 2: image 1 cos 110° = −0.34,   image 0 cos 160° = −0.94
struct Batch {
  Tensor z = Tensor::empty({6, 2}, DType::f32);
  std::vector<std::int64_t> sample{0, 1, 2, 0, 1, 2};
  std::vector<std::int64_t> label{0, 1, 0, 0, 1, 0};
  std::vector<std::int32_t> view_tower{0, 1};
  Embeddings embeddings(bool towers = true, bool labels = false) {
    const double degrees[] = {0, 90, 20, 10, 100, 200};
    for (int r = 0; r < 6; ++r) {
      z.data<float>()[2 * r] = static_cast<float>(std::cos(degrees[r] * 3.14159265358979 / 180));
      z.data<float>()[2 * r + 1] = static_cast<float>(std::sin(degrees[r] * 3.14159265358979 / 180));
    }
    Embeddings e;
    e.z = z;
    e.sample = &sample;
    e.label = labels ? &label : nullptr;
    e.views = 2;
    e.view_tower = towers ? &view_tower : nullptr;
    return e;
  }
};

CrossModalHard miner(std::int64_t k, bool exclude_same_label = false) {
  return CrossModalHard(CrossModalHard::schema().bind({{"k", k}, {"exclude_same_label", exclude_same_label}}));
}

}  // namespace

TEST_CASE("cross_modal_hard: schema is well formed", "[plugins][cross_modal_hard]") {
  const auto r = testing::check_schema<CrossModalHard>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("cross_modal_hard: the hardest rows of the other tower, most similar first", "[plugins][cross_modal_hard]") {
  Batch b;
  Pairs out;
  miner(1).mine(b.embeddings(), out);
  // Positives: each row and its own sample's row in the other tower.
  CHECK(out.positive == PairList{{0, 3}, {1, 4}, {2, 5}, {3, 0}, {4, 1}, {5, 2}});
  // The first of each list above.
  CHECK(out.negative == PairList{{0, 4}, {1, 3}, {2, 3}, {3, 2}, {4, 2}, {5, 1}});
  CHECK(out.triplets.empty());
  CHECK(out.memory_negative.empty());

  SECTION("k beyond the candidates lists them all, hardest first") {
    Pairs all;
    miner(10).mine(b.embeddings(), all);
    CHECK(all.negative == PairList{{0, 4}, {0, 5}, {1, 3}, {1, 5}, {2, 3}, {2, 4},
                                   {3, 2}, {3, 1}, {4, 2}, {4, 0}, {5, 1}, {5, 0}});
  }
  SECTION("exclude_same_label drops the other samples of the anchor's label") {
    // Samples 0 and 2 share label 0: image 0 loses caption 2, image 2
    // caption 0, caption 0 image 2, caption 2 image 0.
    Pairs some;
    miner(10, true).mine(b.embeddings(true, true), some);
    CHECK(some.negative == PairList{{0, 4}, {1, 3}, {1, 5}, {2, 4}, {3, 1}, {4, 2}, {4, 0}, {5, 1}});
  }
}

TEST_CASE("cross_modal_hard: refusals name what is missing", "[plugins][cross_modal_hard]") {
  Batch b;
  Pairs out;
  CHECK_THROWS_WITH(miner(2).mine(b.embeddings(false), out),
                    "cross_modal_hard: contrasts the rows of different towers, and these embeddings come from one "
                    "tower; give the pipeline a [tower.NAME] (or use another miner)");
  CHECK_THROWS_WITH(miner(2, true).mine(b.embeddings(true, false), out),
                    "cross_modal_hard: exclude_same_label needs labels, and the source gives none");
}

TEST_CASE("cross_modal_hard: info_nce takes the lists it fills", "[plugins][cross_modal_hard]") {
  const PairsForms info_nce_forms = [] {
    PairsForms f;
    f.positive = PairsForms::optional;
    f.negative = PairsForms::primary;
    f.memory_negative = PairsForms::primary;
    return f;
  }();
  CHECK(pairs_mismatch(info_nce_forms, miner(4).mined_lists()).empty());
}
