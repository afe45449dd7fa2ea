// augment: SimCLR two-view augmentation (random resized crop 0.2-1, flip,
// color jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, normalize) in
// contra's augment stage, against torchvision in the same run: per-sample
// transforms through a DataLoader with 2 workers (PIL images and uint8
// tensors), and the same augmentations as batched tensor operations.
// Prints views/s, views/s per core and the ratios.
//
//   build/bench/augment                 # Fashion-MNIST 28x28x1 and synthetic 32x32x3
//   build/bench/augment --seconds 5 --no-peer

#include "assembly/load_pipeline.hpp"
#include "assembly/pipeline.hpp"
#include "graph/augment_stage.hpp"
#include "loader/registry.hpp"
#include "train/json_io.hpp"

#include <contra/cpu.hpp>
#include <contra/plugin.hpp>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace contra;
using namespace contra::runtime;
using Clock = std::chrono::steady_clock;

namespace {

std::string chain_toml(const std::string& source, int channels) {
  std::string mean = channels == 1 ? "[0.286]" : "[0.49, 0.48, 0.45]";
  std::string stdv = channels == 1 ? "[0.353]" : "[0.25, 0.24, 0.26]";
  return source + R"(
[encoder]
plugin = "mlp"
[loss]
plugin = "info_nce"
[optimizer]
plugin = "sgd"
[augment]
views = 2
[[augment.chain]]
plugin = "random_resized_crop"
scale = [0.2, 1.0]
[[augment.chain]]
plugin = "horizontal_flip"
[[augment.chain]]
plugin = "random_apply"
p = 0.8
[[augment.chain]]
plugin = "color_jitter"
brightness = 0.4
contrast = 0.4
saturation = 0.4
hue = 0.1
[[augment.chain]]
plugin = "random_grayscale"
p = 0.2
[[augment.chain]]
plugin = "normalize"
mean = )" + mean + "\nstd = " + stdv + "\n";
}

struct Setup {
  std::string label;
  std::string toml;
  int channels;
};

// Views per second of the augment stage with `threads` TBB threads.
double time_contra(const PipelineSpec& spec, const PluginRegistry& reg, Source& source, int threads, double seconds,
                   std::vector<Tensor>& dump) {
  const SourceInfo info = source.info();
  const Pipeline p = assemble(spec, reg);
  AugmentStage stage(p.views, 1);
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  tbb::task_arena arena(threads);
  const std::int64_t batch = 256;
  BatchWork w;
  w.indices.resize(batch);
  w.raw.resize(batch);
  double views = 0, elapsed = 0;
  std::int64_t step = 0;
  arena.execute([&] {
    Clock::time_point start;
    for (int it = 0;; ++it) {
      for (std::int64_t i = 0; i < batch; ++i) {
        w.indices[i] = (step * batch + i) % info.size;
        source.load(w.indices[i], w.raw[i]);
      }
      w.batch.epoch = step / 100;
      w.batch.step = step++;
      stage.run(w);
      if (it == 1) start = Clock::now();  // after warm-up
      if (it > 1) {
        views += static_cast<double>(w.batch.images.dim(0));
        elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        if (elapsed > seconds) break;
      }
    }
  });
  if (dump.empty()) dump.push_back(w.batch.images.clone());
  return views / elapsed;
}

// Raw uint8 images of the source for the Python peer.
std::string dump_images(Source& source, std::int64_t n, const std::string& path) {
  const SourceInfo info = source.info();
  n = std::min(n, info.size);
  std::ofstream f(path, std::ios::binary);
  Tensor img;
  for (std::int64_t i = 0; i < n; ++i) {
    source.load(i, img);
    f.write(static_cast<const char*>(img.raw()), static_cast<std::streamsize>(img.nbytes()));
  }
  return std::to_string(n) + "," + std::to_string(info.shape.height) + "," + std::to_string(info.shape.width) + "," +
         std::to_string(info.shape.channels);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  bool peer = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--no-peer") peer = false;
    else {
      std::fprintf(stderr, "usage: augment [--seconds S] [--no-peer]\n");
      return 2;
    }
  }
  const std::string fmnist = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  std::vector<Setup> setups;
  if (std::filesystem::exists(fmnist))
    setups.push_back({"Fashion-MNIST 28x28x1",
                      "[source]\nplugin = \"idx\"\nimages = \"" + fmnist + "\"\n", 1});
  setups.push_back({"synthetic 32x32x3",
                    "[source]\nplugin = \"synthetic\"\nsize = 10000\nheight = 32\nwidth = 32\nchannels = 3\n", 3});
  std::printf("augment: SimCLR two views (random resized crop 0.2-1, flip, color jitter 0.4/0.4/0.4/0.1 p 0.8,\n"
              "grayscale p 0.2, normalize); torchvision peers with 2 DataLoader workers / 2 threads\n");
  std::printf("cpu: %s\n", contra::cpu_capabilities().summary().c_str());
  try {
    for (const Setup& s : setups) {
      const std::string dir = std::filesystem::temp_directory_path() / "contra-bench-augment";
      std::filesystem::create_directories(dir);
      const std::string file = dir + "/p.toml";
      { std::ofstream(file) << chain_toml(s.toml, s.channels); }
      PluginRegistry reg;
      PipelineSpec spec = load_pipeline(file, {}, reg);
      auto source = reg.create<Source>(*reg.find(PluginKind::source, spec.source.name), spec.source.params);
      std::vector<Tensor> dump;
      double one = time_contra(spec, reg, *source, 1, seconds, dump);
      double two = time_contra(spec, reg, *source, 2, seconds, dump);
      std::printf("\n%s\n%-40s %12s %12s\n", s.label.c_str(), "", "views/s", "per core");
      std::printf("%-40s %12.0f %12.0f\n", "contra, 1 thread", one, one);
      std::printf("%-40s %12.0f %12.0f\n", "contra, 2 threads", two, two / 2);
      if (!peer) continue;
      std::string shape = dump_images(*source, 10000, dir + "/images.u8");
      std::string cmd =
          "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 "
          "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 " CONTRA_SOURCE_DIR
          "/tools/bench/augment_torch.py --images " + dir + "/images.u8 --shape " + shape +
          " --workers 2 --threads 2 --seconds " + std::to_string(seconds) + " 2>&1";
      FILE* p = popen(cmd.c_str(), "r");
      std::string out;
      char buf[4096];
      std::size_t n;
      while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      const json::Json figures = json::last_object_line(out);
      if (!p || pclose(p) != 0 || !json::find(figures, "batched")) {
        std::fprintf(stderr, "torchvision peer failed:\n%s\n", out.c_str());
        continue;
      }
      double pil = json::number_at(figures, "dataloader_pil"), tensor = json::number_at(figures, "dataloader_tensor"),
             batched = json::number_at(figures, "batched");
      std::printf("%-40s %12.0f %12.0f\n", "torchvision DataLoader, PIL (2 workers)", pil, pil / 2);
      std::printf("%-40s %12.0f %12.0f\n", "torchvision DataLoader, tensors (2 wk)", tensor, tensor / 2);
      std::printf("%-40s %12.0f %12.0f\n", "torch batched tensor ops (2 threads)", batched, batched / 2);
      std::printf("contra (2 threads) / DataLoader PIL: %.1fx, / DataLoader tensors: %.1fx (target >= 10x of the "
                  "per-sample DataLoader)\n",
                  two / pil, two / tensor);
      std::printf("contra (2 threads) / batched tensor ops: %.2fx (target >= 1.3x)\n", two / batched);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "augment: %s\n", e.what());
    return 1;
  }
}
