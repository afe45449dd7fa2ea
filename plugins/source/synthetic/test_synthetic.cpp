#include "synthetic.hpp"

#include <test_support.hpp>

#include <cstring>

using contra::Tensor;
using contra::plugins::SyntheticSource;

namespace {

SyntheticSource make(std::initializer_list<std::pair<std::string, contra::Value>> v) {
  return SyntheticSource(SyntheticSource::schema().bind(v));
}

bool same_pixels(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("synthetic: schema is well formed and defaults are 1024 28x28x1 images of 10 classes",
          "[plugins][synthetic]") {
  CHECK_NOTHROW(SyntheticSource::schema().check_well_formed());
  auto info = make({}).info();
  CHECK(info.size == 1024);
  CHECK(info.shape == contra::ImageShape{28, 28, 1});
  CHECK(info.num_classes == 10);
}

TEST_CASE("synthetic: images have the declared shape and dtype", "[plugins][synthetic]") {
  auto src = make({{"size", std::int64_t(7)}, {"height", std::int64_t(20)}, {"width", std::int64_t(30)},
                   {"channels", std::int64_t(3)}, {"classes", std::int64_t(4)}});
  CHECK(src.info().shape == contra::ImageShape{20, 30, 3});
  Tensor img;
  src.load(6, img);
  CHECK(img.shape() == contra::Shape{20, 30, 3});
  CHECK(img.dtype() == contra::DType::u8);
}

TEST_CASE("synthetic: same parameters give the same pixels", "[plugins][synthetic]") {
  auto a = make({{"seed", std::int64_t(5)}, {"channels", std::int64_t(2)}});
  auto b = make({{"seed", std::int64_t(5)}, {"channels", std::int64_t(2)}});
  Tensor x, y;
  for (std::int64_t i : {0, 1, 17, 1023}) {
    a.load(i, x);
    b.load(i, y);
    CHECK(same_pixels(x, y));
  }
  a.load(3, x);  // reusing the buffer and loading out of order changes nothing
  a.load(9, x);
  a.load(3, x);
  b.load(3, y);
  CHECK(same_pixels(x, y));
}

TEST_CASE("synthetic: different indices and different seeds give different pixels", "[plugins][synthetic]") {
  auto a = make({});
  auto b = make({{"seed", std::int64_t(1)}});
  Tensor x, y;
  a.load(0, x);
  a.load(10, y);  // same class, different sample
  CHECK_FALSE(same_pixels(x, y));
  a.load(1, y);  // different class
  CHECK_FALSE(same_pixels(x, y));
  CHECK(b.load(0, y) == 0);  // same sample and label, other seed
  CHECK_FALSE(same_pixels(x, y));
}

TEST_CASE("synthetic: label is index modulo classes", "[plugins][synthetic]") {
  auto src = make({{"size", std::int64_t(10)}, {"classes", std::int64_t(3)}});
  Tensor img;
  for (std::int64_t i = 0; i < 10; ++i) CHECK(src.load(i, img) == i % 3);
  CHECK(src.labels() == std::vector<std::int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0});
  CHECK(src.info().num_classes == 3);
}

TEST_CASE("synthetic: load rejects an index out of range", "[plugins][synthetic]") {
  auto src = make({{"size", std::int64_t(10)}});
  Tensor img;
  CHECK_THROWS_AS(src.load(10, img), contra::DataError);
  CHECK_THROWS_WITH(src.load(10, img), "synthetic: sample index 10 is out of range for 10 samples");
  CHECK_THROWS_WITH(src.load(-1, img), "synthetic: sample index -1 is out of range for 10 samples");
}

TEST_CASE("synthetic: pixels use the range without saturating", "[plugins][synthetic]") {
  auto src = make({{"channels", std::int64_t(3)}});
  Tensor img;
  double sum = 0;
  std::int64_t n = 0, lo = 0, hi = 0;
  for (std::int64_t i = 0; i < 100; ++i) {
    src.load(i, img);
    const std::uint8_t* p = img.data<std::uint8_t>();
    for (std::int64_t k = 0; k < img.numel(); ++k, ++n) {
      sum += p[k];
      lo += p[k] == 0;
      hi += p[k] == 255;
    }
  }
  CHECK(sum / double(n) > 40);
  CHECK(sum / double(n) < 200);
  CHECK(double(lo + hi) / double(n) < 0.05);
}

TEST_CASE("synthetic: classes are separable by nearest class mean", "[plugins][synthetic]") {
  const std::int64_t classes = 10, train = 1000, test = 1000;
  auto src = make({{"size", train + test}, {"classes", classes}, {"seed", std::int64_t(3)}});
  const std::size_t d = 28 * 28;
  std::vector<double> mean(static_cast<std::size_t>(classes) * d, 0.0);
  Tensor img;
  for (std::int64_t i = 0; i < train; ++i) {
    auto c = static_cast<std::size_t>(src.load(i, img));
    for (std::size_t k = 0; k < d; ++k) mean[c * d + k] += img.data<std::uint8_t>()[k] / double(train / classes);
  }
  std::int64_t correct = 0;
  for (std::int64_t i = train; i < train + test; ++i) {
    std::int64_t label = src.load(i, img), best = -1;
    double best_dist = 1e300;
    for (std::int64_t c = 0; c < classes; ++c) {
      double dist = 0;
      for (std::size_t k = 0; k < d; ++k) {
        double e = img.data<std::uint8_t>()[k] - mean[static_cast<std::size_t>(c) * d + k];
        dist += e * e;
      }
      if (dist < best_dist) best_dist = dist, best = c;
    }
    correct += best == label;
  }
  INFO("nearest-class-mean accuracy " << double(correct) / double(test));
  CHECK(double(correct) / double(test) > 0.9);
  CHECK(double(correct) / double(test) < 1.0001);
}
