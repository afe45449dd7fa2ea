// contra/testing.hpp: the conformance checks pass on plugins that behave and
// say what is wrong with plugins that do not.
#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>

using namespace contra;
namespace ct = contra::testing;

namespace {

// L = Σ z² / 2 (gradient z), or a wrong gradient (2z), or a value that
// changes on each call.
class SquareLoss final : public Loss {
 public:
  static Schema schema() {
    return Schema("square_loss", "half the sum of squares")
        .add<std::string>("mode", "right", "right, wrong_gradient or drifting")
        .choices({"right", "wrong_gradient", "drifting"});
  }
  explicit SquareLoss(const Params& p) : mode_(p.get<std::string>("mode")) {}
  void compute(const Embeddings& e, const Pairs&, LossResult& out) override {
    out.grad.ensure(e.z.shape(), DType::f32);
    double s = 0;
    for (std::int64_t i = 0; i < e.z.numel(); ++i) {
      const float v = e.z.data<float>()[i];
      s += 0.5 * v * v;
      out.grad.data<float>()[i] = mode_ == "wrong_gradient" ? 2 * v : v;
    }
    out.value = s + (mode_ == "drifting" ? 0.001 * static_cast<double>(calls_++) : 0.0);
  }

 private:
  std::string mode_;
  int calls_ = 0;
};

// y = x Wᵀ with W [2, 3]; `bug` forgets dL/dW.
class TinyLinear final : public Encoder {
 public:
  explicit TinyLinear(bool bug) : bug_(bug) {}
  void build(const EncoderContext& ctx) override {
    w_.name = "weight";
    w_.value = ct::random_tensor({2, 3}, ctx.seed);
    w_.grad = Tensor::zeros({2, 3}, DType::f32);
  }
  std::int64_t output_dim() const override { return 2; }
  std::vector<Parameter*> parameters() override { return {&w_}; }
  const Tensor& forward(const Tensor& x, Mode) override {
    x_ = x;
    y_.ensure({x.dim(0), 2}, DType::f32);
    for (std::int64_t n = 0; n < x.dim(0); ++n)
      for (int o = 0; o < 2; ++o) {
        float s = 0;
        for (int i = 0; i < 3; ++i) s += x.data<float>()[n * 3 + i] * w_.value.data<float>()[o * 3 + i];
        y_.data<float>()[n * 2 + o] = s;
      }
    return y_;
  }
  const Tensor& backward(const Tensor& dy, bool) override {
    dx_.ensure(x_.shape(), DType::f32);
    dx_.zero();
    for (std::int64_t n = 0; n < dy.dim(0); ++n)
      for (int o = 0; o < 2; ++o)
        for (int i = 0; i < 3; ++i) {
          const float g = dy.data<float>()[n * 2 + o];
          dx_.data<float>()[n * 3 + i] += g * w_.value.data<float>()[o * 3 + i];
          if (!bug_) w_.grad.data<float>()[o * 3 + i] += g * x_.data<float>()[n * 3 + i];
        }
    return dx_;
  }

 private:
  bool bug_;
  Parameter w_;
  Tensor x_, y_, dx_;
};

// Copies its input, or (lying) announces another size.
class Copy final : public Augmentation {
 public:
  explicit Copy(bool lie) : lie_(lie) {}
  ImageFormat output_format(const ImageFormat& in) const override {
    ImageFormat out = in;
    if (lie_) out.shape.height += 1;
    return out;
  }
  void apply(const Tensor& in, Tensor& out, Rng&) const override {
    out.ensure(in.shape(), in.dtype());
    std::memcpy(out.raw(), in.raw(), in.nbytes());
  }

