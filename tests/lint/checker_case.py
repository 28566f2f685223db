"""What the tests of the scripts/check-* share: fake source trees in temporary directories,
removed when the test ends, and one run of the checker on such a tree."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")


class CheckerCase(unittest.TestCase):
    CHECKER = None  # the script's name under scripts/, set by each test class

    def fake_tree(self, src, others=None):
        """A tree with `src` (path under src/: text) and `others` (path under the root: text);
        without either, an empty directory."""
        root = tempfile.mkdtemp(prefix=f"{self.CHECKER}-")
        self.addCleanup(shutil.rmtree, root)
        files = {**{os.path.join("src", rel): text for rel, text in src.items()}, **(others or {})}
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        return root

    def check(self, root):
        """(exit status, stdout, stderr) of the checker run on root."""
        r = subprocess.run([sys.executable, os.path.join(SCRIPTS, self.CHECKER), root],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr
