// contra new-plugin: writes a ready-to-build plugin project for one plugin
// kind: CMakeLists.txt (find_package(contra), contra_add_plugin, a Catch2
// test), NAME.hpp / NAME.cpp with the schema declared and a working skeleton,
// test_NAME.cpp using contra/testing.hpp, and a README. The project builds and
// its test passes as generated.
#include "new_plugin.hpp"

#include <contra/version.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace contra::cli {
namespace {

namespace fs = std::filesystem;

struct KindTemplate {
  const char* role;        // SDK class
  const char* macro;       // CONTRA_LOSS ...
  const char* header;      // SDK header of the role
  const char* section;     // how a pipeline names it
  const char* summary;     // the skeleton's schema summary
  const char* declaration; // members of the class, in NAME.hpp
  const char* definition;  // NAME.cpp body
  const char* test;        // kind-specific test cases
  const char* toml;        // pipeline table
};

// Placeholders: @NAME@ (plugin name), @CLASS@ (class name), @KIND@.
const std::map<std::string, KindTemplate>& templates() {
  static const std::map<std::string, KindTemplate> t = {
      {"loss",
       {"Loss", "CONTRA_LOSS", "contra/roles/loss.hpp", "[loss]",
        "weighted mean squared distance of positive pairs",
        R"~(  /// Loss over the mined pairs and dL/dz into out.grad. Called from one thread.
  void compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) override;

 private:
  double weight_;
  std::vector<std::pair<std::int32_t, std::int32_t>> positives_;  // reused across steps
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [loss] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "weighted mean squared distance of positive pairs")
      .add<double>("weight", 1.0, "factor of the loss").range(0.0, 1e3);
}

@CLASS@::@CLASS@(const contra::Params& p) : weight_(p.get<double>("weight")) {}

// Skeleton: L = weight · mean over positive pairs (i, j) of ½‖z_i − z_j‖²,
// the positives being the miner's list or, without one, every pair of rows
// of one sample. Replace it with your loss; keep out.grad = dL/dz.
void @CLASS@::compute(const contra::Embeddings& z, const contra::Pairs& pairs, contra::LossResult& out) {
  if (!pairs.triplets.empty()) throw contra::UsageError("@NAME@: takes pairs, not triplets");
  const std::int64_t rows = z.rows(), dim = z.z.dim(1);
  positives_.clear();
  if (!pairs.positive.empty() && !pairs.all) {
    positives_ = pairs.positive;
  } else {
    for (std::int32_t i = 0; i < rows; ++i)
      for (std::int32_t j = 0; j < rows; ++j)
        if (i != j && (*z.sample)[i] == (*z.sample)[j]) positives_.push_back({i, j});
  }
  out.grad.ensure(z.z.shape(), contra::DType::f32);
  out.grad.zero();
  const float* x = z.z.data<float>();
  float* g = out.grad.data<float>();
  double sum = 0;
  const double scale = positives_.empty() ? 0.0 : weight_ / static_cast<double>(positives_.size());
  for (const auto& [i, j] : positives_) {
    for (std::int64_t d = 0; d < dim; ++d) {
      const double diff = static_cast<double>(x[i * dim + d]) - x[j * dim + d];
      sum += 0.5 * diff * diff;
      g[i * dim + d] += static_cast<float>(scale * diff);
      g[j * dim + d] -= static_cast<float>(scale * diff);
    }
  }
  out.value = scale * sum;
  out.metrics.push_back({"positive_pairs", static_cast<double>(positives_.size())});
}
)~",
        R"~(TEST_CASE("@NAME@: value and gradient are finite, deterministic and agree with finite differences") {
  auto batch = ct::random_embeddings(8, 2, 16, 1);  // 8 samples, 2 views, 16 dimensions
  contra::Pairs all;
  all.all = true;
  @CLASS@ loss(@CLASS@::schema().bind({}));
  auto r = ct::check_loss(loss, batch.embeddings(), all);
  INFO(r.message);
  CHECK(r.ok);
  auto g = ct::check_loss_gradient(loss, batch.embeddings(), all);
  INFO(g.message);
  CHECK(g.ok);
}
)~",
        "[loss]\nplugin = \"@NAME@\"\nweight = 1.0\n"}},
      {"miner",
       {"Miner", "CONTRA_MINER", "contra/roles/miner.hpp", "[miner]",
        "positive pairs of each sample and, per anchor, its first negatives",
        R"~(  /// Fill `out` (already cleared) from the batch's embeddings. Called from one thread.
  void mine(const contra::Embeddings& z, contra::Pairs& out) override;

 private:
  std::int64_t max_negatives_;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [miner] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "positive pairs of each sample and, per anchor, its first negatives")
      .add<std::int64_t>("max_negatives", 0, "negatives listed per anchor; 0 = every other-sample row")
      .at_least(0);
}

@CLASS@::@CLASS@(const contra::Params& p) : max_negatives_(p.get<std::int64_t>("max_negatives")) {}