 private:
  bool lie_;
};

// Lists a negative outside the batch.
class OutOfRange final : public Miner {
 public:
  void mine(const Embeddings& z, Pairs& out) override {
    out.negative.push_back({0, static_cast<std::int32_t>(z.rows())});
  }
};

// Lower-case ASCII letters are ids 4..29, anything else unk (3); or one of
// the ways to break the tokenizer contract.
class Letters final : public Tokenizer {
 public:
  enum class Bug { none, keeps_stale_output, emits_bos, decodes_upper_case };
  explicit Letters(Bug bug) : bug_(bug) {}
  Vocabulary vocabulary() const override { return {30, 0, 1, 2, 3}; }
  void encode(std::string_view text, std::vector<std::int32_t>& out) const override {
    if (bug_ != Bug::keeps_stale_output) out.clear();
    if (bug_ == Bug::emits_bos) out.push_back(1);
    for (char c : text) out.push_back(c >= 'a' && c <= 'z' ? 4 + (c - 'a') : 3);
  }
  std::string decode(const std::vector<std::int32_t>& tokens) const override {
    std::string text;
    const char a = bug_ == Bug::decodes_upper_case ? 'A' : 'a';
    for (std::int32_t id : tokens)
      if (id >= 4 && id < 30) text += static_cast<char>(a + (id - 4));
    return text;
  }

 private:
  Bug bug_;
};

// Drops the first token; or one of the ways to break the text augmentation
// contract.
class DropFirst final : public TextAugmentation {
 public:
  enum class Bug { none, keeps_stale_output, outside_vocabulary, not_reproducible };
  explicit DropFirst(Bug bug) : bug_(bug) {}
  void apply(const std::vector<std::int32_t>& in, std::vector<std::int32_t>& out, const Vocabulary& vocabulary,
             Rng&) const override {
    if (bug_ != Bug::keeps_stale_output) out.clear();
    if (!in.empty()) out.insert(out.end(), in.begin() + 1, in.end());
    if (bug_ == Bug::outside_vocabulary) out.push_back(static_cast<std::int32_t>(vocabulary.size));
    if (bug_ == Bug::not_reproducible && calls_++ % 2 == 1) out.push_back(vocabulary.unk);
  }

 private:
  Bug bug_;
  mutable std::atomic<int> calls_{0};
};

class NeedsPath final : public Miner {
 public:
  static Schema schema() {
    return Schema("needs_path", "a required parameter").required<std::string>("path", "a file");
  }
  explicit NeedsPath(const Params& p) {
    if (p.get<std::string>("path").empty()) throw ConfigError("path is empty");
  }
  void mine(const Embeddings&, Pairs& out) override { out.all = true; }
};

}  // namespace

TEST_CASE("testing: check_schema accepts a good schema and constructs the plugin", "[sdk][testing]") {
  ct::CheckResult r = ct::check_schema<SquareLoss>();
  INFO(r.message);
  CHECK(r.ok);
  CHECK(r.message.empty());
}

TEST_CASE("testing: check_schema names what is wrong", "[sdk][testing]") {
  ct::CheckResult dup = ct::check_schema(Schema("x", "y").add<int>("a", 1, "h").add<int>("a", 2, "h"));
  CHECK_FALSE(dup);
  CHECK(dup.message == "schema is malformed: schema of plugin 'x' declares parameter 'a' twice");
  ct::CheckResult range = ct::check_schema(Schema("x", "y").add<double>("t", 20.0, "h").range(0, 1));
  CHECK(range.message == "schema is malformed: schema of plugin 'x': default of 't' is invalid: expected a value in "
                         "[0, 1], found 20.0");
  ct::CheckResult name = ct::check_schema(Schema("My-Loss", "y"));
  CHECK(name.message == "plugin name 'My-Loss' is not a lower-case identifier ([a-z][a-z0-9_]*), which pipelines "
                        "name it by");
  ct::CheckResult required = ct::check_schema<NeedsPath>();
  CHECK(required.message == "parameter 'path' is required: pass a value for it to check_schema()");
  CHECK(ct::check_schema<NeedsPath>({{"path", std::string("a.bin")}}).ok);
  ct::CheckResult ctor = ct::check_schema<NeedsPath>({{"path", std::string("")}});
  CHECK(ctor.message == "constructor rejects the schema's defaults: path is empty");
}

