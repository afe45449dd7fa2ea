#include "evaluation.hpp"

#include "loader/registry.hpp"
#include "train/device_ops.hpp"
#include "train/safetensors.hpp"

#include <contra/errors.hpp>

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

namespace contra::runtime {

namespace {

template <class Role> std::shared_ptr<Role> make(const PluginRegistry& reg, const PluginSpec& ps) {
  const PluginRecord* rec = reg.find(ps.kind, ps.name, ps.device);
  if (!rec) throw PluginError(ps.label() + ": plugin not found");
  try {
    return reg.create<Role>(*rec, ps.params);
  } catch (const std::exception& e) {
    throw PluginError(ps.label() + ": " + e.what());
  }
}

}  // namespace

FeatureExtractor::FeatureExtractor(const PipelineSpec& spec, const PluginRegistry& reg)
    : spec_(spec), batch_size_(spec.eval.get<std::int64_t>("batch_size")) {
  for (const auto& a : spec.eval_chain) chain_.push_back(make<Augmentation>(reg, a));
}

Evaluation::Evaluation(const PipelineSpec& spec, const PluginRegistry& reg) : spec_(spec), features_(spec, reg) {
  const PluginSpec& train = spec.eval_train.name.empty() ? spec.source : spec.eval_train;
  train_ = make<Source>(reg, train);
  test_ = make<Source>(reg, spec.eval_test);
  train_label_ = train.label();
  test_label_ = spec.eval_test.label();
  for (const auto& e : spec.evaluators) evaluators_.emplace_back(e.name, make<Evaluator>(reg, e));
}

void Evaluation::check() const {
  for (const auto& [source, label] : {std::pair{train_.get(), &train_label_}, std::pair{test_.get(), &test_label_}})
    if (source->info().num_classes <= 0)
      throw ConfigError(*label + ": evaluation needs labels, and this source has none (set its labels, or "
                        "leave out [eval])");
}

FeatureSet FeatureExtractor::embed(Encoder& encoder, Source& source, const std::string& label,
                                   bool need_labels) const {
  const SourceInfo info = source.info();
  if (need_labels && info.num_classes <= 0)
    throw DataError(label + ": evaluation needs labels, and this source has none");
  if (info.size <= 0) throw DataError(label + ": the source has no samples");
  std::vector<ImageFormat> formats{ImageFormat{info.shape, DType::u8}};
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    try {
      formats.push_back(chain_[i]->output_format(formats.back()));
    } catch (const std::exception& e) {
      throw ConfigError(spec_.eval_chain[i].label() + ": " + e.what());
    }
  }
  const ImageFormat f = formats.back();
  const std::int64_t c = f.shape.channels, h = f.shape.height, w = f.shape.width, elems = c * h * w;
  FeatureSet out;
  out.num_classes = info.num_classes;
  out.labels.resize(static_cast<std::size_t>(info.size));
  // [train] device = "cuda": the encoder runs on the GPU (current stream);
  // images go there per batch, features come back for the CPU evaluators.
  const bool on_device = pipeline_device(spec_) != Device::cpu;
  Tensor images, device_images, host_features;
  std::vector<Tensor> raw(static_cast<std::size_t>(batch_size_)), scratch(static_cast<std::size_t>(2 * batch_size_));
  for (std::int64_t begin = 0; begin < info.size; begin += batch_size_) {
    const std::int64_t n = std::min(batch_size_, info.size - begin);
    images.ensure({n, c, h, w}, DType::f32);
    float* dst = images.data<float>();
    tbb::parallel_for(std::int64_t(0), n, [&](std::int64_t i) {
      out.labels[static_cast<std::size_t>(begin + i)] = source.load(begin + i, raw[i]);
      const Tensor* cur = &raw[i];
      for (std::size_t op = 0; op < chain_.size(); ++op) {
        Rng rng(0, 0, static_cast<std::uint64_t>(begin + i), 0, static_cast<std::uint32_t>(op));
        Tensor& o = scratch[2 * i + (op % 2)];
        chain_[op]->apply(*cur, o, rng);
        cur = &o;
      }
      float* d = dst + i * elems;
      if (f.dtype == DType::f32) {
        std::memcpy(d, cur->data<float>(), static_cast<std::size_t>(elems) * sizeof(float));
      } else {
        const std::uint8_t* s = cur->data<std::uint8_t>();
        for (std::int64_t ch = 0; ch < c; ++ch)
          for (std::int64_t p = 0; p < h * w; ++p) d[ch * h * w + p] = s[p * c + ch] * (1.0f / 255.0f);
      }
    });
    if (on_device) {
      device_ops::to_device_async(device_images, images);
      const Tensor& z = encoder.forward(device_images, Mode::eval);
      device_ops::to_host_async(host_features, z);
      device_ops::finish();
      if (!out.features.defined()) out.features = Tensor::empty({info.size, z.dim(1)}, DType::f32);
      std::memcpy(out.features.data<float>() + begin * z.dim(1), host_features.raw(), z.nbytes());
      continue;
    }
    const Tensor& z = encoder.forward(images, Mode::eval);
    if (!out.features.defined()) out.features = Tensor::empty({info.size, z.dim(1)}, DType::f32);
    std::memcpy(out.features.data<float>() + begin * z.dim(1), z.data<float>(), z.nbytes());
  }
  if (need_labels)
    for (auto l : out.labels)
      if (l < 0 || l >= info.num_classes)
        throw DataError(label + ": label " + std::to_string(l) + " outside 0.." + std::to_string(info.num_classes - 1));
  return out;
}

std::vector<std::pair<std::string, double>> Evaluation::run(Encoder& encoder, std::uint64_t seed,
                                                            const std::string& embeddings_path) {
  FeatureSet train = embed(encoder, *train_, train_label_);
  FeatureSet test = embed(encoder, *test_, test_label_);
  if (!embeddings_path.empty()) write_features(embeddings_path, test);
  std::vector<std::pair<std::string, double>> figures;
  for (std::size_t i = 0; i < evaluators_.size(); ++i) {
    try {
      for (auto& [k, v] : evaluators_[i].second->evaluate(train, test, seed))
        figures.emplace_back(evaluators_[i].first + "." + k, v);
    } catch (const std::exception& e) {
      throw PluginError(spec_.evaluators[i].label() + ": evaluate() failed: " + e.what());
    }
  }
  return figures;
}

void write_features(const std::string& path, const FeatureSet& set) {
  write_npy(path, set.features);
  Tensor labels = Tensor::empty({static_cast<std::int64_t>(set.labels.size())}, DType::i64);
  std::copy(set.labels.begin(), set.labels.end(), labels.data<std::int64_t>());
  std::string lp = path;
  lp.insert(lp.size() - (lp.size() >= 4 && lp.compare(lp.size() - 4, 4, ".npy") == 0 ? 4 : 0), "-labels");
  write_npy(lp, labels);
}

void write_npy(const std::string& path, const Tensor& t) {
  std::string shape = "(";
  for (int d = 0; d < t.rank(); ++d) shape += std::to_string(t.dim(d)) + (t.rank() == 1 || d + 1 < t.rank() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + (t.dtype() == DType::f32 ? "<f4" : "<i8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(t.raw()), t.nbytes());
  write_file_atomically(path, bytes);
}

}  // namespace contra::runtime
