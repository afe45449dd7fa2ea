#include <contra/batch_stats.hpp>
#include <contra/nn/batch_norm.hpp>

#include "layer_check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

using namespace contra;
using contra::test::check_layer_gradients;
using contra::test::random_tensor;

namespace {

// Per-channel statistics and normalisation in double over x viewed as
// [M, C] (NHWC flattens to rows of C channels).
struct RefStats {
  std::vector<double> mean, var;  // var biased
};

RefStats ref_stats(const Tensor& x) {
  const std::int64_t c = x.dim(x.rank() - 1), m = x.numel() / c;
  const float* p = x.data<float>();
  RefStats s{std::vector<double>(c, 0.0), std::vector<double>(c, 0.0)};
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < c; ++j) s.mean[j] += p[i * c + j];
  for (auto& v : s.mean) v /= static_cast<double>(m);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < c; ++j) s.var[j] += (p[i * c + j] - s.mean[j]) * (p[i * c + j] - s.mean[j]);
  for (auto& v : s.var) v /= static_cast<double>(m);
  return s;
}

std::vector<double> ref_normalise(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                                  const Tensor& gamma, const Tensor& beta, double eps) {
  const std::int64_t c = x.dim(x.rank() - 1), m = x.numel() / c;
  const float* p = x.data<float>();
  std::vector<double> y(x.numel());
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < c; ++j)
      y[i * c + j] = gamma.data<float>()[j] * (p[i * c + j] - mean[j]) / std::sqrt(var[j] + eps) +
                     beta.data<float>()[j];
  return y;
}

void check_close(const Tensor& got, const std::vector<double>& want, double tol) {
  REQUIRE(static_cast<std::size_t>(got.numel()) == want.size());
  const float* p = got.data<float>();
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(p[i] == Approx(want[i]).margin(tol));
  }
}

void randomise_affine(nn::BatchNorm& bn, std::uint64_t key) {
  Tensor g = random_tensor({bn.channels()}, key, 0.5, 1.5);
  Tensor b = random_tensor({bn.channels()}, key + 1, -0.5, 0.5);
  for (std::int64_t c = 0; c < bn.channels(); ++c) {
    bn.weight().value.data<float>()[c] = g.data<float>()[c];
    bn.bias().value.data<float>()[c] = b.data<float>()[c];
  }
}

// Synchronised batch norm: ranks as threads.

// Sums across `ranks` threads, one Rank each: every thread deposits its
// values, waits for the others, then adds the deposits in rank order, so all
// get the same bits back (as an all-reduce must).
class ThreadReducer {
 public:
  class Rank final : public BatchStatsReducer {
   public:
    Rank(ThreadReducer& group, int rank) : group_(group), rank_(rank) {}
    void sum(double* values, std::size_t n) override {
      group_.deposits_[rank_].assign(values, values + n);
      group_.barrier_.arrive_and_wait();
      for (std::size_t i = 0; i < n; ++i) {
        double total = 0;
        for (const auto& d : group_.deposits_) total += d.at(i);  // at(): every rank passed the same n
        values[i] = total;
      }
      group_.barrier_.arrive_and_wait();  // no deposit is overwritten before everyone has read it
      ++calls;
    }
    int calls = 0;

   private:
    ThreadReducer& group_;
    int rank_;
  };

  explicit ThreadReducer(int ranks) : deposits_(ranks), barrier_(ranks) {}

 private:
  std::vector<std::vector<double>> deposits_;
  std::barrier<> barrier_;
};

// One rank: sums over itself (values unchanged); counts the calls and their sizes.
struct CountingReducer final : BatchStatsReducer {
  void sum(double*, std::size_t n) override { sizes.push_back(n); }
  std::vector<std::size_t> sizes;
};

std::unique_ptr<nn::Layer> make_norm(bool relu, std::int64_t c) {
  if (relu) return std::make_unique<nn::BatchNormReLU>("bn", c);
  return std::make_unique<nn::BatchNorm>("bn", c);
}