// Skeleton: rows r of one sample ((*z.sample)[r] equal) are positives of
// each other; every other row is a negative, the first max_negatives of them
// per anchor when max_negatives > 0. Replace the choice of negatives with
// yours (hardest, semi-hard, sampled, ...): z.z holds the [rows, dim]
// embeddings, z.label the classes when the source has them.
void @CLASS@::mine(const contra::Embeddings& z, contra::Pairs& out) {
  const std::int64_t rows = z.rows();
  for (std::int32_t i = 0; i < rows; ++i) {
    std::int64_t listed = 0;
    for (std::int32_t j = 0; j < rows; ++j) {
      if (i == j) continue;
      if ((*z.sample)[i] == (*z.sample)[j]) {
        out.positive.push_back({i, j});
      } else if (max_negatives_ == 0 || listed < max_negatives_) {
        out.negative.push_back({i, j});
        ++listed;
      }
    }
  }
}
)~",
        R"~(TEST_CASE("@NAME@: pairs are in range and the same on every run") {
  auto batch = ct::random_embeddings(6, 2, 8, 1);  // 6 samples, 2 views, 8 dimensions
  @CLASS@ miner(@CLASS@::schema().bind({{"max_negatives", 3}}));
  auto r = ct::check_miner(miner, batch.embeddings());
  INFO(r.message);
  CHECK(r.ok);
  contra::Pairs pairs;
  miner.mine(batch.embeddings(), pairs);
  CHECK(pairs.positive.size() == 12);     // each row's other view
  CHECK(pairs.negative.size() == 12 * 3);
}
)~",
        "[miner]\nplugin = \"@NAME@\"\nmax_negatives = 0\n"}},
      {"augmentation",
       {"Augmentation", "CONTRA_AUGMENTATION", "contra/roles/augmentation.hpp", "[[augment.chain]]",
        "inverts the image with probability p",
        R"~(  /// Same format out as in: u8 HWC or f32 CHW.
  contra::ImageFormat output_format(const contra::ImageFormat& in) const override;
  /// Randomness only from `rng`; called from several threads at once.
  void apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const override;

 private:
  double p_;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [[augment.chain]] table against this and `contra plugins
  // --describe` prints it.
  return contra::Schema("@NAME@", "inverts the image with probability p")
      .add<double>("p", 0.5, "probability of inverting an image").range(0.0, 1.0);
}

@CLASS@::@CLASS@(const contra::Params& p) : p_(p.get<double>("p")) {}

contra::ImageFormat @CLASS@::output_format(const contra::ImageFormat& in) const { return in; }

// Skeleton: with probability p, u8 pixels become 255 − x (f32 values −x).
// Replace with your transform; draw every random number from `rng` (keyed by
// seed, epoch, sample, view and position in the chain) so that runs are
// reproducible at any thread count, and reuse `out` with out.ensure().
void @CLASS@::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng& rng) const {
  const bool invert = rng.bernoulli(p_);
  out.ensure(in.shape(), in.dtype());
  if (in.dtype() == contra::DType::u8) {
    const std::uint8_t* x = in.data<std::uint8_t>();
    std::uint8_t* y = out.data<std::uint8_t>();
    for (std::int64_t i = 0; i < in.numel(); ++i) y[i] = invert ? static_cast<std::uint8_t>(255 - x[i]) : x[i];
  } else {
    const float* x = in.data<float>();
    float* y = out.data<float>();
    for (std::int64_t i = 0; i < in.numel(); ++i) y[i] = invert ? -x[i] : x[i];
  }
}
)~",
        R"~(TEST_CASE("@NAME@: output matches its format, is reproducible and leaves the input alone") {
  @CLASS@ aug(@CLASS@::schema().bind({}));
  auto r = ct::check_augmentation(aug, ct::random_image(12, 10, 3, 1));
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: p = 1 inverts every pixel") {
  @CLASS@ aug(@CLASS@::schema().bind({{"p", 1.0}}));
  contra::Tensor in = ct::random_image(4, 4, 1, 2), out;
  contra::Rng rng(1, 0, 0, 0, 0);
  aug.apply(in, out, rng);
  for (std::int64_t i = 0; i < in.numel(); ++i)
    CHECK(out.data<std::uint8_t>()[i] == 255 - in.data<std::uint8_t>()[i]);
}
)~",
        "[[augment.chain]]\nplugin = \"@NAME@\"\np = 0.5\n"}},
      {"source",
       {"Source", "CONTRA_SOURCE", "contra/roles/source.hpp", "[source]",
        "generated images, one brightness ramp per class",
        R"~(  contra::SourceInfo info() const override;
  /// Decodes sample `index` into `image` (u8 HWC); called from several threads at once.
  std::int64_t load(std::int64_t index, contra::Tensor& image) const override;
  std::vector<std::int64_t> labels() const override;

 private:
  std::int64_t size_, height_, width_, channels_, classes_, seed_;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [source] table against this and `contra plugins --describe`
  // prints it. A file parameter would be read with p.path("name"), which
  // resolves it relative to the pipeline file.
  return contra::Schema("@NAME@", "generated images, one brightness ramp per class")
      .add<std::int64_t>("size", 1000, "number of samples").at_least(1)
      .add<std::int64_t>("height", 28, "image height").range(1, 4096)
      .add<std::int64_t>("width", 28, "image width").range(1, 4096)
      .add<std::int64_t>("channels", 1, "channels per pixel").range(1, 4)
      .add<std::int64_t>("classes", 10, "number of classes; label = index % classes").range(1, 1000)
      .add<std::int64_t>("seed", 0, "seed of the per-sample noise").at_least(0);
}

@CLASS@::@CLASS@(const contra::Params& p)
    : size_(p.get<std::int64_t>("size")),
      height_(p.get<std::int64_t>("height")),
      width_(p.get<std::int64_t>("width")),
      channels_(p.get<std::int64_t>("channels")),
      classes_(p.get<std::int64_t>("classes")),
      seed_(p.get<std::int64_t>("seed")) {}

contra::SourceInfo @CLASS@::info() const { return {size_, {height_, width_, channels_}, classes_}; }

std::vector<std::int64_t> @CLASS@::labels() const {
  std::vector<std::int64_t> l(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) l[static_cast<std::size_t>(i)] = i % classes_;
  return l;
}

// Skeleton: a horizontal brightness ramp whose slope depends on the class,
// plus noise drawn from Rng(seed, 0, index, 0, 0). Replace with reading your
// data; throw contra::DataError naming the file and the sample when one is bad.
std::int64_t @CLASS@::load(std::int64_t index, contra::Tensor& image) const {
  if (index < 0 || index >= size_)
    throw contra::DataError("@NAME@: sample " + std::to_string(index) + " is outside [0, " + std::to_string(size_) + ")");
  const std::int64_t label = index % classes_;
  contra::Rng rng(static_cast<std::uint64_t>(seed_), 0, static_cast<std::uint64_t>(index), 0, 0);
  image.ensure({height_, width_, channels_}, contra::DType::u8);
  std::uint8_t* px = image.data<std::uint8_t>();
  const double slope = 255.0 * static_cast<double>(label + 1) / static_cast<double>(classes_);
  for (std::int64_t y = 0; y < height_; ++y)
    for (std::int64_t x = 0; x < width_; ++x)
      for (std::int64_t c = 0; c < channels_; ++c) {
        double v = slope * static_cast<double>(x) / static_cast<double>(width_) + rng.uniform(-20.0, 20.0);
        px[(y * width_ + x) * channels_ + c] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
      }
  return label;
}
)~",
        R"~(TEST_CASE("@NAME@: samples load with the announced shape, twice the same") {
  @CLASS@ source(@CLASS@::schema().bind({{"size", 20}}));
  auto r = ct::check_source(source);
  INFO(r.message);
  CHECK(r.ok);
}
)~",
        "[source]\nplugin = \"@NAME@\"\nsize = 1000\n"}},
      {"sampler",
       {"Sampler", "CONTRA_SAMPLER", "contra/roles/sampler.hpp", "[sampler]",
        "shuffled batches, a new order each epoch",
        R"~(  void configure(const contra::SamplerContext& ctx) override;
  std::int64_t batches_per_epoch() const override;
  /// A pure function of (seed, epoch, batch); called from one thread.
  void plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) override;

 private:
  std::int64_t batch_size_;
  std::int64_t size_ = 0;
  std::uint64_t seed_ = 0;
  std::int64_t order_epoch_ = -1;
  std::vector<std::int64_t> order_;  // the shuffled indices of order_epoch_
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [sampler] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "shuffled batches, a new order each epoch")
      .add<std::int64_t>("batch_size", 256, "samples per batch").range(1, 1 << 20);
}

