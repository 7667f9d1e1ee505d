"""tools/figures/make_figures.py renders the four figures from the committed eval/probe/bench JSON (Debian's
python3-matplotlib, installed by setup), and refuses an eval.json without position bands."""

import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools/figures/make_figures.py"
PNG = b"\x89PNG\r\n\x1a\n"


class FiguresTest(unittest.TestCase):
    def test_renders_both_figures(self) -> None:
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run(["/usr/bin/python3", str(SCRIPT), "--out", out],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(run.returncode, 0, run.stderr)
            for name in ("quality_vs_ratio.png", "continuation_by_position.png",
                         "latency_vs_context.png", "decode_vs_llamacpp.png"):
                data = (Path(out) / name).read_bytes()
                self.assertTrue(data.startswith(PNG), name)
                self.assertGreater(len(data), 10000, name)

    def test_an_eval_without_position_bands_is_refused(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            demo = Path(tmp) / "demo"
            demo.mkdir()
            for name in ("eval.json", "eval-16x.json", "probe-4x.json", "probe-16x.json"):
                shutil.copy(REPO / "models/demo" / name, demo / name)
            stripped = json.loads((demo / "eval.json").read_text())
            del stripped["ppl_by_position"]
            (demo / "eval.json").write_text(json.dumps(stripped))
            run = subprocess.run(["/usr/bin/python3", str(SCRIPT), "--out", tmp, "--demo",
                                  str(demo)], capture_output=True, text=True, timeout=120)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn("ppl_by_position", run.stderr)


if __name__ == "__main__":
    sys.exit(unittest.main())
