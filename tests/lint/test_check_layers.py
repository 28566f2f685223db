"""scripts/check-layers on small fake trees: an upward include fails and is named by file
and line, the same tree without it passes, and a folder missing from the layer list fails."""

import unittest

from checker_case import CheckerCase

ARCHITECTURE = """\
# Architecture

## Layers

```
base        # bottom
# a line of comment only is no layer; grp/mid is a sub-component, as smtp/protocol is
grp/mid
top
```

## Something else

```
top base
```
"""

# Every component includes what the layers allow, plus a system header and one from
# outside src/, which the checker must ignore.
CLEAN = {
    "base/base.hpp": '#pragma once\n#include <string>\n',
    "base/base.cpp": '#include "base/base.hpp"\n#include "temp_dir.hpp"\n',
    "grp/mid/mid.hpp": '#pragma once\n#include "base/base.hpp"\n',
    "grp/mid/mid.cpp": '#include "mid.hpp"\n',
    "top/top.hpp": '#pragma once\n#include "grp/mid/mid.hpp"\n#include <base/base.hpp>\n',
    "top/top_test.cpp": '#include "top/top.hpp"\n',
}


class CheckLayersTest(CheckerCase):
    CHECKER = "check-layers"

    def make_tree(self, files, architecture=ARCHITECTURE):
        return self.fake_tree(files, {"docs/architecture.md": architecture})

    def assert_fails(self, changes, expected, architecture=ARCHITECTURE):
        """CLEAN with changes (path: new text) must fail with exactly the expected lines."""
        rc, out, err = self.check(self.make_tree({**CLEAN, **changes}, architecture))
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out.splitlines(), expected)

    def test_clean_tree_passes(self):
        rc, out, err = self.check(self.make_tree(CLEAN))
        self.assertEqual((rc, out), (0, ""), err)

    def test_upward_include_fails_naming_file_and_line(self):
        self.assert_fails({"base/base.cpp": '#include "base/base.hpp"\n\n'
                                            '#include "top/top.hpp"\n'},
                          ["src/base/base.cpp:3: base includes top/top.hpp from top "
                           "(layers: docs/architecture.md#layers)"])

    def test_upward_include_through_a_relative_path_fails(self):
        self.assert_fails({"grp/mid/mid.cpp": '#include "mid.hpp"\n'
                                              '#include "../../top/top.hpp"\n'},
                          ["src/grp/mid/mid.cpp:2: grp/mid includes ../../top/top.hpp from top "
                           "(layers: docs/architecture.md#layers)"])

    def test_include_within_one_layer_fails(self):
        self.assert_fails({"top/top.hpp": '#pragma once\n#include "base/base.hpp"\n',
                           "top/top_test.cpp": '#include "top/top.hpp"\n'
                                               '#include "grp/mid/mid.hpp"\n'},
                          ["src/top/top_test.cpp:2: top includes grp/mid/mid.hpp from grp/mid, in "
                           "the same layer (layers: docs/architecture.md#layers)"],
                          ARCHITECTURE.replace("grp/mid\ntop\n", "grp/mid top\n"))

    def test_unlisted_folder_fails(self):
        self.assert_fails({"extra/extra.hpp": "#pragma once\n",
                           "grp/other/other.hpp": "#pragma once\n"},
                          ["src/extra/: the folder is in no layer; place it in the list",
                           "src/grp/other/: the folder is in no layer; place it in the list"])

    def test_listed_folder_that_does_not_exist_fails(self):
        files = {k: v for k, v in CLEAN.items() if not k.startswith("top/")}
        rc, out, _ = self.check(self.make_tree(files))
        self.assertEqual(rc, 1)
        self.assertIn("top is listed but src/top/ does not exist", out)

    def test_block_of_another_section_is_not_taken_for_the_layers(self):
        architecture = ARCHITECTURE.replace("```\nbase", "base").replace("top\n```\n", "top\n")
        rc, _, err = self.check(self.make_tree(CLEAN, architecture))
        self.assertEqual(rc, 2)
        self.assertIn('section "Layers" has no fenced block', err)

    def test_missing_layer_list_is_an_error_of_its_own(self):
        rc, _, err = self.check(self.make_tree(CLEAN, "# Architecture\n"))
        self.assertEqual(rc, 2)
        self.assertIn('no section "## Layers"', err)


if __name__ == "__main__":
    unittest.main()