@CLASS@::@CLASS@(const contra::Params& p) : batch_size_(p.get<std::int64_t>("batch_size")) {}

void @CLASS@::configure(const contra::SamplerContext& ctx) {
  if (ctx.dataset_size < batch_size_)
    throw contra::ConfigError("@NAME@: batch_size " + std::to_string(batch_size_) + " is larger than the data set (" +
                              std::to_string(ctx.dataset_size) + " samples)");
  size_ = ctx.dataset_size;
  seed_ = ctx.seed;
}

std::int64_t @CLASS@::batches_per_epoch() const { return size_ / batch_size_; }

// Skeleton: a Fisher-Yates shuffle of all indices per epoch, drawn from
// Rng(seed, epoch, ...), cut into batches (the last partial one dropped).
// Replace with your choice of samples; keep plan() a function of (seed,
// epoch, batch) so that a resumed run sees the same batches.
void @CLASS@::plan(std::int64_t epoch, std::int64_t batch, std::vector<std::int64_t>& indices) {
  if (order_epoch_ != epoch) {
    order_.resize(static_cast<std::size_t>(size_));
    for (std::int64_t i = 0; i < size_; ++i) order_[static_cast<std::size_t>(i)] = i;
    contra::Rng rng(seed_, static_cast<std::uint64_t>(epoch), 0, 0, 0x5a);
    for (std::int64_t i = size_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.integer(0, i)]);
    order_epoch_ = epoch;
  }
  indices.assign(order_.begin() + batch * batch_size_, order_.begin() + (batch + 1) * batch_size_);
}
)~",
        R"~(TEST_CASE("@NAME@: batches are reproducible and in range") {
  std::vector<std::int64_t> labels(50, 0);
  contra::SamplerContext ctx{50, &labels, 7, 1};
  auto r = ct::check_sampler([] { return std::make_shared<@CLASS@>(@CLASS@::schema().bind({{"batch_size", 8}})); },
                             ctx);
  INFO(r.message);
  CHECK(r.ok);
}
)~",
        "[sampler]\nplugin = \"@NAME@\"\nbatch_size = 256\n"}},
      {"encoder",
       {"Encoder", "CONTRA_ENCODER", "contra/roles/encoder.hpp", "[encoder]",
        "two fully connected layers with a ReLU between",
        R"~(  void build(const contra::EncoderContext& ctx) override;
  std::int64_t output_dim() const override { return output_; }
  std::vector<contra::Parameter*> parameters() override;
  const contra::Tensor& forward(const contra::Tensor& x, contra::Mode mode) override;
  const contra::Tensor& backward(const contra::Tensor& dy, bool want_input_grad) override;

 private:
  std::int64_t hidden_, output_, inputs_ = 0;
  contra::nn::Sequential net_;
  contra::Shape input_shape_;
  contra::Tensor dx_;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [encoder] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "two fully connected layers with a ReLU between")
      .add<std::int64_t>("hidden", 256, "width of the hidden layer").range(1, 65536)
      .add<std::int64_t>("output", 64, "embedding width").range(1, 65536);
}

