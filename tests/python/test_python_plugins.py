"""Losses and miners written in Python ([loss] / [miner] plugin = "python"):
a torch NT-Xent (autograd) and a numpy one (its own gradient) train exactly
as info_nce does; a numpy batch-hard miner picks what batch_hard picks; a
Python loss that raises, returns a wrong shape or NaN gets a clear error;
the contra CLI runs them too (it starts the interpreter itself)."""

import os
import subprocess
import sys
import textwrap
import unittest

import numpy

import contra
from support import Workspace

TORCH_LOSS = '''
import torch


class NTXent:
    """SimCLR's NT-Xent: its forward pass alone; autograd gives dL/dz."""

    def __init__(self, temperature=0.5):
        self.temperature = temperature

    def __call__(self, batch):
        z = torch.nn.functional.normalize(batch.z, dim=1)
        s = z @ z.T / self.temperature
        n = s.shape[0]
        eye = torch.eye(n, dtype=torch.bool)
        s = s.masked_fill(eye, float("-inf"))
        positive = (batch.sample[:, None] == batch.sample[None, :]) & ~eye
        log_p = s - torch.logsumexp(s, dim=1, keepdim=True)
        return -log_p[positive].view(n, -1).mean(dim=1).mean()
'''

STEP_LOSS = '''
import torch


class Records:
    """NT-Xent, which also records the step context it was given."""

    seen = []

    def __call__(self, batch):
        Records.seen.append((batch.step, batch.epoch, batch.seed, batch.random_seed))
        z = torch.nn.functional.normalize(batch.z, dim=1)
        s = (z @ z.T / 0.5).masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
        positive = (batch.sample[:, None] == batch.sample[None, :]) & ~torch.eye(len(z), dtype=torch.bool)
        return -(s - torch.logsumexp(s, dim=1, keepdim=True))[positive].mean()
'''

NUMPY_LOSS = '''
import numpy


class NTXent:
    """NT-Xent for two views, value and dL/dz in numpy (float64 inside)."""

    def __init__(self, temperature=0.5):
        self.t = temperature

    def __call__(self, batch):
        z = batch.z.astype(numpy.float64)
        norm = numpy.linalg.norm(z, axis=1, keepdims=True)
        u = z / norm
        s = u @ u.T / self.t
        n = len(s)
        numpy.fill_diagonal(s, -numpy.inf)
        same = batch.sample[:, None] == batch.sample[None, :]
        numpy.fill_diagonal(same, False)
        s_max = s.max(axis=1, keepdims=True)
        p = numpy.exp(s - s_max)
        p /= p.sum(axis=1, keepdims=True)
        lse = numpy.log(numpy.exp(s - s_max).sum(axis=1)) + s_max[:, 0]
        value = numpy.mean(lse - s[same].reshape(n, -1)[:, 0])
        g = (p - same) / n                      # dL/ds
        du = (g + g.T) @ u / self.t             # dL/du
        dz = (du - u * numpy.sum(u * du, axis=1, keepdims=True)) / norm
        return value, dz.astype(numpy.float32), {"positive_similarity": float(numpy.mean(s[same]) * self.t)}
'''

MINER = '''
import numpy


class BatchHard:
    """Hermans et al.'s batch-hard triplets, grouped by sample, ties to the lower row."""

    def __call__(self, batch):
        z = batch.z.astype(numpy.float64)
        d = numpy.sqrt(numpy.maximum(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1), 0))
        same = batch.sample[:, None] == batch.sample[None, :]
        numpy.fill_diagonal(same, False)
        other = batch.sample[:, None] != batch.sample[None, :]
        rows = numpy.arange(len(z))
        positive = numpy.where(same, d, -numpy.inf).argmax(axis=1)
        negative = numpy.where(other, d, numpy.inf).argmin(axis=1)
        return {"triplets": numpy.stack([rows, positive, negative], axis=1)}
'''

