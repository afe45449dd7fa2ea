"""contra.run(): a pipeline trains from Python as from the command line; each
step's figures reach on_step; a callback that raises stops the run; Ctrl-C
stops it after a final checkpoint; read_run() gives the records back."""

import os
import signal
import subprocess
import sys
import textwrap
import unittest

import numpy

import contra
from support import Workspace


class RunTest(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace(steps=6)

    def tearDown(self):
        self.ws.cleanup()

    def test_steps_reach_the_callback_and_the_record(self):
        seen = []
        run_dir = self.ws.path("run")
        summary = contra.run(self.ws.pipeline, run_dir=run_dir, on_step=seen.append)
        self.assertEqual(summary["steps"], 6)
        self.assertEqual([s["step"] for s in seen], [1, 2, 3, 4, 5, 6])
        self.assertEqual(seen[0]["total_steps"], 6)
        losses = numpy.array([s["loss"] for s in seen])
        numpy.testing.assert_array_equal(losses, summary["losses"])
        self.assertTrue(numpy.all(numpy.isfinite(losses)))
        self.assertIn("mining.pos_sim_mean", seen[0]["metrics"])
        self.assertEqual(summary["run_dir"], run_dir)
        self.assertTrue(summary["checkpoint"].endswith("step-00000006.safetensors"))
        self.assertIn("knn.top1_k5_t0.1", summary["eval"])

        record = contra.read_run(run_dir)
        numpy.testing.assert_array_equal(record["steps"]["step"], numpy.arange(1, 7))
        numpy.testing.assert_allclose(record["steps"]["loss"], losses, rtol=1e-6)
        self.assertEqual(record["steps"]["mining.pos_sim_mean"].shape, (6,))
        self.assertEqual(list(record["evals"]["step"]), [6])
        self.assertAlmostEqual(record["evals"]["knn.top1_k5_t0.1"][0], summary["eval"]["knn.top1_k5_t0.1"], 4)
        self.assertEqual(record["summary"]["steps"], 6)
        self.assertIn("[loss]", record["pipeline"])

    def test_the_same_seed_gives_the_same_losses_as_the_command_line(self):
        ours = contra.run(self.ws.pipeline, record=False)
        cli = os.path.join(os.environ.get("CONTRA_BINARY_DIR", "build"), "bin", "contra")
        run_dir = self.ws.path("cli")
        subprocess.run([cli, "run", self.ws.pipeline, "--run-dir", run_dir], check=True, capture_output=True)
        numpy.testing.assert_allclose(contra.read_run(run_dir)["steps"]["loss"], ours["losses"], rtol=1e-6)

    def test_a_callback_that_raises_stops_the_run_and_its_exception_comes_back(self):
        def stop_at_two(s):
            if s["step"] == 2:
                raise ValueError("enough")

        run_dir = self.ws.path("stopped")
        with self.assertRaisesRegex(ValueError, "enough"):
            contra.run(self.ws.pipeline, set=["train.max_steps=200"], run_dir=run_dir, on_step=stop_at_two)
        record = contra.read_run(run_dir)
        self.assertLess(len(record["steps"]["step"]), 200)
        self.assertIsNotNone(record["summary"])  # the run ended properly: its summary and last checkpoint
        self.assertTrue(os.path.exists(os.path.join(run_dir, "checkpoints", "latest")))

    def test_no_record(self):
        summary = contra.run(self.ws.pipeline, record=False)
        self.assertEqual(summary["run_dir"], "")
        self.assertEqual(summary["checkpoint"], "")

    def test_ctrl_c_stops_after_a_final_checkpoint(self):
        run_dir = self.ws.path("interrupted")
        script = textwrap.dedent(f"""
            import os, signal, sys
            import contra
            def on_step(s):
                if s["step"] == 2:
                    os.kill(os.getpid(), signal.SIGINT)
            try:
                contra.run({self.ws.pipeline!r}, set=["train.max_steps=500"], run_dir={run_dir!r}, on_step=on_step)
            except KeyboardInterrupt:
                print("KeyboardInterrupt")
                sys.exit(130)
            print("finished")
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ))
        self.assertEqual(done.returncode, 130, done.stdout + done.stderr)
        self.assertIn("KeyboardInterrupt", done.stdout)
        record = contra.read_run(run_dir)
        steps = len(record["steps"]["step"])
        self.assertLess(steps, 500)
        self.assertTrue(os.path.exists(os.path.join(run_dir, "checkpoints", "step-%08d.safetensors" % steps)))

    def test_read_run_leaves_out_a_last_line_cut_short_and_names_a_bad_one(self):
        run_dir = self.ws.path("cut")
        contra.run(self.ws.pipeline, run_dir=run_dir)
        metrics = os.path.join(run_dir, "metrics.jsonl")
        with open(metrics, "a", encoding="utf-8") as f:
            f.write('{"type": "step", "step": 7, "lo')
        self.assertEqual(len(contra.read_run(run_dir)["steps"]["step"]), 6)
        with open(metrics, encoding="utf-8") as f:
            lines = f.read().split("\n")
        lines.insert(1, "not json")
        with open(metrics, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        with self.assertRaisesRegex(contra.DataError, r"metrics\.jsonl:2: not a JSON object"):
            contra.read_run(run_dir)
        with self.assertRaisesRegex(contra.ConfigError, "no run.json"):
            contra.read_run(self.ws.dir)


if __name__ == "__main__":
    unittest.main()