@CLASS@::@CLASS@(const contra::Params& p)
    : hidden_(p.get<std::int64_t>("hidden")), output_(p.get<std::int64_t>("output")) {}

// Skeleton: flatten, Linear, ReLU, Linear, on the SDK's layers (contra/nn/,
// oneDNN inside). Parameters are drawn from ctx.seed so that a seed gives the
// same network everywhere. Replace with your network.
void @CLASS@::build(const contra::EncoderContext& ctx) {
  inputs_ = ctx.input.numel();
  if (inputs_ <= 0) throw contra::ConfigError("@NAME@: empty input shape");
  contra::Rng init(ctx.seed, 0, 0, 0, 0);
  net_.emplace<contra::nn::Linear>("fc0", inputs_, hidden_, true, init, ctx.precision);
  net_.emplace<contra::nn::ReLU>();
  net_.emplace<contra::nn::Linear>("fc1", hidden_, output_, true, init, ctx.precision);
}

std::vector<contra::Parameter*> @CLASS@::parameters() {
  std::vector<contra::Parameter*> out;
  net_.parameters(out);
  return out;
}

const contra::Tensor& @CLASS@::forward(const contra::Tensor& x, contra::Mode mode) {
  if (x.rank() < 2 || x.numel() != x.dim(0) * inputs_)
    throw contra::UsageError("@NAME@: input " + x.shape().str() + " does not hold " + std::to_string(inputs_) +
                             " features per row");
  input_shape_ = x.shape();
  return net_.forward(x.reshape({x.dim(0), inputs_}), mode);
}

const contra::Tensor& @CLASS@::backward(const contra::Tensor& dy, bool want_input_grad) {
  const contra::Tensor& dx = net_.backward(dy, want_input_grad);
  if (!want_input_grad) return dx;
  dx_ = dx.reshape(input_shape_);
  return dx_;
}
)~",
        R"~(TEST_CASE("@NAME@: same seed, same network and output") {
  const contra::EncoderContext ctx{contra::Shape{1, 4, 4}, 3};
  auto r = ct::check_encoder_deterministic(
      [] { return std::make_shared<@CLASS@>(@CLASS@::schema().bind({{"hidden", 8}, {"output", 4}})); }, ctx,
      ct::random_tensor({3, 1, 4, 4}, 5));
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: gradients agree with finite differences") {
  @CLASS@ enc(@CLASS@::schema().bind({{"hidden", 8}, {"output", 4}}));
  enc.build({contra::Shape{1, 4, 4}, 3});
  auto g = ct::check_encoder_gradients(enc, ct::random_tensor({3, 1, 4, 4}, 5));
  INFO(g.message);
  CHECK(g.ok);
}
)~",
        "[encoder]\nplugin = \"@NAME@\"\nhidden = 256\noutput = 64\n"}},
      {"optimizer",
       {"Optimizer", "CONTRA_OPTIMIZER", "contra/roles/optimizer.hpp", "[optimizer]",
        "plain stochastic gradient descent with weight decay",
        R"~(  void configure(const std::vector<contra::Parameter*>& params) override;
  void step(const contra::OptimizerStep& s) override;
  double learning_rate() const override { return last_lr_; }

 private:
  double lr_, weight_decay_, last_lr_ = 0.0;
  std::vector<contra::Parameter*> params_;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [optimizer] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "plain stochastic gradient descent with weight decay")
      .add<double>("lr", 0.1, "learning rate").range(0.0, 100.0)
      .add<double>("weight_decay", 0.0, "L2 penalty on parameters with decay = true").range(0.0, 1.0);
}

