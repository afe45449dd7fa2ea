#pragma once
// One training step: encoder forward -> miner -> loss (value, dL/dz) ->
// encoder backward -> optimizer step. Checks what each plugin hands back, so
// that a misbehaving plugin is named instead of corrupting the run.

#include <contra/batch.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/roles/loss.hpp>
#include <contra/roles/miner.hpp>
#include <contra/roles/optimizer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

struct TrainerParts {
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<Encoder> head;  ///< optional projection head after the encoder
  std::shared_ptr<Miner> miner;
  std::shared_ptr<Loss> loss;
  std::shared_ptr<Optimizer> optimizer;
  /// How errors name each part, e.g. "loss 'info_nce' ([loss] at p.toml:20:1)".
  std::string encoder_label, miner_label, loss_label, optimizer_label, head_label;
};

struct StepOutcome {
  double loss = 0.0;
  double lr = 0.0;
  std::vector<std::pair<std::string, double>> metrics;
};

class Trainer {
 public:
  /// Builds the encoder for `ctx` (and the head for its output), and hands
  /// all their parameters to the optimizer.
  Trainer(TrainerParts parts, const EncoderContext& ctx);

  /// One step; `lr_scale` comes from the learning-rate schedule.
  StepOutcome step(const Batch& batch, std::int64_t global_step, double lr_scale = 1.0);

  const std::vector<Parameter*>& parameters() const { return params_; }

 private:
  TrainerParts p_;
  std::vector<Parameter*> params_;
  std::vector<std::int64_t> row_sample_, row_label_;
  Pairs pairs_;
  LossResult result_;
};

}  // namespace contra::runtime
