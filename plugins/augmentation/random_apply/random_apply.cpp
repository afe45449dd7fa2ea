#include "random_apply.hpp"

#include <cstring>
#include <string>

namespace contra::plugins {

contra::Schema RandomApply::schema() {
  return contra::Schema("random_apply",
                        "apply the next `count` augmentations of the chain with probability p, all or none "
                        "(torchvision RandomApply)")
      .add<double>("p", 0.5, "probability that the next `count` augmentations run")
      .range(0.0, 1.0)
      .add<std::int64_t>("count", 1, "number of following augmentations the decision covers")
      .range(1, 64);
}

RandomApply::RandomApply(const contra::Params& p) : p_(p.get<double>("p")), count_(p.get<int>("count")) {}

void RandomApply::apply(const contra::Tensor& in, contra::Tensor& out, contra::Rng&) const {
  if (in.rank() != 3 || (in.dtype() != DType::u8 && in.dtype() != DType::f32))
    throw UsageError(std::string("random_apply: expects a u8 [H, W, C] or f32 [C, H, W] image, got ") +
                     dtype_name(in.dtype()) + " " + in.shape().str());
  out.ensure(in.shape(), in.dtype());
  std::memcpy(out.raw(), in.raw(), in.nbytes());
}

}  // namespace contra::plugins