@CLASS@::@CLASS@(const contra::Params& p) : lr_(p.get<double>("lr")), weight_decay_(p.get<double>("weight_decay")) {}

void @CLASS@::configure(const std::vector<contra::Parameter*>& params) { params_ = params; }

// Skeleton: θ ← θ − lr·scale·(g + wd·θ). Replace with your update; keep any
// state (momenta) per parameter, allocated in configure().
void @CLASS@::step(const contra::OptimizerStep& s) {
  last_lr_ = lr_ * s.lr_scale;
  for (contra::Parameter* p : params_) {
    float* w = p->value.data<float>();
    const float* g = p->grad.data<float>();
    const double wd = p->decay ? weight_decay_ : 0.0;
    for (std::int64_t i = 0; i < p->value.numel(); ++i)
      w[i] = static_cast<float>(w[i] - last_lr_ * (g[i] + wd * w[i]));
  }
}
)~",
        R"~(TEST_CASE("@NAME@: one step moves a parameter against its gradient") {
  contra::Parameter p;
  p.name = "w";
  p.value = ct::random_tensor({4}, 1);
  p.grad = ct::random_tensor({4}, 2);
  const contra::Tensor before = p.value.clone();
  @CLASS@ opt(@CLASS@::schema().bind({{"lr", 0.5}}));
  opt.configure({&p});
  opt.step({0, 1.0});
  CHECK(opt.learning_rate() == 0.5);
  for (int i = 0; i < 4; ++i)
    CHECK(p.value.data<float>()[i] == before.data<float>()[i] - 0.5f * p.grad.data<float>()[i]);
}
)~",
        "[optimizer]\nplugin = \"@NAME@\"\nlr = 0.1\n"}},
      {"memory",
       {"Memory", "CONTRA_MEMORY", "contra/roles/memory.hpp", "[memory]",
        "a first-in first-out queue of normalised embeddings",
        R"~(  void configure(const contra::MemoryContext& ctx) override;
  const contra::MemoryView& view() const override { return view_; }
  void update(const contra::Embeddings& batch) override;
  void state(std::vector<std::pair<std::string, contra::Tensor*>>& out) override;

 private:
  std::int64_t size_, next_ = 0;
  contra::Tensor keys_;
  std::vector<std::int64_t> ids_;
  contra::MemoryView view_;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. The runtime validates a
  // pipeline's [memory] table against this and `contra plugins --describe`
  // prints it.
  return contra::Schema("@NAME@", "a first-in first-out queue of normalised embeddings")
      .add<std::int64_t>("size", 4096, "keys kept").range(1, 1 << 24);
}

@CLASS@::@CLASS@(const contra::Params& p) : size_(p.get<std::int64_t>("size")) {}

void @CLASS@::configure(const contra::MemoryContext& ctx) {
  keys_ = contra::Tensor::zeros({size_, ctx.dim}, contra::DType::f32);
  ids_.assign(static_cast<std::size_t>(size_), -1);  // -1: an empty slot
  view_ = contra::MemoryView{keys_, &ids_, nullptr};
}

// Skeleton: each row of the batch (the momentum keys when the runtime keeps a
// momentum encoder, else z) is L2-normalised and replaces the oldest key.
void @CLASS@::update(const contra::Embeddings& batch) {
  const contra::Tensor& z = batch.keys.defined() ? batch.keys : batch.z;
  const std::int64_t dim = keys_.dim(1);
  for (std::int64_t r = 0; r < z.dim(0); ++r) {
    const float* src = z.data<float>() + r * dim;
    float* dst = keys_.data<float>() + next_ * dim;
    double norm = 0;
    for (std::int64_t d = 0; d < dim; ++d) norm += static_cast<double>(src[d]) * src[d];
    const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
    for (std::int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(src[d] * inv);
    ids_[static_cast<std::size_t>(next_)] = batch.ids ? (*batch.ids)[static_cast<std::size_t>(r)] : r;
    next_ = (next_ + 1) % size_;
  }
}

void @CLASS@::state(std::vector<std::pair<std::string, contra::Tensor*>>& out) { out.push_back({"keys", &keys_}); }
)~",
        R"~(TEST_CASE("@NAME@: keeps the newest rows, normalised, with their ids") {
  @CLASS@ memory(@CLASS@::schema().bind({{"size", 8}}));
  memory.configure({4, 100, nullptr, 1});
  auto batch = ct::random_embeddings(3, 2, 4, 1);
  memory.update(batch.embeddings());
  const contra::MemoryView& v = memory.view();
  REQUIRE(v.size() == 8);
  CHECK((*v.ids)[5] == 1002);
  CHECK((*v.ids)[6] == -1);
  double norm = 0;
  for (int d = 0; d < 4; ++d) norm += v.keys.data<float>()[d] * v.keys.data<float>()[d];
  CHECK(std::abs(norm - 1.0) < 1e-5);
}
)~",
        "[memory]\nplugin = \"@NAME@\"\nsize = 4096\n"}},
      {"evaluator",
       {"Evaluator", "CONTRA_EVALUATOR", "contra/roles/evaluator.hpp", "[[eval.evaluator]]",
        "nearest class mean accuracy on cosine similarity",
        R"~(  std::vector<std::pair<std::string, double>> evaluate(const contra::FeatureSet& train,
                                                       const contra::FeatureSet& test, std::uint64_t seed) override;
)~",
        R"~(contra::Schema @CLASS@::schema() {
  // Every parameter once: name, default, help, range. Add yours with .add<T>().
  return contra::Schema("@NAME@", "nearest class mean accuracy on cosine similarity");
}

