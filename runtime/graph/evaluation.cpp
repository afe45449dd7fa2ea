#include "graph/evaluation.hpp"

#include "assembly/make_plugin.hpp"
#include "device/device_ops.hpp"
#include "train/safetensors.hpp"

#include <contra/errors.hpp>

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

namespace contra::runtime {

FeatureExtractor::FeatureExtractor(const PipelineSpec& spec, const PluginRegistry& reg)
    : spec_(spec), registry_(reg), settings_(decode_settings(spec)) {}

Evaluation::Evaluation(const PipelineSpec& spec, const PluginRegistry& reg) : spec_(spec), features_(spec, reg) {
  const PluginSpec& train = spec.eval_train.name.empty() ? spec.source : spec.eval_train;
  train_ = make_plugin<Source>(reg, train);
  test_ = make_plugin<Source>(reg, spec.eval_test);
  train_label_ = train.label();
  test_label_ = spec.eval_test.label();
  for (const auto& e : spec.evaluators) {
    evaluators_.emplace_back(e.name, make_plugin<Evaluator>(reg, e));
    cross_modal_.push_back(guarded(e.label() + ": cross_modal() failed", [&] { return evaluators_.back().second->cross_modal(); }));
  }
}

bool Evaluation::has_cross_modal() const {
  return std::find(cross_modal_.begin(), cross_modal_.end(), true) != cross_modal_.end();
}

void Evaluation::check() const {
  const bool single_tower = std::find(cross_modal_.begin(), cross_modal_.end(), false) != cross_modal_.end();
  for (std::size_t i = 0; i < cross_modal_.size(); ++i)
    if (cross_modal_[i] && spec_.towers.empty())
      throw ConfigError(spec_.evaluators[i].label() + ": a cross-modal evaluator compares the pipeline's towers, and "
                        "this pipeline has one; add a text tower ([tower.NAME])");
  if (has_cross_modal()) {
    // The split's own texts, in the first text tower's field.
    const SourceInfo info = test_->info();
    std::string field = spec_.towers.front().params.get<std::string>("field");
    if (field.empty()) field = spec_.towers.front().name;
    const bool has_field = std::any_of(info.fields.begin(), info.fields.end(), [&](const FieldInfo& f) {
      return f.name == field && f.kind == FieldKind::text;
    });
    if (!has_field)
      throw ConfigError(test_label_ + ": cross-modal evaluation embeds the test split's texts with tower '" +
                        spec_.towers.front().name + "', and its records have no text field \"" + field +
                        "\"; they hold " + fields_text(info));
  }
  for (const auto& [source, label] : {std::pair{train_.get(), &train_label_}, std::pair{test_.get(), &test_label_}}) {
    const SourceInfo info = source->info();
    if (single_tower && info.num_classes <= 0)
      throw ConfigError(*label + ": evaluation needs labels, and this source has none (set its labels, or "
                        "leave out [eval])");
    features_.chain_for(info);  // [eval]'s chain takes this split's images
  }
}

AugmentChain FeatureExtractor::chain_for(const SourceInfo& info) const {
  return AugmentChain(spec_.eval_chain, registry_, ImageFormat{info.shape, DType::u8});
}

FeatureSet FeatureExtractor::embed(Encoder& encoder, Source& source, const std::string& label, bool need_labels,
                                   Encoder* head) const {
  const SourceInfo info = source.info();
  if (need_labels && info.num_classes <= 0)
    throw DataError(label + ": evaluation needs labels, and this source has none");
  if (info.size <= 0) throw DataError(label + ": the source has no samples");
  const AugmentChain chain = chain_for(info);
  const ImageFormat& f = chain.output_format();
  const std::int64_t c = f.shape.channels, h = f.shape.height, w = f.shape.width, elems = c * h * w;
  FeatureSet out;
  out.num_classes = info.num_classes;
  out.labels.resize(static_cast<std::size_t>(info.size));
  // [train] device = "cuda": the encoder runs on the GPU (current stream);
  // images go there per batch, features come back for the CPU evaluators.
  const bool on_device = settings_.train.device != Device::cpu;
  Tensor images, device_images, host_features;
  std::vector<std::exception_ptr> failures;
  const std::int64_t batch = settings_.eval.batch_size;
  std::vector<Tensor> raw(static_cast<std::size_t>(batch)), scratch(static_cast<std::size_t>(2 * batch));
  for (std::int64_t begin = 0; begin < info.size; begin += batch) {
    const std::int64_t n = std::min(batch, info.size - begin);
    images.ensure({n, c, h, w}, DType::f32);
    float* dst = images.data<float>();
    // Each sample's failure is kept, and the first sample's reported, so
    // that a broken split says the same whatever the threads did.
    failures.assign(static_cast<std::size_t>(n), nullptr);
    auto one = [&](std::int64_t i) {
      try {
        out.labels[static_cast<std::size_t>(begin + i)] = source.load(begin + i, raw[i]);
        const AugmentChain::Draw draw{0, 0, static_cast<std::uint64_t>(begin + i), 0};
        const Tensor& image = chain.apply(raw[i], &scratch[2 * i], draw, "evaluation");
        chain.collate(image, dst + i * elems, "evaluation", 0);
      } catch (...) {
        failures[static_cast<std::size_t>(i)] = std::current_exception();
      }
    };
    if (chain.parallel())
      tbb::parallel_for(std::int64_t(0), n, one);
    else
      for (std::int64_t i = 0; i < n; ++i) one(i);
    for (const std::exception_ptr& e : failures)
      if (e) std::rethrow_exception(e);
    const Tensor* input = &images;
    if (on_device) {
      device_ops::to_device_async(device_images, images);
      input = &device_images;
    }
    const Tensor& h = encoder.forward(*input, Mode::eval);
    const Tensor& z = head ? head->forward(h, Mode::eval) : h;
    device_ops::to_host_async(host_features, z);  // on the host: z itself
    device_ops::finish(z.device());
    if (!out.features.defined()) out.features = Tensor::empty({info.size, z.dim(1)}, DType::f32);
    std::memcpy(out.features.data<float>() + begin * z.dim(1), host_features.raw(), z.nbytes());
  }
  // Non-finite features (weights that diverged, a damaged checkpoint) would
  // rank every neighbour alike: kNN would report nonsense, even 1.0.
  if (device_ops::count_nonfinite(out.features) != 0) {
    const float* f = out.features.data<float>();
    std::int64_t i = 0;
    while (std::isfinite(f[i])) ++i;
    throw DataError(label + ": the encoder's features of sample " + std::to_string(i / out.features.dim(1)) +
                    " hold " + std::to_string(f[i]) + "; its weights are not finite (a diverged run or a damaged "
                    "checkpoint), and no figure computed from them would mean anything");
  }
  if (need_labels)
    for (auto l : out.labels)
      if (l < 0 || l >= info.num_classes)
        throw DataError(label + ": label " + std::to_string(l) + " outside 0.." + std::to_string(info.num_classes - 1));
  return out;
}

std::vector<std::pair<std::string, double>> Evaluation::run(Encoder& encoder, std::uint64_t seed,
                                                            const std::string& embeddings_path) {
  // Only what the evaluators use is embedded.
  const bool single_tower = std::find(cross_modal_.begin(), cross_modal_.end(), false) != cross_modal_.end();
  FeatureSet train, test, queries;
  if (single_tower || !embeddings_path.empty()) {
    test = embed(encoder, *test_, test_label_);
    if (!embeddings_path.empty()) write_features(embeddings_path, test);
  }
  if (single_tower) train = embed(encoder, *train_, train_label_);
  if (has_cross_modal()) {
    if (!towers_.text || !towers_.image_encoder)
      throw UsageError("evaluation: cross-modal evaluators need the pipeline's towers (set_towers())");
    queries = features_.embed(*towers_.image_encoder, *test_, test_label_, false, towers_.image_head);
    // A pair matches by label; without labels, each image matches its own
    // record's text alone.
    if (test_->info().num_classes <= 0)
      for (std::size_t i = 0; i < queries.labels.size(); ++i) queries.labels[i] = static_cast<std::int64_t>(i);
  }
  std::vector<std::pair<std::string, double>> figures;
  for (std::size_t i = 0; i < evaluators_.size(); ++i) {
    const char* call = cross_modal_[i] ? "evaluate_cross_modal()" : "evaluate()";
    try {
      auto found = cross_modal_[i] ? evaluators_[i].second->evaluate_cross_modal(cross_modal_features(i, queries), seed)
                                   : evaluators_[i].second->evaluate(train, test, seed);
      for (auto& [k, v] : found) figures.emplace_back(evaluators_[i].first + "." + k, v);
    } catch (const std::exception& e) {
      throw PluginError(spec_.evaluators[i].label() + ": " + call + " failed: " + e.what());
    }
  }
  return figures;
}

CrossModalFeatures Evaluation::cross_modal_features(std::size_t i, const FeatureSet& queries) const {
  CrossModalFeatures out;
  out.queries = queries.features;
  out.query_labels = queries.labels;
  const std::vector<std::string> classes = test_->class_names();
  std::vector<std::pair<std::string, std::int64_t>> texts = evaluators_[i].second->gallery_texts(classes);
  std::vector<std::string> gallery;
  if (texts.empty()) {
    // The split's own texts, each labelled as its image is.
    const std::int64_t n = test_->info().size;
    gallery.resize(static_cast<std::size_t>(n));
    out.gallery_labels = queries.labels;
    Record record;
    for (std::int64_t s = 0; s < n; ++s) {
      test_->load_record(s, record);
      if (record.texts.size() <= towers_.text->text_field())
        throw DataError(test_label_ + ": load_record() returned " + std::to_string(record.texts.size()) +
                        " texts for sample " + std::to_string(s) + ", expected at least " +
                        std::to_string(towers_.text->text_field() + 1));
      gallery[static_cast<std::size_t>(s)] = std::move(record.texts[towers_.text->text_field()]);
    }
  } else {
    for (auto& [text, label] : texts) {
      gallery.push_back(std::move(text));
      out.gallery_labels.push_back(label);
    }
  }
  out.gallery = embed_texts(gallery);
  return out;
}

Tensor Evaluation::embed_texts(const std::vector<std::string>& texts) const {
  const TextTower& tower = *towers_.text;
  const std::int64_t n = static_cast<std::int64_t>(texts.size()), l = tower.length();
  const std::int64_t batch = decode_settings(spec_).eval.batch_size;
  Tensor rows, out, host_z;
  TextTower::Scratch scratch;
  for (std::int64_t begin = 0; begin < n; begin += batch) {
    const std::int64_t m = std::min(batch, n - begin);
    rows.ensure({m, l}, DType::i32);
    for (std::int64_t i = 0; i < m; ++i)
      tower.make_row(texts[static_cast<std::size_t>(begin + i)], TextTower::Draw{0, 0, static_cast<std::uint64_t>(begin + i), 0},
                     scratch, rows.data<std::int32_t>() + i * l, false);
    const Tensor& h = towers_.text_encoder->forward(rows, Mode::eval);
    const Tensor& z = towers_.text_head ? towers_.text_head->forward(h, Mode::eval) : h;
    const Tensor* z_host = &z;
    if (z.device() != Device::cpu) {
      device_ops::to_host_async(host_z, z);
      device_ops::finish(z.device());
      z_host = &host_z;
    }
    if (!out.defined()) out = Tensor::empty({n, z.dim(1)}, DType::f32);
    std::memcpy(out.data<float>() + begin * z.dim(1), z_host->raw(), z_host->nbytes());
  }
  if (device_ops::count_nonfinite(out) != 0)
    throw DataError("tower '" + tower.name() + "': the text features hold values that are not finite; its weights "
                    "are not finite (a diverged run or a damaged checkpoint)");
  return out;
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
