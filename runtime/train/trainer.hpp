#pragma once
// One training step: encoder forward -> miner -> loss (value, dL/dz) ->
// encoder backward -> optimizer step. Checks what each plugin hands back, so
// that a misbehaving plugin is named instead of corrupting the run.

#include <contra/batch.hpp>
#include <contra/gradient_ready.hpp>
#include <contra/roles/encoder.hpp>
#include <contra/roles/loss.hpp>
#include <contra/roles/memory.hpp>
#include <contra/roles/miner.hpp>
#include <contra/roles/optimizer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace contra::runtime {

/// A tower after the first: its encoder (and head), built for `context`.
struct TowerParts {
  std::string name;
  std::shared_ptr<Encoder> encoder, head;
  std::string encoder_label, head_label;
  EncoderContext context;  ///< seed and precision are the run's, set by the Trainer
};

struct TrainerParts {
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<Encoder> head;  ///< optional projection head after the encoder
  std::shared_ptr<Memory> memory;  ///< optional queue or bank
  /// Fresh instances of the encoder and head for the momentum encoder, when
  /// the memory asks for one (encoder_momentum() > 0).
  std::shared_ptr<Encoder> momentum_encoder, momentum_head;
  std::shared_ptr<Miner> miner;
  std::shared_ptr<Loss> loss;
  std::shared_ptr<Optimizer> optimizer;
  /// How errors name each part, e.g. "loss 'info_nce' ([loss] at p.toml:20:1)".
  std::string encoder_label, miner_label, loss_label, optimizer_label, head_label, memory_label;
  /// Where the encoder, head, loss and optimizer compute ([train] device).
  /// On cuda, batches come with device images, and the miner and memory get
  /// host copies of the embeddings unless they are cuda builds themselves.
  Device device = Device::cpu;
  Device miner_device = Device::cpu, memory_device = Device::cpu;
  /// The towers after the first ([tower.NAME]); each embeds one input of
  /// Batch::tower_inputs into the same space as `encoder` (and `head`).
  std::vector<TowerParts> towers;
};

/// Every encoder and head of `parts`, each with the prefix its state has in
/// checkpoints: "encoder.", "head.", "momentum_encoder.", "momentum_head.",
/// then "tower.NAME.encoder." and "tower.NAME.head."; absent ones left out.
std::vector<std::pair<std::string, Encoder*>> named_encoders(const TrainerParts& parts);

/// The points of a step where data-parallel ranks meet (a communicator's
/// gather and all-reduce); a single process has none. Called on the
/// training thread, in this order, every step.
class StepCollectives {
 public:
  virtual ~StepCollectives() = default;
  /// This rank's embeddings (rows, ids, labels, keys, memory) -> the global
  /// batch's, which the memory, the sampler's feedback and (with
  /// global_negatives()) the miner and the loss see. The result stays valid
  /// until the next call.
  virtual const Embeddings& gather(const Embeddings& local) = 0;
  /// Whether the miner and the loss see the global batch; false: each rank
  /// mines and contrasts its own rows (local negatives), and
  /// local_gradient() is not called.
  virtual bool global_negatives() const { return true; }
  /// dL/dz over the global batch -> this rank's rows of it, what the
  /// rank's encoder differentiates.
  virtual Tensor local_gradient(const Tensor& global_grad) = 0;
  /// Before the backward pass that completes the parameters' gradients (the
  /// last group's): a hook the layers tell of each finished gradient
  /// (contra/gradient_ready.hpp), installed during that pass, so that their
  /// reduction overlaps the rest of it; null for none.
  virtual GradientReadyHook* backward_hook(const std::vector<Parameter*>& params) { return nullptr; }
  /// After the backward pass, before the optimizer: the parameters'
  /// gradients made the same on every rank.
  virtual void reduce_gradients(const std::vector<Parameter*>& params) = 0;
};

struct StepOutcome {
  double loss = 0.0;
  double lr = 0.0;
  std::vector<std::pair<std::string, double>> metrics;
};

class Trainer {
 public:
  /// Builds the encoder for `ctx` (and the head for its output), and each
  /// further tower's, and hands all their parameters, and the loss's, to
  /// the optimizer. With a memory, `memory_ctx`
  /// (its dim filled in here) configures it, and a momentum encoder is built
  /// as an exact copy of the encoder.
  Trainer(TrainerParts parts, const EncoderContext& ctx, MemoryContext memory_ctx = {});

  /// One step; `lr_scale` comes from the learning-rate schedule. The same
  /// algorithm on the host and on a device (device_ops does what differs).
  StepOutcome step(const Batch& batch, std::int64_t global_step, double lr_scale = 1.0);

  /// Hooks for data-parallel ranks (kept, not owned); none by default.
  void set_collectives(StepCollectives* c) { collectives_ = c; }

  const std::vector<Parameter*>& parameters() const { return params_; }
  /// The last step's embeddings (ids, keys and memory set), for the sampler's
  /// feedback edge: on the host also when the step ran on the GPU. Valid
  /// until the next step.
  const Embeddings& last_embeddings() const { return emb_host_; }

 private:
  // The batch's image groups (device: non-owning views) and each row's
  // sample, id and label.
  void set_rows(const Batch& batch);
  // forward() of one encoder or head with its output's form checked (and
  // its values, when `check_values`).
  const Tensor& forward_checked(Encoder& e, const std::string& label, const Tensor& x, bool check_values,
                                std::int64_t step);
  // Every group's embeddings by `enc` (and `head`) in row order.
  Tensor embed_all(Encoder& enc, Encoder* head, Tensor& joined, std::int64_t step);
  std::string where(const Tensor& t) const;
  std::string on_step_device() const;

  // Forwards multi-crop group x again for its backward pass (layers keep
  // only their last forward) without updating the encoder's and head's
  // buffers a second time: batch-norm running statistics would otherwise
  // count every group but the last twice per step.
  void forward_again(const Tensor& x);

  const std::vector<Parameter*>& reduced_params();

  TrainerParts p_;
  StepCollectives* collectives_ = nullptr;
  // Every tower's parameters, then the loss's (from encoder_param_count_ on).
  std::vector<Parameter*> params_, momentum_params_, encoder_params_;
  std::size_t encoder_param_count_ = 0;
  std::vector<std::pair<Tensor*, Tensor>> saved_buffers_;  // forward_again(): each buffer and its copy
  std::vector<std::int64_t> row_sample_, row_label_, row_id_;
  std::vector<const Tensor*> groups_;
  std::vector<int> group_tower_;          // per group: 0 = the first tower, t = p_.towers[t - 1]
  std::vector<std::int32_t> view_tower_;  // Embeddings::view_tower; empty for one tower
  Tensor joined_z_, joined_keys_;  // multi-crop: embeddings of all groups in row order
  Embeddings emb_;
  // Host copies of z and keys (page-locked, reused; on the host, z and keys
  // themselves), and the embeddings over them for host-side miners,
  // memories, the diagnostics and the sampler.
  Tensor z_host_, keys_host_;
  Tensor memory_keys_host_;  // a device memory's keys, copied for CPU miners and the diagnostics
  // Ranks contrasting their own rows on a device: those rows on the host.
  Tensor local_z_host_, local_keys_host_;
  Embeddings local_host_;
  MemoryView memory_host_;
  std::vector<Tensor> input_views_;  // non-owning views of the batch's device images
  Embeddings emb_host_;
  Pairs pairs_;
  // The step the miner and the loss see (Embeddings::context).
  std::uint64_t seed_ = 0;
  StepContext step_context_;
  LossResult result_;
};

}  // namespace contra::runtime