@CLASS@::@CLASS@(const contra::Params&) {}

// Skeleton: normalised class means of the train features; each test feature
// takes the class of the most similar mean. Replace with your measure.
std::vector<std::pair<std::string, double>> @CLASS@::evaluate(const contra::FeatureSet& train,
                                                             const contra::FeatureSet& test, std::uint64_t) {
  const std::int64_t dim = train.features.dim(1), classes = train.num_classes;
  std::vector<double> means(static_cast<std::size_t>(classes * dim), 0.0);
  auto row = [&](const contra::Tensor& t, std::int64_t i) { return t.data<float>() + i * dim; };
  for (std::int64_t i = 0; i < train.features.dim(0); ++i) {
    const float* x = row(train.features, i);
    double norm = 0;
    for (std::int64_t d = 0; d < dim; ++d) norm += static_cast<double>(x[d]) * x[d];
    norm = norm > 0 ? std::sqrt(norm) : 1.0;
    for (std::int64_t d = 0; d < dim; ++d) means[train.labels[i] * dim + d] += x[d] / norm;
  }
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < test.features.dim(0); ++i) {
    const float* x = row(test.features, i);
    std::int64_t best = 0;
    double best_s = -1e300;
    for (std::int64_t c = 0; c < classes; ++c) {
      double s = 0, n = 0;
      for (std::int64_t d = 0; d < dim; ++d) s += means[c * dim + d] * x[d], n += means[c * dim + d] * means[c * dim + d];
      s = n > 0 ? s / std::sqrt(n) : -1e300;
      if (s > best_s) best_s = s, best = c;
    }
    correct += best == test.labels[i];
  }
  const double n = static_cast<double>(std::max<std::int64_t>(1, test.features.dim(0)));
  return {{"top1", static_cast<double>(correct) / n}};
}
)~",
        R"~(TEST_CASE("@NAME@: separable classes score 1") {
  contra::FeatureSet train{contra::Tensor::zeros({4, 2}, contra::DType::f32), {0, 0, 1, 1}, 2};
  contra::FeatureSet test{contra::Tensor::zeros({2, 2}, contra::DType::f32), {1, 0}, 2};
  float* a = train.features.data<float>();
  a[0] = 1, a[2] = 0.9f, a[5] = 1, a[7] = 0.8f;  // class 0 along x, class 1 along y
  float* b = test.features.data<float>();
  b[1] = 2, b[2] = 3;
  @CLASS@ eval(@CLASS@::schema().bind({}));
  auto figures = eval.evaluate(train, test, 1);
  REQUIRE(figures.size() == 1);
  CHECK(figures[0].second == 1.0);
}
)~",
        "[[eval.evaluator]]\nplugin = \"@NAME@\"\n"}},
  };
  return t;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string class_name(const std::string& name) {
  std::string c;
  bool up = true;
  for (char ch : name) {
    if (ch == '_') {
      up = true;
      continue;
    }
    c += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
    up = false;
  }
  return c;
}

// Why NAME cannot be a plugin name, or "".
std::string invalid_name(const std::string& name) {
  if (name.empty()) return "it is empty";
  if (!std::islower(static_cast<unsigned char>(name[0]))) return "it must start with a lower-case letter";
  for (char c : name)
    if (!std::islower(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c)) && c != '_')
      return std::string("it may hold only a-z, 0-9 and _, not '") + c + "'";
  if (name.size() > 64) return "it is longer than 64 characters";
  // Target names CMake reserves, and names of the generated targets' helpers.
  for (const char* r : {"all", "clean", "help", "install", "test", "package", "package_source", "edit_cache",
                        "rebuild_cache", "list_install_components", "install_local", "install_strip", "contra"})
    if (name == r) return "'" + name + "' is a name CMake or contra reserves";
  return "";
}

const char* cmake_template = R"~(# @NAME@: a contra @KIND@ plugin, built against the installed contra SDK.
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=<contra's install prefix>
#   cmake --build build
#   ctest --test-dir build --output-on-failure
cmake_minimum_required(VERSION 3.20)
project(@NAME@ LANGUAGES CXX)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()
add_compile_options(-Wall -Wextra)

find_package(contra @VERSION@ REQUIRED)

# build/plugins/lib@NAME@.so: hidden visibility, --no-undefined, linked to
# contra::sdk. Its sources are also compiled into the object library
# @NAME@_objects, which the test links.
contra_add_plugin(@NAME@ SOURCES @NAME@.cpp)

