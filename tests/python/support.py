"""What the Python module's tests share: small pipelines on data they write."""

import gzip
import os
import struct
import tempfile

import numpy

SOURCE_DIR = os.environ.get("CONTRA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY_DIR = os.environ.get("CONTRA_BINARY_DIR", os.path.join(SOURCE_DIR, "build"))


def write_idx(folder, n=96, seed=0):
    """n 28×28 images in Fashion-MNIST's IDX format (gzipped, as Debian ships
    it): four classes of bars at different angles, with noise. Returns the
    images (uint8 [n, 28, 28]) and the two file paths."""
    rng = numpy.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(numpy.uint8)
    yy, xx = numpy.mgrid[0:28, 0:28]
    images = numpy.empty((n, 28, 28), numpy.uint8)
    for i, c in enumerate(labels):
        angle = c * numpy.pi / 4
        d = numpy.abs((xx - 14) * numpy.sin(angle) - (yy - 14) * numpy.cos(angle))
        img = numpy.where(d < 3, 220, 20) + rng.integers(0, 30, (28, 28))
        images[i] = numpy.clip(img, 0, 255)
    image_path = os.path.join(folder, "images-idx3-ubyte.gz")
    label_path = os.path.join(folder, "labels-idx1-ubyte.gz")
    with gzip.open(image_path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
    with gzip.open(label_path, "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    return images, image_path, label_path


INFO_NCE = """[loss]
plugin = "info_nce"
temperature = 0.5
"""


def pipeline_text(image_path, label_path, steps=6, extra="", loss=INFO_NCE):
    return f"""[pipeline]
name = "python"
seed = 3
[runtime]
prefetch = 2
compute_threads = 1
data_threads = 1
[train]
epochs = 100
max_steps = {steps}
[source]
plugin = "idx"
images = "{image_path}"
labels = "{label_path}"
[sampler]
plugin = "random"
batch_size = 32
[augment]
views = 2
[[augment.chain]]
plugin = "random_resized_crop"
size = 28
scale = [0.5, 1.0]
[[augment.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[encoder]
plugin = "mlp"
hidden = [32]
output = 16
{loss}[optimizer]
plugin = "sgd"
lr = 0.05
[eval]
[eval.test]
plugin = "idx"
images = "{image_path}"
labels = "{label_path}"
[[eval.chain]]
plugin = "normalize"
mean = [0.5]
std = [0.25]
[[eval.evaluator]]
plugin = "knn"
k = [5]
temperature = [0.1]
{extra}"""


class Workspace:
    """A temporary folder with IDX data and a pipeline file over it."""

    def __init__(self, steps=6, extra=""):
        self._dir = tempfile.TemporaryDirectory(prefix="contra-python-")
        self.dir = self._dir.name
        self.steps = steps
        self.images, self._image_path, self._label_path = write_idx(self.dir)
        self.pipeline = self.variant("p.toml", extra=extra)

    def variant(self, name, extra="", loss=INFO_NCE):
        """Another pipeline file over the same data: its own [loss] table
        (and `extra` sections, e.g. a [miner])."""
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(pipeline_text(self._image_path, self._label_path, self.steps, extra, loss))
        return path

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        self._dir.cleanup()
