"""contra.validate(), contra.plugins() and the exceptions: the CLI's checks
and messages, as Python values."""

import os
import unittest

import contra
from support import Workspace


class ValidateTest(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace()

    def tearDown(self):
        self.ws.cleanup()

    def test_a_valid_pipeline_has_no_diagnostics(self):
        self.assertEqual(contra.validate(self.ws.pipeline), [])

    def test_diagnostics_name_the_file_line_column_and_key(self):
        with open(self.ws.pipeline, encoding="utf-8") as f:
            text = f.read()
        bad = self.ws.path("bad.toml")
        with open(bad, "w", encoding="utf-8") as f:
            f.write(text.replace("temperature = 0.5", "temperature = -1\ncolour = 3"))
        found = contra.validate(bad)
        self.assertEqual(len(found), 2, [str(d) for d in found])
        line = text.splitlines().index("temperature = 0.5") + 1
        first, second = found
        self.assertEqual((first.file, first.line, first.column, first.key), (bad, line, 1, "loss.temperature"))
        self.assertEqual(first.message, "expected a value in [0.001, 10], found -1")
        self.assertEqual(str(first), f"{bad}:{line}:1: error: loss.temperature: expected a value in [0.001, 10], found -1")
        self.assertEqual((second.line, second.key), (line + 1, "loss.colour"))
        self.assertIn("unknown parameter 'colour'", second.message)

    def test_overrides_are_checked_as_on_the_command_line(self):
        (d,) = contra.validate(self.ws.pipeline, set=["optimizer.lr=0"])
        self.assertEqual(d.file, "--set optimizer.lr=0")
        self.assertEqual(d.key, "optimizer.lr")

    def test_data_that_cannot_be_read_is_a_diagnostic_of_the_file(self):
        (d,) = contra.validate(self.ws.pipeline, set=['source.images="/nonexistent/images.gz"'])
        self.assertEqual(d.file, self.ws.pipeline)
        self.assertEqual(d.line, 0)
        self.assertIn("/nonexistent/images.gz", d.message)

    def test_run_raises_the_clis_message_as_config_error(self):
        bad = self.ws.path("unknown.toml")
        with open(bad, "w", encoding="utf-8") as f:
            f.write('[source]\nplugin = "idz"\n')
        with self.assertRaises(contra.ConfigError) as caught:
            contra.run(bad, record=False)
        self.assertIn(f"{bad}:2:10: error: source.plugin: unknown source plugin 'idz'; did you mean 'idx'?",
                      str(caught.exception))
        self.assertTrue(issubclass(contra.ConfigError, contra.Error))

    def test_a_missing_file_is_an_error_not_a_crash(self):
        found = contra.validate(self.ws.path("none.toml"))
        self.assertEqual(len(found), 1)
        self.assertIn("none.toml", str(found[0]))


class PluginsTest(unittest.TestCase):
    def test_every_plugin_with_its_schema(self):
        found = {(p["kind"], p["name"], p["device"]): p for p in contra.plugins()}
        info_nce = found[("loss", "info_nce", "cpu")]
        temperature = next(q for q in info_nce["parameters"] if q["name"] == "temperature")
        self.assertEqual(temperature["type"], "number")
        self.assertEqual((temperature["min"], temperature["max"]), (0.001, 10.0))
        self.assertFalse(temperature["required"])
        self.assertIn("temperature", info_nce["describe"])
        idx = found[("source", "idx", "cpu")]
        images = next(q for q in idx["parameters"] if q["name"] == "images")
        self.assertTrue(images["required"])
        self.assertIsNone(images["default"])
        self.assertTrue(os.path.exists(idx["library"]))


if __name__ == "__main__":
    unittest.main()