enable_testing()
find_package(Catch2 REQUIRED CONFIG)
add_executable(test_@NAME@ test_@NAME@.cpp)
target_link_libraries(test_@NAME@ PRIVATE @NAME@_objects Catch2::Catch2WithMain)
# The test also loads the built library the way contra does.
target_compile_definitions(test_@NAME@ PRIVATE PLUGIN_FILE="$<TARGET_FILE:@NAME@>")
add_dependencies(test_@NAME@ @NAME@)
add_test(NAME test_@NAME@ COMMAND test_@NAME@)
)~";

const char* header_template = R"~(#pragma once
// @NAME@: a contra @KIND@ plugin (@SUMMARY@).

#include <contra/@ROLE_HEADER@>
#include <contra/schema.hpp>
@EXTRA_INCLUDES@
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

class @CLASS@ final : public contra::@ROLE@ {
 public:
  /// Parameters, declared once: the runtime validates pipelines against this.
  static contra::Schema schema();
  /// `p` holds values already validated against schema().
  explicit @CLASS@(const contra::Params& p);

@DECLARATION@};
)~";

const char* source_template = R"~(// @NAME@: a contra @KIND@ plugin. See README.md.
#include "@NAME@.hpp"

#include <contra/plugin.hpp>
#include <contra/rng.hpp>

#include <algorithm>
#include <cmath>

@DEFINITION@
// The library's one exported symbol: its manifest (SDK ABI version and the
// plugins it provides), checked by contra before any code here runs.
CONTRA_PLUGIN_LIBRARY(@MACRO@(@CLASS@))
)~";

const char* test_template = R"~(// Tests of @NAME@, run by `ctest --test-dir build`. The checks come from
// contra/testing.hpp and return {ok, message} so that they fit any framework.
#include "@NAME@.hpp"

#include <contra/testing.hpp>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>  // Catch2 v3
#else
#include <catch2/catch.hpp>  // Catch2 v2
#endif

#include <cmath>
#include <memory>

namespace ct = contra::testing;

TEST_CASE("@NAME@: schema is well formed and the defaults construct the plugin") {
  auto r = ct::check_schema<@CLASS@>();
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("@NAME@: the built library loads as contra loads it") {
  auto r = ct::check_library(PLUGIN_FILE);
  INFO(r.message);
  CHECK(r.ok);
}

@TEST@)~";

const char* readme_template = R"~(# @NAME@ (@KIND@ plugin for contra)

@SUMMARY_SENTENCE@. Generated by `contra new-plugin --kind @KIND@ --name @NAME@`:
`@NAME@.cpp` holds a working skeleton to replace with your own code.

## Build and test

Against an installed contra (`cmake --install <contra build> --prefix <prefix>`):

```sh
cmake -S . -B build -G Ninja -DCMAKE_PREFIX_PATH=<prefix>
cmake --build build
ctest --test-dir build --output-on-failure
```

This builds `build/plugins/lib@NAME@.so` and `build/test_@NAME@`. The test
uses `contra/testing.hpp`: the schema is well formed and its defaults
construct the plugin, the built library loads as contra loads it, and the
@KIND@ behaves (see `test_@NAME@.cpp`).

## Use it in a pipeline

Name it in `@SECTION@`:

```toml
@TOML@```

and put the library on contra's plugin path, either in the environment

```sh
CONTRA_PLUGIN_PATH=$PWD/build/plugins contra run my_pipeline.toml
```

or in the pipeline (relative to the pipeline file):

```toml
[plugins]
paths = ["path/to/@NAME@/build/plugins"]
```

`contra plugins --path build/plugins --describe @NAME@` shows its parameters.
`cmake --install build --prefix <contra's prefix>` copies the library into
`<prefix>/lib/contra/plugins`, where the installed contra finds it without
any setting.

## Files

| file | what |
|---|---|
| `CMakeLists.txt` | `find_package(contra @VERSION@)`, `contra_add_plugin(@NAME@ ...)`, the Catch2 test |
| `@NAME@.hpp` | the class: schema, constructor, the @KIND@ interface |
| `@NAME@.cpp` | schema, skeleton, `CONTRA_PLUGIN_LIBRARY(...)` |
| `test_@NAME@.cpp` | conformance and behaviour tests |

A plugin built for SDK @VERSION@ (ABI @ABI@) loads into any contra with the same
SDK ABI version; see contra's docs/abi-policy.md.
)~";

bool is_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) == fs::directory_iterator();
}

}  // namespace