TEST_CASE("testing: check_loss_gradient agrees with a right gradient and catches a wrong one", "[sdk][testing]") {
  auto z = ct::random_embeddings(4, 2, 5, 1);
  auto emb = z.embeddings();
  Pairs all;
  all.all = true;
  SquareLoss right(SquareLoss::schema().bind({}));
  ct::GradientReport ok = ct::check_loss_gradient(right, emb, all);
  INFO(ok.message);
  CHECK(ok.ok);
  CHECK(ok.worst < 1.0);
  CHECK(ok.checked == 32);
  SquareLoss wrong(SquareLoss::schema().bind({{"mode", std::string("wrong_gradient")}}));
  ct::GradientReport bad = ct::check_loss_gradient(wrong, emb, all);
  CHECK_FALSE(bad.ok);
  CHECK(bad.worst > 1.0);
  CHECK_THAT(bad.message, Catch::StartsWith("dL/dz[0]: analytic "));
  CHECK(bad.disagreed > 0);
}

TEST_CASE("testing: check_loss catches a loss that differs between calls", "[sdk][testing]") {
  auto z = ct::random_embeddings(4, 2, 5, 1);
  Pairs all;
  all.all = true;
  SquareLoss right(SquareLoss::schema().bind({}));
  CHECK(ct::check_loss(right, z.embeddings(), all).ok);
  SquareLoss drifting(SquareLoss::schema().bind({{"mode", std::string("drifting")}}));
  ct::CheckResult r = ct::check_loss(drifting, z.embeddings(), all);
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.message, Catch::Contains("for the same inputs"));
}

TEST_CASE("testing: check_encoder_gradients checks dL/dx and dL/dθ", "[sdk][testing]") {
  TinyLinear good(false), bug(true);
  good.build({Shape{3}, 1});
  bug.build({Shape{3}, 1});
  ct::GradientReport ok = ct::check_encoder_gradients(good, ct::random_tensor({4, 3}, 2));
  INFO(ok.message);
  CHECK(ok.ok);
  ct::GradientReport bad = ct::check_encoder_gradients(bug, ct::random_tensor({4, 3}, 2));
  CHECK_FALSE(bad.ok);
  CHECK_THAT(bad.message, Catch::StartsWith("dL/dweight["));
  CHECK(ct::check_encoder_deterministic([] { return std::make_unique<TinyLinear>(false); }, {Shape{3}, 1},
                                        ct::random_tensor({4, 3}, 2))
            .ok);
}

TEST_CASE("testing: check_augmentation compares the output with the announced format", "[sdk][testing]") {
  Tensor img = ct::random_image(5, 6, 3, 1);
  CHECK(ct::check_augmentation(Copy(false), img).ok);
  ct::CheckResult r = ct::check_augmentation(Copy(true), img);
  CHECK(r.message == "apply() produced u8 [5, 6, 3], output_format() announced u8 [6, 6, 3]");
}

TEST_CASE("testing: check_tokenizer passes a tokenizer that keeps the contract and names each broken part",
          "[sdk][testing]") {
  const std::vector<std::string> samples = {"hello", "", "Mixed Case 42", std::string("a\0\xff", 3)};
  ct::CheckResult ok = ct::check_tokenizer(Letters(Letters::Bug::none), samples);
  INFO(ok.message);
  CHECK(ok.ok);
  CHECK(ct::check_tokenizer(Letters(Letters::Bug::keeps_stale_output), {"hi"}).message ==
        "encode(\"hi\") did not clear `out` first");
  CHECK(ct::check_tokenizer(Letters(Letters::Bug::emits_bos), {"hi"}).message ==
        "encode(\"hi\"): holds the special id 1 (pad, bos or eos: the runtime adds those)");
  CHECK(ct::check_tokenizer(Letters(Letters::Bug::decodes_upper_case), {"hi", "x?"}).message ==
        "decode(encode(\"hi\")) is \"HI\", which encodes to other ids");  // "x?" has unk: not re-encoded
}

TEST_CASE("testing: check_text_augmentation passes an augmentation that keeps the contract and names each "
          "broken part", "[sdk][testing]") {
  const Vocabulary vocabulary{50, 0, 1, 2, 3};
  ct::CheckResult ok = ct::check_text_augmentation(DropFirst(DropFirst::Bug::none), vocabulary);
  INFO(ok.message);
  CHECK(ok.ok);
  CHECK_THAT(ct::check_text_augmentation(DropFirst(DropFirst::Bug::keeps_stale_output), vocabulary).message,
             Catch::StartsWith("apply() to 0 tokens did not clear `out` first"));
  CHECK_THAT(ct::check_text_augmentation(DropFirst(DropFirst::Bug::outside_vocabulary), vocabulary).message,
             Catch::StartsWith("apply() to 0 tokens: the output id 50 lies outside the vocabulary [0, 50)"));
  CHECK_THAT(ct::check_text_augmentation(DropFirst(DropFirst::Bug::not_reproducible), vocabulary).message,
             Catch::StartsWith("apply() to 0 tokens gave another output for the same Rng key"));
  CHECK(ct::check_text_augmentation(DropFirst(DropFirst::Bug::none), {4, 0, 1, 2, 3}).message ==
        "the vocabulary given: size 4 leaves no id beside pad, bos, eos and unk");
}

TEST_CASE("testing: check_miner catches indices outside the batch", "[sdk][testing]") {
  auto z = ct::random_embeddings(3, 2, 4, 1);
  OutOfRange m;
  ct::CheckResult r = ct::check_miner(m, z.embeddings());
  CHECK(r.message == "mine(): negative holds (0, 6), outside the batch's 6 rows");
}

TEST_CASE("testing: check_deterministic compares tensors byte for byte", "[sdk][testing]") {
  int calls = 0;
  ct::CheckResult same = ct::check_deterministic([] { return ct::random_tensor({3, 3}, 4); });
  CHECK(same.ok);
  ct::CheckResult differs = ct::check_deterministic([&] { return ct::random_tensor({3, 3}, 4 + calls++); });
  CHECK_THAT(differs.message, Catch::StartsWith("output: differs between two runs with the same seed and inputs"));
  ct::CheckResult vec = ct::check_deterministic([&] { return std::vector<int>{calls++}; }, 2, "plan");
  CHECK(vec.message == "plan: differs between two runs with the same seed and inputs");
}

TEST_CASE("testing: random_embeddings lays rows out as the runtime does", "[sdk][testing]") {
  auto b = ct::random_embeddings(3, 2, 4, 7, 2, true);
  Embeddings e = b.embeddings();
  CHECK(e.rows() == 6);
  CHECK(e.views == 2);
  CHECK(*e.sample == std::vector<std::int64_t>{0, 1, 2, 0, 1, 2});
  CHECK(*e.label == std::vector<std::int64_t>{0, 1, 0, 0, 1, 0});
  double norm = 0;
  for (int d = 0; d < 4; ++d) norm += b.z.data<float>()[d] * b.z.data<float>()[d];
  CHECK(norm == Approx(1.0).epsilon(1e-5));
}

namespace {
// Plugins that throw what is no std::exception (an int, a string literal).
struct ThrowsInt final : Miner {
  void mine(const Embeddings&, Pairs&) override { throw 42; }
};
struct ThrowsText final : Loss {
  void compute(const Embeddings&, const Pairs&, LossResult&) override { throw "a C string"; }
};
}  // namespace

TEST_CASE("testing: a plugin that throws what is no std::exception fails the check, not the test process",
          "[sdk][testing]") {
  auto z = ct::random_embeddings(3, 2, 4, 1);
  ThrowsInt miner;
  ct::CheckResult mined = ct::check_miner(miner, z.embeddings());
  CHECK_FALSE(mined.ok);
  CHECK(mined.message == "mine() threw: it threw something that is not a std::exception");
  Pairs all;
  all.all = true;
  ThrowsText loss;
  ct::CheckResult computed = ct::check_loss(loss, z.embeddings(), all);
  CHECK_FALSE(computed.ok);
  CHECK(computed.message == "compute() threw: it threw something that is not a std::exception");
}