SYNTHETIC_MINER = '''
import numpy


class Opposites:
    """Every row of another sample as a negative and, with `synthetic`, the
    anchor's own opposite (−ẑ) as a synthetic one."""

    def __init__(self, synthetic=True):
        self.synthetic = synthetic

    def __call__(self, batch):
        rows = numpy.arange(len(batch.z))
        other = batch.sample[:, None] != batch.sample[None, :]
        a, n = numpy.nonzero(other)
        mined = {"negative": numpy.stack([a, n], axis=1)}
        if self.synthetic:
            z = batch.z / numpy.linalg.norm(batch.z, axis=1, keepdims=True)
            mined["synthetic"] = -z
            mined["synthetic_negative"] = numpy.stack([rows, rows], axis=1)
        return mined
'''

BROKEN = '''
import numpy


class Raises:
    def __call__(self, batch):
        raise ValueError("no loss today")


class WrongShape:
    def __call__(self, batch):
        return 1.0, numpy.zeros((3, 2), numpy.float32)


class NotANumber:
    def __call__(self, batch):
        return float("nan"), numpy.zeros(batch.z.shape, numpy.float32)
'''


def write(ws, name, text):
    with open(ws.path(name), "w", encoding="utf-8") as f:
        f.write(text)


class PythonLossTest(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace(steps=4)
        write(self.ws, "torch_losses.py", TORCH_LOSS)
        write(self.ws, "numpy_losses.py", NUMPY_LOSS)
        write(self.ws, "miners.py", MINER)
        write(self.ws, "broken_losses.py", BROKEN)
        write(self.ws, "step_losses.py", STEP_LOSS)
        write(self.ws, "synthetic_miners.py", SYNTHETIC_MINER)

    def tearDown(self):
        self.ws.cleanup()

    def losses(self, pipeline, *overrides, run_dir=None):
        summary = contra.run(pipeline, set=list(overrides), run_dir=run_dir, record=run_dir is not None)
        return summary["losses"]

    def python_loss(self, name, module, cls, *lines):
        return self.ws.variant(name, loss="[loss]\nplugin = \"python\"\nmodule = \"%s\"\nclass = \"%s\"\n%s" %
                               (module, cls, "".join(line + "\n" for line in lines)))

    def test_a_torch_nt_xent_trains_as_info_nce(self):
        torch_loss = self.python_loss("torch.toml", "torch_losses", "NTXent", "args = [\"temperature=0.5\"]",
                                      "tensors = \"torch\"")
        ours = self.losses(torch_loss, run_dir=self.ws.path("torch"))
        reference = self.losses(self.ws.pipeline, run_dir=self.ws.path("info_nce"))
        # Step 0 compares the values; later steps follow the gradients.
        numpy.testing.assert_allclose(ours, reference, rtol=2e-5)
        a = contra.Encoder.load(self.ws.path("torch")).embed(self.ws.images)
        b = contra.Encoder.load(self.ws.path("info_nce")).embed(self.ws.images)
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    def test_a_numpy_nt_xent_with_its_own_gradient_trains_as_info_nce(self):
        seen = []
        numpy_loss = self.python_loss("numpy.toml", "numpy_losses", "NTXent")
        summary = contra.run(numpy_loss, record=False, on_step=seen.append)
        numpy.testing.assert_allclose(summary["losses"], self.losses(self.ws.pipeline), rtol=2e-5)
        self.assertIn("positive_similarity", seen[0]["metrics"])

    def test_the_batch_carries_the_step_context(self):
        sys.path.insert(0, self.ws.dir)
        import step_losses
        step_losses.Records.seen.clear()
        contra.run(self.python_loss("step.toml", "step_losses", "Records", "tensors = \"torch\""), record=False)
        seen = step_losses.Records.seen
        self.assertEqual([s[0] for s in seen], [0, 1, 2, 3])   # steps from 0, as StepContext counts them
        self.assertEqual({s[2] for s in seen}, {3})             # the pipeline's seed
        self.assertEqual(len({s[3] for s in seen}), 4)          # a seed of its own per step
        step_losses.Records.seen.clear()
        contra.run(self.python_loss("step.toml", "step_losses", "Records", "tensors = \"torch\""), record=False)
        self.assertEqual(step_losses.Records.seen, seen)        # and the same ones again

    def test_a_python_batch_hard_miner_picks_what_batch_hard_picks(self):
        triplet = "[loss]\nplugin = \"triplet\"\nmargin = 0.2\n"
        ours = self.ws.variant("miner.toml", loss=triplet,
                               extra="[miner]\nplugin = \"python\"\nmodule = \"miners\"\nclass = \"BatchHard\"\n")
        reference = self.ws.variant("batch_hard.toml", loss=triplet, extra="[miner]\nplugin = \"batch_hard\"\n")
        numpy.testing.assert_allclose(self.losses(ours), self.losses(reference), rtol=1e-5)

    def test_a_python_miner_hands_info_nce_synthetic_negatives(self):
        miner = "[miner]\nplugin = \"python\"\nmodule = \"synthetic_miners\"\nclass = \"Opposites\"\n"
        plain = self.ws.variant("plain.toml", extra=miner + "args = [\"synthetic=false\"]\n")
        opposite = self.ws.variant("opposite.toml", extra=miner)
        # Without synthetic rows the listed negatives are all_pairs': info_nce's own loss.
        numpy.testing.assert_allclose(self.losses(plain), self.losses(self.ws.pipeline), rtol=2e-5)
        # An opposite point is the easiest negative there is, yet one more term: the loss grows.
        self.assertGreater(self.losses(opposite)[0], self.losses(plain)[0])

    def test_the_contra_cli_runs_a_python_loss(self):
        cli = os.path.join(os.environ.get("CONTRA_BINARY_DIR", "build"), "bin", "contra")
        torch_loss = self.python_loss("torch.toml", "torch_losses", "NTXent", "tensors = \"torch\"")
        run_dir = self.ws.path("cli")
        done = subprocess.run([cli, "run", torch_loss, "--run-dir", run_dir], capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        numpy.testing.assert_allclose(contra.read_run(run_dir)["steps"]["loss"], self.losses(torch_loss), rtol=1e-6)

    def test_errors_name_the_class_the_file_and_the_line(self):
        with self.assertRaises(contra.Error) as caught:
            self.losses(self.python_loss("raises.toml", "broken_losses", "Raises"))
        line = BROKEN.splitlines().index('        raise ValueError("no loss today")') + 1
        self.assertIn(f"python loss 'broken_losses.Raises': raised ValueError: no loss today "
                      f"({self.ws.path('broken_losses.py')}:{line}, in __call__)", str(caught.exception))
        with self.assertRaisesRegex(contra.Error, r"python loss 'broken_losses.WrongShape': returned a gradient of "
                                                  r"shape \[3, 2\], expected \[64, 16\] \(dL/dz\)"):
            self.losses(self.python_loss("shape.toml", "broken_losses", "WrongShape"))
        with self.assertRaisesRegex(contra.Error, "not finite"):
            self.losses(self.python_loss("nan.toml", "broken_losses", "NotANumber"))

    def test_what_the_pipeline_says_wrong_is_a_diagnostic(self):
        def problems(module, cls, *lines):
            return [str(d) for d in contra.validate(self.python_loss("check.toml", module, cls, *lines))]

        (missing,) = problems("nowhere", "X")
        self.assertIn("loss.module: cannot import 'nowhere': ModuleNotFoundError: No module named 'nowhere'", missing)
        (no_class,) = problems("torch_losses", "NTXnet")
        self.assertIn("loss.class: module 'torch_losses' (", no_class)
        self.assertIn("has no 'NTXnet'", no_class)
        (bad_args,) = problems("torch_losses", "NTXent", "args = [\"temperature\"]")
        self.assertIn('loss.args: "temperature" is not NAME=VALUE', bad_args)
        (unknown_arg,) = problems("torch_losses", "NTXent", "args = [\"tau=0.1\"]")
        self.assertIn("NTXent(1 arguments) raised TypeError", unknown_arg)
        self.assertIn("unexpected keyword argument 'tau'", unknown_arg)


if __name__ == "__main__":
    unittest.main()