int new_plugin_command(const std::vector<std::string>& args) {
  std::string kinds;
  for (const auto& [k, t] : templates()) kinds += (kinds.empty() ? "" : ", ") + k;
  const std::string usage =
      "usage: contra new-plugin --kind KIND --name NAME [DIR]\n\n"
      "Write a ready-to-build plugin project into DIR (default: ./NAME): CMakeLists.txt\n"
      "(find_package(contra), contra_add_plugin, a Catch2 test), NAME.hpp and NAME.cpp\n"
      "with the schema declared and a working skeleton, test_NAME.cpp, README.md.\n"
      "DIR must not exist or be empty. NAME: a-z, 0-9 and _, starting with a letter.\n"
      "KIND: " + kinds + ".\n";
  std::string kind, name, dir;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s", usage.c_str());
      return 0;
    }
    if (a == "--kind" || a == "--name") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "contra new-plugin: %s needs a value\n", a.c_str());
        return 2;
      }
      (a == "--kind" ? kind : name) = args[++i];
    } else if (a.rfind("--kind=", 0) == 0) {
      kind = a.substr(7);
    } else if (a.rfind("--name=", 0) == 0) {
      name = a.substr(7);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "contra new-plugin: unknown option '%s' (see contra new-plugin --help)\n", a.c_str());
      return 2;
    } else if (dir.empty()) {
      dir = a;
    } else {
      std::fprintf(stderr, "contra new-plugin: only one folder, got '%s' and '%s'\n", dir.c_str(), a.c_str());
      return 2;
    }
  }
  if (kind.empty() || name.empty()) {
    std::fprintf(stderr, "contra new-plugin: --kind and --name are required\n\n%s", usage.c_str());
    return 2;
  }
  auto it = templates().find(kind);
  if (it == templates().end()) {
    std::fprintf(stderr, "contra new-plugin: unknown kind '%s'; one of: %s\n", kind.c_str(), kinds.c_str());
    return 2;
  }
  if (std::string why = invalid_name(name); !why.empty()) {
    std::fprintf(stderr, "contra new-plugin: '%s' cannot name a plugin: %s\n", name.c_str(), why.c_str());
    return 2;
  }
  const fs::path out = dir.empty() ? fs::path(name) : fs::path(dir);
  std::error_code ec;
  if (fs::exists(out, ec) && !is_empty_dir(out)) {
    std::fprintf(stderr, "contra new-plugin: %s exists and is not an empty folder; refusing to overwrite it\n",
                 out.string().c_str());
    return 1;
  }
  fs::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "contra new-plugin: cannot create %s: %s\n", out.string().c_str(), ec.message().c_str());
    return 1;
  }

  const KindTemplate& t = it->second;
  const std::string version =
      std::to_string(CONTRA_SDK_VERSION_MAJOR) + "." + std::to_string(CONTRA_SDK_VERSION_MINOR);
  std::string summary = t.summary;
  std::string sentence = summary;
  sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
  auto fill = [&](std::string s) {
    s = replace_all(s, "@DECLARATION@", t.declaration);
    s = replace_all(s, "@DEFINITION@", t.definition);
    s = replace_all(s, "@TEST@", t.test);
    s = replace_all(s, "@TOML@", t.toml);
    s = replace_all(s, "@EXTRA_INCLUDES@", kind == "encoder" ? "#include <contra/nn/activation.hpp>\n"
                                                               "#include <contra/nn/linear.hpp>\n"
                                                               "#include <contra/nn/sequential.hpp>\n"
                                                             : "");
    s = replace_all(s, "@ROLE_HEADER@", std::string(t.header).substr(7));
    s = replace_all(s, "@ROLE@", t.role);
    s = replace_all(s, "@MACRO@", t.macro);
    s = replace_all(s, "@SECTION@", t.section);
    s = replace_all(s, "@SUMMARY_SENTENCE@", sentence);
    s = replace_all(s, "@SUMMARY@", summary);
    s = replace_all(s, "@VERSION@", version);
    s = replace_all(s, "@ABI@", std::to_string(CONTRA_SDK_ABI_VERSION));
    s = replace_all(s, "@CLASS@", class_name(name));
    s = replace_all(s, "@KIND@", kind);
    s = replace_all(s, "@NAME@", name);
    return s;
  };
  const std::vector<std::pair<std::string, std::string>> files = {
      {"CMakeLists.txt", fill(cmake_template)},
      {name + ".hpp", fill(header_template)},
      {name + ".cpp", fill(source_template)},
      {"test_" + name + ".cpp", fill(test_template)},
      {"README.md", fill(readme_template)},
  };
  for (const auto& [file, text] : files) {
    std::ofstream f(out / file, std::ios::binary);
    f << text;
    if (!f) {
      std::fprintf(stderr, "contra new-plugin: cannot write %s\n", (out / file).string().c_str());
      return 1;
    }
  }
  std::printf("wrote %s plugin '%s' to %s:\n", kind.c_str(), name.c_str(), out.string().c_str());
  for (const auto& [file, text] : files) std::printf("  %s\n", (out / file).string().c_str());
  std::printf(
      "\nbuild and test it against an installed contra:\n"
      "  cmake -S %s -B %s/build -DCMAKE_PREFIX_PATH=<contra's install prefix>\n"
      "  cmake --build %s/build\n"
      "  ctest --test-dir %s/build --output-on-failure\n"
      "then run a pipeline naming plugin = \"%s\" with CONTRA_PLUGIN_PATH=%s/build/plugins\n",
      out.string().c_str(), out.string().c_str(), out.string().c_str(), out.string().c_str(), name.c_str(),
      out.string().c_str());
  return 0;
}

}  // namespace contra::cli
