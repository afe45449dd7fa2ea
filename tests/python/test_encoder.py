"""contra.Encoder: a checkpoint's encoder embeds numpy arrays with the numbers
`contra embed` writes."""

import os
import subprocess
import unittest

import numpy

import contra
from support import Workspace


class EncoderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace(steps=6)
        cls.run_dir = cls.ws.path("run")
        contra.run(cls.ws.pipeline, run_dir=cls.run_dir)

    @classmethod
    def tearDownClass(cls):
        cls.ws.cleanup()

    def test_the_numbers_of_contra_embed(self):
        cli = os.path.join(os.environ.get("CONTRA_BINARY_DIR", "build"), "bin", "contra")
        out = self.ws.path("embedded.npy")
        subprocess.run([cli, "embed", self.run_dir, "--out", out], check=True, capture_output=True)
        expected = numpy.load(out)
        encoder = contra.Encoder.load(self.run_dir)
        self.assertEqual(encoder.step, 6)
        self.assertEqual(encoder.input_shape, (1, 28, 28))
        self.assertEqual(encoder.output_dim, 16)
        z = encoder.embed(self.ws.images)  # uint8 [N, 28, 28], the IDX file's bytes
        self.assertEqual(z.dtype, numpy.float32)
        self.assertEqual(z.shape, (len(self.ws.images), 16))
        numpy.testing.assert_array_equal(z, expected)
        # [N, H, W, 1] is the same images; a non-contiguous view is copied, not misread.
        numpy.testing.assert_array_equal(encoder.embed(self.ws.images[..., None]), expected)
        numpy.testing.assert_array_equal(encoder.embed(self.ws.images[::2]), expected[::2])

    def test_float_inputs_go_straight_into_the_encoder(self):
        encoder = contra.Encoder.load(self.run_dir)
        # [eval]'s chain by hand: normalize(mean 0.5, std 0.25) of x / 255.
        x = ((self.ws.images.astype(numpy.float32) / 255.0 - 0.5) / 0.25)[:, None, :, :]
        numpy.testing.assert_allclose(encoder.embed(x), encoder.embed(self.ws.images), rtol=1e-5, atol=1e-5)

    def test_a_checkpoint_file_and_its_folder_give_one_encoder(self):
        latest = os.path.join(self.run_dir, "checkpoints", "step-00000006.safetensors")
        a = contra.Encoder.load(latest).embed(self.ws.images[:8])
        b = contra.Encoder.load(self.run_dir).embed(self.ws.images[:8])
        numpy.testing.assert_array_equal(a, b)

    def test_wrong_arrays_are_refused_with_what_was_expected(self):
        encoder = contra.Encoder.load(self.run_dir)
        with self.assertRaisesRegex(contra.UsageError, r"expected uint8 images \[N, H, W\] or \[N, H, W, C\]"):
            encoder.embed(numpy.zeros((4, 28, 28), numpy.int16))
        with self.assertRaisesRegex(contra.UsageError, r"takes \[N, 1, 28, 28\], got shape \[4, 28, 28\]"):
            encoder.embed(numpy.zeros((4, 28, 28), numpy.float32))
        with self.assertRaisesRegex(contra.UsageError, r"\[eval\]'s chain makes images \[4, 20, 20\] into "
                                    r"\[1, 20, 20\], and the encoder was built for \[1, 28, 28\]"):
            encoder.embed(numpy.zeros((4, 20, 20), numpy.uint8))
        with self.assertRaisesRegex(contra.ConfigError, "no such checkpoint file or run folder"):
            contra.Encoder.load(self.ws.path("missing"))


if __name__ == "__main__":
    unittest.main()
