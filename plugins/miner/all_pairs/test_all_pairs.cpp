#include "all_pairs.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

using contra::plugins::AllPairs;

TEST_CASE("all_pairs: schema is well formed and has no parameters", "[plugins][all_pairs]") {
  contra::Schema s = AllPairs::schema();
  CHECK_NOTHROW(s.check_well_formed());
  CHECK(s.name() == "all_pairs");
  CHECK(s.params().empty());
  CHECK_THROWS_AS(s.bind({{"k", std::int64_t(3)}}), contra::ConfigError);
}

TEST_CASE("all_pairs: marks every pair and lists none explicitly", "[plugins][all_pairs]") {
  AllPairs miner(AllPairs::schema().bind({}));
  std::vector<std::int64_t> sample{0, 1, 2, 0, 1, 2};
  contra::Embeddings z{contra::Tensor::zeros({6, 4}, contra::DType::f32), &sample, nullptr, 2};
  contra::Pairs pairs;
  pairs.clear();
  miner.mine(z, pairs);
  CHECK(pairs.all);
  CHECK(pairs.positive.empty());
  CHECK(pairs.negative.empty());
  CHECK(pairs.triplets.empty());
}