nn::BatchNorm& norm_of(nn::Layer& layer) {
  if (auto* fused = dynamic_cast<nn::BatchNormReLU*>(&layer)) return fused->batch_norm();
  return dynamic_cast<nn::BatchNorm&>(layer);
}

// Runs f(rank) on one thread per rank, each with its Rank of one ThreadReducer
// installed; rethrows the first exception. Catch's assertions are not
// thread-safe: f only computes, the caller checks.
void on_ranks(int ranks, const std::function<void(int)>& f, std::vector<int>* calls = nullptr) {
  ThreadReducer group(ranks);
  std::vector<std::unique_ptr<ThreadReducer::Rank>> reducers;
  for (int r = 0; r < ranks; ++r) reducers.push_back(std::make_unique<ThreadReducer::Rank>(group, r));
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      ScopedBatchStatsReducer installed(reducers[r].get());
      try {
        f(r);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  if (calls)
    for (auto& r : reducers) calls->push_back(r->calls);
}

void check_rows_close(const Tensor& part, const Tensor& whole, std::int64_t first_row, double rel, double abs) {
  const std::int64_t per_row = whole.numel() / whole.dim(0);
  const float* p = part.data<float>();
  const float* w = whole.data<float>() + first_row * per_row;
  for (std::int64_t i = 0; i < part.numel(); ++i) {
    INFO("element " << i << " of rows from " << first_row);
    REQUIRE(p[i] == Approx(w[i]).epsilon(rel).margin(abs));
  }
}

}  // namespace

TEST_CASE("batch_norm: parameters, buffers and their initial values", "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("layer1.bn", 3);
  std::vector<Parameter*> ps;
  bn.parameters(ps);
  REQUIRE(ps.size() == 2);
  CHECK(ps[0]->name == "layer1.bn.weight");
  CHECK(ps[1]->name == "layer1.bn.bias");
  CHECK_FALSE(ps[0]->decay);
  CHECK_FALSE(ps[1]->decay);
  std::vector<std::pair<std::string, Tensor*>> bs;
  bn.buffers(bs);
  REQUIRE(bs.size() == 2);
  CHECK(bs[0].first == "layer1.bn.running_mean");
  CHECK(bs[1].first == "layer1.bn.running_var");
  for (int c = 0; c < 3; ++c) {
    CHECK(ps[0]->value.data<float>()[c] == 1.0f);
    CHECK(ps[1]->value.data<float>()[c] == 0.0f);
    CHECK(ps[0]->grad.data<float>()[c] == 0.0f);
    CHECK(bs[0].second->data<float>()[c] == 0.0f);
    CHECK(bs[1].second->data<float>()[c] == 1.0f);
  }
  CHECK(bn.momentum() == 0.1);
  CHECK(bn.eps() == 1e-5);
}

TEST_CASE("batch_norm: train-mode forward and running statistics match a reference (NHWC)",
          "[sdk][nn][batch_norm]") {
  const double mom = 0.25, eps = 1e-3;
  nn::BatchNorm bn("bn", 4, mom, eps);
  randomise_affine(bn, 10);
  std::vector<double> rm(4, 0.0), rv(4, 1.0);
  for (int step = 0; step < 2; ++step) {
    Tensor x = random_tensor({2, 3, 5, 4}, 20 + step, -1.0 + step, 2.0 + step);
    RefStats s = ref_stats(x);
    const Tensor& y = bn.forward(x, Mode::train);
    CHECK(y.shape() == x.shape());
    check_close(y, ref_normalise(x, s.mean, s.var, bn.weight().value, bn.bias().value, eps), 1e-4);
    const double m = 2 * 3 * 5;
    for (int c = 0; c < 4; ++c) {
      rm[c] = (1 - mom) * rm[c] + mom * s.mean[c];
      rv[c] = (1 - mom) * rv[c] + mom * s.var[c] * m / (m - 1);  // unbiased
      INFO("step " << step << ", channel " << c);
      CHECK(bn.running_mean().data<float>()[c] == Approx(rm[c]).margin(1e-5));
      CHECK(bn.running_var().data<float>()[c] == Approx(rv[c]).margin(1e-5));
    }
  }
}

TEST_CASE("batch_norm: train-mode forward on [N, C] features (BatchNorm1d)", "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("fc_bn", 5);
  randomise_affine(bn, 30);
  Tensor x = random_tensor({6, 5}, 31, -2.0, 3.0);
  RefStats s = ref_stats(x);
  const Tensor& y = bn.forward(x, Mode::train);
  CHECK(y.shape() == x.shape());
  check_close(y, ref_normalise(x, s.mean, s.var, bn.weight().value, bn.bias().value, 1e-5), 1e-4);
  for (int c = 0; c < 5; ++c) {
    CHECK(bn.running_mean().data<float>()[c] == Approx(0.1 * s.mean[c]).margin(1e-6));
    CHECK(bn.running_var().data<float>()[c] == Approx(0.9 + 0.1 * s.var[c] * 6 / 5).margin(1e-5));
  }
}

TEST_CASE("batch_norm: eval mode normalises with the running statistics and updates nothing",
          "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("bn", 3);
  randomise_affine(bn, 40);
  std::vector<double> mean{0.5, -1.0, 2.0}, var{0.25, 2.0, 1.5};
  for (int c = 0; c < 3; ++c) {
    bn.running_mean().data<float>()[c] = static_cast<float>(mean[c]);
    bn.running_var().data<float>()[c] = static_cast<float>(var[c]);
  }
  for (Shape s : {Shape{2, 3, 3, 3}, Shape{4, 3}}) {
    Tensor x = random_tensor(s, 41);
    const Tensor& y = bn.forward(x, Mode::eval);
    check_close(y, ref_normalise(x, mean, var, bn.weight().value, bn.bias().value, 1e-5), 1e-5);
  }
  for (int c = 0; c < 3; ++c) {
    CHECK(bn.running_mean().data<float>()[c] == static_cast<float>(mean[c]));
    CHECK(bn.running_var().data<float>()[c] == static_cast<float>(var[c]));
  }
  // A single sample is fine in eval mode.
  CHECK_NOTHROW(bn.forward(random_tensor({1, 3}, 42), Mode::eval));
}

TEST_CASE("batch_norm: train-mode gradients (dx, dgamma, dbeta) match finite differences",
          "[sdk][nn][batch_norm]") {
  SECTION("NHWC") {
    nn::BatchNorm bn("bn", 3);
    randomise_affine(bn, 50);
    CHECK(check_layer_gradients(bn, random_tensor({2, 3, 4, 3}, 51)) <= 1.0);
  }
  SECTION("[N, C]") {
    nn::BatchNorm bn("bn", 4);
    randomise_affine(bn, 52);
    CHECK(check_layer_gradients(bn, random_tensor({5, 4}, 53)) <= 1.0);
  }
}

TEST_CASE("batch_norm: eval-mode gradients (frozen statistics) match finite differences",
          "[sdk][nn][batch_norm]") {
  contra::test::GradCheckOptions o;
  o.mode = Mode::eval;
  for (Shape s : {Shape{2, 3, 2, 3}, Shape{4, 3}}) {
    nn::BatchNorm bn("bn", 3);
    randomise_affine(bn, 60);
    bn.running_mean().data<float>()[1] = 0.3f;
    bn.running_var().data<float>()[2] = 0.5f;
    CHECK(check_layer_gradients(bn, random_tensor(s, 61), o) <= 1.0);
  }
}

TEST_CASE("batch_norm: backward accumulates into the parameter gradients", "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("bn", 2);
  randomise_affine(bn, 70);
  Tensor x = random_tensor({3, 2, 2, 2}, 71);
  Tensor dy = random_tensor(x.shape(), 72);
  bn.forward(x, Mode::train);
  Tensor dx1 = bn.backward(dy).clone();
  Tensor g1 = bn.weight().grad.clone(), b1 = bn.bias().grad.clone();
  bn.forward(x, Mode::train);
  const Tensor& none = bn.backward(dy, false);
  CHECK_FALSE(none.defined());
  for (int c = 0; c < 2; ++c) {
    CHECK(bn.weight().grad.data<float>()[c] == Approx(2 * g1.data<float>()[c]).margin(1e-6));
    CHECK(bn.bias().grad.data<float>()[c] == Approx(2 * b1.data<float>()[c]).margin(1e-6));
  }
  // dbeta is the plain sum of dy per channel.
  double sum0 = 0;
  for (std::int64_t i = 0; i < dy.numel(); i += 2) sum0 += dy.data<float>()[i];
  CHECK(b1.data<float>()[0] == Approx(sum0).margin(1e-5));
  // Train-mode dx sums to zero per channel (the mean is subtracted).
  double dsum = 0;
  for (std::int64_t i = 1; i < dx1.numel(); i += 2) dsum += dx1.data<float>()[i];
  CHECK(dsum == Approx(0).margin(1e-5));
}

TEST_CASE("batch_norm: shapes can change between calls and return", "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("bn", 3);
  for (Shape s : {Shape{2, 2, 2, 3}, Shape{4, 3}, Shape{1, 3, 5, 3}, Shape{2, 2, 2, 3}}) {
    Tensor x = random_tensor(s, 80 + s.numel());
    RefStats st = ref_stats(x);
    const Tensor& y = bn.forward(x, Mode::train);
    REQUIRE(y.shape() == s);
    check_close(y, ref_normalise(x, st.mean, st.var, bn.weight().value, bn.bias().value, 1e-5), 1e-4);
    const Tensor& dx = bn.backward(random_tensor(s, 90));
    CHECK(dx.shape() == s);
  }
}

TEST_CASE("batch_norm: steady state reuses its output and gradient buffers", "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("bn", 8);
  Tensor x = random_tensor({4, 5, 5, 8}, 100), dy = random_tensor(x.shape(), 101);
  const void* y0 = bn.forward(x, Mode::train).raw();
  const void* dx0 = bn.backward(dy).raw();
  for (int i = 0; i < 3; ++i) {
    CHECK(bn.forward(x, i == 1 ? Mode::eval : Mode::train).raw() == y0);
    CHECK(bn.backward(dy).raw() == dx0);
  }
}

TEST_CASE("batch_norm: errors name the layer, what was found and what was expected", "[sdk][nn][batch_norm]") {
  nn::BatchNorm bn("enc.bn1", 4);
  CHECK_THROWS_WITH(bn.backward(random_tensor({2, 4}, 1)),
                    "BatchNorm 'enc.bn1': backward() called without a forward() to differentiate");
  CHECK_THROWS_WITH(bn.forward(random_tensor({2, 3, 3, 5}, 1), Mode::train),
                    "BatchNorm 'enc.bn1': expected an f32 cpu tensor [N, C] or [N, H, W, C] with C = 4, got "
                    "f32 cpu [2, 3, 3, 5]");
  CHECK_THROWS_WITH(bn.forward(random_tensor({2, 3, 4}, 1), Mode::eval),
                    "BatchNorm 'enc.bn1': expected an f32 cpu tensor [N, C] or [N, H, W, C] with C = 4, got "
                    "f32 cpu [2, 3, 4]");
  CHECK_THROWS_WITH(bn.forward(Tensor::zeros({2, 4}, DType::i64), Mode::eval),
                    "BatchNorm 'enc.bn1': expected an f32 cpu tensor [N, C] or [N, H, W, C] with C = 4, got "
                    "i64 cpu [2, 4]");
  CHECK_THROWS_WITH(bn.forward(random_tensor({1, 4}, 1), Mode::train),
                    "BatchNorm 'enc.bn1': train mode needs more than one value per channel, got input [1, 4]");
  bn.forward(random_tensor({2, 4}, 1), Mode::train);
  CHECK_THROWS_WITH(bn.backward(random_tensor({3, 4}, 1)),
                    "BatchNorm 'enc.bn1' backward dy: expected a f32 tensor of shape [2, 4], got f32 [3, 4]");
  CHECK_THROWS_WITH(nn::BatchNorm("b", 0), "BatchNorm 'b': channels must be >= 1, got 0");
  CHECK_THROWS_WITH(nn::BatchNorm("b", 2, 1.5), "BatchNorm 'b': momentum must be in [0, 1], got 1.5");
  CHECK_THROWS_WITH(nn::BatchNorm("b", 2, 0.1, 0.0), "BatchNorm 'b': eps must be > 0, got 0");
}

TEST_CASE("batch_norm_relu: equals BatchNorm then ReLU, train and eval, forward and backward",
          "[sdk][nn][batch_norm]") {
  for (Shape s : {Shape{4, 5, 3, 8}, Shape{6, 17}, Shape{2, 7, 7, 33}}) {
    INFO("input " << s.str());
    const std::int64_t c = s[s.rank() - 1];
    nn::BatchNormReLU fused("bn", c);
    nn::BatchNorm bn("bn", c);
    randomise_affine(bn, 110);
    randomise_affine(fused.batch_norm(), 110);
    for (Mode mode : {Mode::train, Mode::eval, Mode::train}) {
      INFO((mode == Mode::train ? "train" : "eval"));
      Tensor x = random_tensor(s, 111 + s.numel()), dy = random_tensor(s, 112);
      const Tensor& y_fused = fused.forward(x, mode);
      Tensor y = bn.forward(x, mode).clone();
      for (std::int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = std::max(y.data<float>()[i], 0.0f);
      std::int64_t zeros = 0;
      for (std::int64_t i = 0; i < y.numel(); ++i) {
        REQUIRE(y_fused.data<float>()[i] == Approx(y.data<float>()[i]).margin(1e-6));
        zeros += y.data<float>()[i] == 0;
      }
      CHECK(zeros > y.numel() / 5);  // the ReLU cuts something
      CHECK(zeros < y.numel() * 4 / 5);
      Tensor dx_fused = fused.backward(dy).clone();
      // ReLU's backward by hand: nn::ReLU differentiates train-mode calls only.
      Tensor masked = dy.clone();
      for (std::int64_t i = 0; i < y.numel(); ++i)
        if (!(y.data<float>()[i] > 0)) masked.data<float>()[i] = 0;
      const Tensor& dx = bn.backward(masked);
      for (std::int64_t i = 0; i < dx.numel(); ++i)
        REQUIRE(dx_fused.data<float>()[i] == Approx(dx.data<float>()[i]).margin(1e-5));
      for (int k = 0; k < 2; ++k) {
        const Parameter& a = k == 0 ? fused.batch_norm().weight() : fused.batch_norm().bias();
        const Parameter& b = k == 0 ? bn.weight() : bn.bias();
        for (std::int64_t i = 0; i < c; ++i) REQUIRE(a.grad.data<float>()[i] == Approx(b.grad.data<float>()[i]).margin(1e-4));
      }
    }
    // Same statistics, parameter and buffer names as BatchNorm: checkpoints interchange.
    std::vector<Parameter*> pf, pb;
    fused.parameters(pf);
    bn.parameters(pb);
    REQUIRE(pf.size() == pb.size());
    for (std::size_t i = 0; i < pf.size(); ++i) CHECK(pf[i]->name == pb[i]->name);
    std::vector<std::pair<std::string, Tensor*>> bf, bb;
    fused.buffers(bf);
    bn.buffers(bb);
    REQUIRE(bf.size() == 2);
    for (std::size_t i = 0; i < bf.size(); ++i) {
      CHECK(bf[i].first == bb[i].first);
      for (std::int64_t k = 0; k < c; ++k)
        CHECK(bf[i].second->data<float>()[k] == Approx(bb[i].second->data<float>()[k]).margin(1e-6));
    }
  }
  nn::BatchNormReLU named("enc.bn1", 4);
  CHECK_THROWS_WITH(named.backward(random_tensor({2, 4}, 1)),
                    "BatchNormReLU 'enc.bn1': backward() called without a forward() to differentiate");
}

TEST_CASE("batch_norm: synchronised over two ranks equals one BatchNorm over the whole batch",
          "[sdk][nn][batch_norm]") {
  struct Case {
    Shape whole;
    std::int64_t split;  // rank 0's rows (samples); rank 1 has the rest
  };
  for (std::int64_t c : {3, 17})
    for (bool relu : {false, true})
      for (Case k : {Case{{8, 3, 2, c}, 5}, Case{{8, c}, 3}, Case{{2, c}, 1}}) {
        INFO((relu ? "BatchNormReLU" : "BatchNorm") << ", input " << k.whole.str() << " split " << k.split);
        const std::int64_t n = k.whole[0], rows[2] = {k.split, n - k.split}, first[2] = {0, k.split};
        auto whole = make_norm(relu, c);
        std::unique_ptr<nn::Layer> ranks[2] = {make_norm(relu, c), make_norm(relu, c)};
        for (nn::Layer* l : {whole.get(), ranks[0].get(), ranks[1].get()}) randomise_affine(norm_of(*l), 200);
        // Two steps: the second starts from updated running statistics and reuses the cached primitives.
        for (int step = 0; step < 2; ++step) {
          INFO("step " << step);
          Tensor x = random_tensor(k.whole, 201 + step, -1.0 + step, 2.0), dy = random_tensor(k.whole, 203 + step);
          Tensor y = whole->forward(x, Mode::train).clone();
          Tensor dx = whole->backward(dy).clone();
          Tensor y_rank[2], dx_rank[2];
          std::vector<int> calls;
          on_ranks(
              2,
              [&](int r) {
                Tensor xr = x.rows(first[r], first[r] + rows[r]), dyr = dy.rows(first[r], first[r] + rows[r]);
                y_rank[r] = ranks[r]->forward(xr, Mode::train).clone();
                dx_rank[r] = ranks[r]->backward(dyr).clone();
              },
              &calls);
          CHECK(calls == std::vector<int>{2, 2});
          // dx is a difference of terms as large as γ/σ·|dy|, each right to
          // f32's precision. With two rows per channel those terms cancel
          // but for eps/(σ² + eps), and the two computations (oneDNN's, and
          // the synchronised one) differ by f32 rounding of the terms, not of
          // dx (seen: 2e-6 of γ/σ·|dy| in a baseline -O1 build). The margin
          // scales with them.
          const RefStats stats = ref_stats(x);
          double terms = 0;
          nn::BatchNorm& bn = norm_of(*whole);
          for (std::int64_t j = 0; j < c; ++j)
            terms = std::max(terms, std::abs(static_cast<double>(bn.weight().value.data<float>()[j])) /
                                        std::sqrt(stats.var[j] + bn.eps()));
          double dy_max = 0;
          for (std::int64_t i = 0; i < dy.numel(); ++i) dy_max = std::max(dy_max, std::abs(double(dy.data<float>()[i])));
          const double dx_margin = 1e-5 + 1e-5 * terms * dy_max;
          for (int r = 0; r < 2; ++r) {
            {
              INFO("output");
              check_rows_close(y_rank[r], y, first[r], 1e-5, 1e-5);
            }
            {
              INFO("input gradient, margin " << dx_margin);
              check_rows_close(dx_rank[r], dx, first[r], 1e-4, dx_margin);
            }
          }
          nn::BatchNorm &bw = norm_of(*whole), &b0 = norm_of(*ranks[0]), &b1 = norm_of(*ranks[1]);
          for (std::int64_t j = 0; j < c; ++j) {
            INFO("channel " << j);
            // Each rank adds its own share: the runtime sums parameter gradients across ranks.
            CHECK(b0.weight().grad.data<float>()[j] + b1.weight().grad.data<float>()[j] ==
                  Approx(bw.weight().grad.data<float>()[j]).margin(1e-4));
            CHECK(b0.bias().grad.data<float>()[j] + b1.bias().grad.data<float>()[j] ==
                  Approx(bw.bias().grad.data<float>()[j]).margin(1e-4));
            CHECK(b0.running_mean().data<float>()[j] == Approx(bw.running_mean().data<float>()[j]).margin(1e-6));
            CHECK(b0.running_var().data<float>()[j] == Approx(bw.running_var().data<float>()[j]).margin(1e-6));
            CHECK(b0.running_mean().data<float>()[j] == b1.running_mean().data<float>()[j]);
            CHECK(b0.running_var().data<float>()[j] == b1.running_var().data<float>()[j]);
          }
        }
      }
}

TEST_CASE("batch_norm: synchronised with a large mean relative to the spread", "[sdk][nn][batch_norm]") {
  // E[x²] − μ² in double: with the mean 1700 standard deviations away the
  // variance still comes out f32-exact. The output's tolerance is that of μ
  // itself in f32 (an ulp of 1000 is 6e-5, σ is 0.58).
  const std::int64_t c = 5, m = 6 * 4 * 4;
  Tensor x = random_tensor({6, 4, 4, c}, 210, 999.0, 1001.0);
  RefStats s = ref_stats(x);
  nn::BatchNorm rank0("bn", c, 1.0), rank1("bn", c, 1.0);  // momentum 1: running = this batch's
  Tensor y_rank[2];
  on_ranks(2, [&](int r) {
    y_rank[r] = (r == 0 ? rank0 : rank1).forward(x.rows(3 * r, 3 * r + 3), Mode::train).clone();
  });
  std::vector<double> y = ref_normalise(x, s.mean, s.var, rank0.weight().value, rank0.bias().value, 1e-5);
  check_close(y_rank[0], std::vector<double>(y.begin(), y.begin() + y.size() / 2), 2e-4);
  check_close(y_rank[1], std::vector<double>(y.begin() + y.size() / 2, y.end()), 2e-4);
  for (std::int64_t j = 0; j < c; ++j) {
    CHECK(rank0.running_mean().data<float>()[j] == Approx(s.mean[j]).epsilon(1e-7));
    CHECK(rank0.running_var().data<float>()[j] == Approx(s.var[j] * m / (m - 1)).epsilon(1e-6));
  }
}

TEST_CASE("batch_norm: the reducer is called once per synchronised forward and once per backward",
          "[sdk][nn][batch_norm]") {
  const std::int64_t c = 4;
  Tensor x = random_tensor({3, 2, 2, c}, 220), dy = random_tensor(x.shape(), 221);
  CountingReducer counter;
  for (bool relu : {false, true}) {
    INFO((relu ? "BatchNormReLU" : "BatchNorm"));
    auto layer = make_norm(relu, c);
    counter.sizes.clear();
    {
      ScopedBatchStatsReducer installed(&counter);
      layer->forward(x, Mode::train);
      CHECK(counter.sizes == std::vector<std::size_t>{2 * c + 1});  // Σx, Σx², the count
      layer->backward(dy);
      CHECK(counter.sizes == std::vector<std::size_t>{2 * c + 1, 2 * c});  // Σdy'·x̂, Σdy'
      // No input gradient wanted (the same on every rank): the backward needs no global sums.
      layer->forward(x, Mode::train);
      layer->backward(dy, false);
      CHECK(counter.sizes.size() == 3);
      // Eval mode normalises with the running statistics: nothing to sum.
      layer->forward(x, Mode::eval);
      layer->backward(dy);
      CHECK(counter.sizes.size() == 3);
    }
    // None installed: the local batch, no calls.
    layer->forward(x, Mode::train);
    layer->backward(dy);
    CHECK(counter.sizes.size() == 3);
  }
}

TEST_CASE("batch_norm: a synchronised run over one rank equals an unsynchronised one", "[sdk][nn][batch_norm]") {
  CountingReducer one_rank;
  for (bool relu : {false, true})
    for (Shape s : {Shape{4, 5, 3, 8}, Shape{6, 17}}) {
      INFO((relu ? "BatchNormReLU" : "BatchNorm") << ", input " << s.str());
      const std::int64_t c = s[s.rank() - 1];
      auto plain = make_norm(relu, c), synced = make_norm(relu, c);
      randomise_affine(norm_of(*plain), 230);
      randomise_affine(norm_of(*synced), 230);
      for (int step = 0; step < 2; ++step) {
        Tensor x = random_tensor(s, 231 + step), dy = random_tensor(s, 233 + step);
        Tensor y = plain->forward(x, Mode::train).clone(), dx = plain->backward(dy).clone();
        ScopedBatchStatsReducer installed(&one_rank);
        check_rows_close(synced->forward(x, Mode::train), y, 0, 1e-5, 1e-5);
        check_rows_close(synced->backward(dy), dx, 0, 1e-4, 1e-4);
      }
      nn::BatchNorm &a = norm_of(*synced), &b = norm_of(*plain);
      for (std::int64_t j = 0; j < c; ++j) {
        CHECK(a.weight().grad.data<float>()[j] == Approx(b.weight().grad.data<float>()[j]).margin(1e-4));
        CHECK(a.bias().grad.data<float>()[j] == Approx(b.bias().grad.data<float>()[j]).margin(1e-4));
        CHECK(a.running_mean().data<float>()[j] == Approx(b.running_mean().data<float>()[j]).margin(1e-6));
        CHECK(a.running_var().data<float>()[j] == Approx(b.running_var().data<float>()[j]).margin(1e-6));
      }
    }
}

TEST_CASE("batch_norm: synchronised, the count that must exceed one is the global batch's",
          "[sdk][nn][batch_norm]") {
  CountingReducer one_rank;
  nn::BatchNorm bn("enc.bn1", 4);
  ScopedBatchStatsReducer installed(&one_rank);
  CHECK_THROWS_WITH(bn.forward(random_tensor({1, 4}, 1), Mode::train),
                    "BatchNorm 'enc.bn1': train mode needs more than one value per channel across the ranks' "
                    "batches, got 1 (input [1, 4] here)");
  CHECK_THROWS_AS(bn.backward(random_tensor({1, 4}, 2)), UsageError);  // nothing to differentiate
  // A synchronised forward's backward needs the reducer still installed.
  bn.forward(random_tensor({2, 4}, 3), Mode::train);
  {
    ScopedBatchStatsReducer none(nullptr);
    CHECK(batch_stats_reducer() == nullptr);
    CHECK_THROWS_WITH(bn.backward(random_tensor({2, 4}, 4)),
                      "BatchNorm 'enc.bn1': backward() of a forward() synchronised across ranks needs the "
                      "batch-statistics reducer installed on this thread");
  }
  CHECK(batch_stats_reducer() == &one_rank);
}

TEST_CASE("batch_stats: ScopedBatchStatsReducer installs per thread and restores the previous one",
          "[sdk][nn][batch_norm]") {
  CountingReducer a, b;
  CHECK(batch_stats_reducer() == nullptr);
  {
    ScopedBatchStatsReducer outer(&a);
    CHECK(batch_stats_reducer() == &a);
    {
      ScopedBatchStatsReducer inner(&b);
      CHECK(batch_stats_reducer() == &b);
      BatchStatsReducer* elsewhere = &a;
      std::thread([&] { elsewhere = batch_stats_reducer(); }).join();
      CHECK(elsewhere == nullptr);
    }
    CHECK(batch_stats_reducer() == &a);
  }
  CHECK(batch_stats_reducer() == nullptr);
}
