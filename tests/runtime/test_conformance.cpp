// contra/testing.hpp applied to the built-in plugins and to the fixture
// libraries: every built-in library loads, declares well-formed schemas whose
// defaults validate and constructs; broken libraries are reported; the
// per-kind checks pass on real plugins.
#include "loader/registry.hpp"

#include <contra/testing.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

using namespace contra;
namespace ct = contra::testing;
using contra::runtime::PluginRegistry;
namespace fs = std::filesystem;

namespace {
std::string fixture(const std::string& name) {
  return std::string(CONTRA_FIXTURE_PLUGIN_DIR) + "/" + name + "/lib" + name + ".so";
}

template <class Role> std::shared_ptr<Role> make(PluginRegistry& reg, PluginKind kind, const std::string& name,
                                                 std::initializer_list<std::pair<std::string, Value>> values = {}) {
  const auto* rec = reg.find(kind, name);
  REQUIRE(rec != nullptr);
  return reg.create<Role>(*rec, rec->schema.bind(values));
}
}  // namespace

TEST_CASE("conformance: every built-in plugin library passes check_library", "[runtime][conformance]") {
  int libraries = 0;
  for (const auto& entry : fs::directory_iterator(CONTRA_PLUGIN_DIR)) {
    if (entry.path().extension() != ".so") continue;
    ++libraries;
    // Sources that read files need one; Fashion-MNIST is what CI installs.
    ct::CheckResult r = ct::check_library(entry.path().string());
    INFO(entry.path().filename().string() << ":\n" << r.message << "\nnotes: " << r.notes);
    CHECK(r.ok);
  }
  CHECK(libraries >= 30);
}

TEST_CASE("conformance: check_library reports broken libraries", "[runtime][conformance]") {
  ct::CheckResult bad = ct::check_library(fixture("bad_schema"));
  CHECK_FALSE(bad.ok);
  CHECK_THAT(bad.message, Catch::Contains("miner plugin #0 'bad_schema': schema is malformed: schema of plugin "
                                          "'bad_schema' declares parameter 'margin' twice"));
  ct::CheckResult unresolved = ct::check_library(fixture("unresolved"));
  CHECK_FALSE(unresolved.ok);
  CHECK_THAT(unresolved.message, Catch::Contains("undefined symbol: contra_fixture_symbol_nobody_defines"));
  ct::CheckResult abi = ct::check_library(fixture("other_abi"));
  CHECK_FALSE(abi.ok);
  CHECK_THAT(abi.message, Catch::EndsWith("was built for SDK ABI 999, this SDK is ABI 5"));
  ct::CheckResult no_entry = ct::check_library(fixture("no_entry"));
  CHECK_THAT(no_entry.message, Catch::Contains("does not export 'contra_plugin_manifest'"));
  ct::CheckResult throwing = ct::check_library(fixture("throwing_factory"));
  CHECK_THAT(throwing.message,
             Catch::Contains("'throwing_loss': create() with the defaults threw: constructor failed on purpose"));
  ct::CheckResult good = ct::check_library(fixture("misbehaving"));
  INFO(good.message);
  CHECK(good.ok);
}

TEST_CASE("conformance: per-kind checks pass on built-in plugins", "[runtime][conformance]") {
  PluginRegistry reg;
  reg.scan_directory(CONTRA_PLUGIN_DIR);

  auto z = ct::random_embeddings(6, 2, 8, 5, 3);
  auto emb = z.embeddings();
  Pairs all;
  all.all = true;

  auto loss = make<Loss>(reg, PluginKind::loss, "info_nce", {{"temperature", 0.5}});
  ct::CheckResult lr = ct::check_loss(*loss, emb, all);
  INFO(lr.message);
  CHECK(lr.ok);
  ct::GradientReport g = ct::check_loss_gradient(*loss, emb, all);
  INFO(g.message << "\n" << g.notes);
  CHECK(g.ok);
  CHECK(g.checked >= 24);

  auto miner = make<Miner>(reg, PluginKind::miner, "batch_hard");
  ct::CheckResult mr = ct::check_miner(*miner, emb);
  INFO(mr.message);
  CHECK(mr.ok);

  auto aug = make<Augmentation>(reg, PluginKind::augmentation, "random_resized_crop", {{"size", 12}});
  ct::CheckResult ar = ct::check_augmentation(*aug, ct::random_image(16, 20, 3, 1));
  INFO(ar.message);
  CHECK(ar.ok);

  auto src = make<Source>(reg, PluginKind::source, "synthetic", {{"size", 32}});
  ct::CheckResult sr = ct::check_source(*src);
  INFO(sr.message);
  CHECK(sr.ok);

  std::vector<std::int64_t> labels(40);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i % 4);
  ct::CheckResult pr = ct::check_sampler(
      [&] { return make<Sampler>(reg, PluginKind::sampler, "random", {{"batch_size", 8}}); },
      SamplerContext{40, &labels, 9, 1});
  INFO(pr.message);
  CHECK(pr.ok);

  const EncoderContext ctx{Shape{12}, 4, Precision::f32};
  ct::CheckResult er = ct::check_encoder_deterministic(
      [&] { return make<Encoder>(reg, PluginKind::encoder, "mlp", {{"hidden", std::vector<std::int64_t>{6}},
                                                                    {"output", 5}}); },
      ctx, ct::random_tensor({3, 12}, 8));
  INFO(er.message);
  CHECK(er.ok);
  auto mlp = make<Encoder>(reg, PluginKind::encoder, "mlp", {{"hidden", std::vector<std::int64_t>{6}}, {"output", 5}});
  mlp->build(ctx);
  ct::GradientReport eg = ct::check_encoder_gradients(*mlp, ct::random_tensor({3, 12}, 8));
  INFO(eg.message << "\n" << eg.notes);
  CHECK(eg.ok);

  auto tokenizer = make<Tokenizer>(reg, PluginKind::tokenizer, "bytes");
  ct::CheckResult tr = ct::check_tokenizer(*tokenizer, {"a caption", "", "caf\xc3\xa9 \xff\xfe"});
  INFO(tr.message);
  CHECK(tr.ok);
  for (const char* name : {"token_dropout", "random_span"}) {
    auto text_aug = make<TextAugmentation>(reg, PluginKind::text_augmentation, name);
    ct::CheckResult tar = ct::check_text_augmentation(*text_aug, tokenizer->vocabulary());
    INFO(name << ": " << tar.message);
    CHECK(tar.ok);
  }
}
