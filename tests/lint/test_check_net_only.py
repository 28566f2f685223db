"""scripts/check-net-only on small fake trees: co_spawn under src/net/ passes, as does a
mention in a comment or a string elsewhere; a call outside src/net/ fails, named by file
and line, and so does one in a folder that is only called net deeper down."""

import unittest

from checker_case import CheckerCase

CLEAN = {
    "net/spawn.hpp": "#pragma once\n"
                     "inline void spawn() { asio::co_spawn(ex, coro(), on_done); }\n",
    "net/sub/helper.cpp": "void f() { boost::asio::co_spawn(ex, coro(), detached); }\n",
    "top/top.cpp": '#include "net/spawn.hpp"\n'
                   "// not co_spawn: net::spawn gives the end a handler\n"
                   "/* a block comment on co_spawn\n"
                   "   that goes on: co_spawn */ void g() { net::spawn(ex, coro(), on_done); }\n"
                   'const char* kWhy = "co_spawn";  const char kQuote = \'"\';\n'
                   "int my_co_spawn_count = 0;\n",
}

REMEDY = "start the coroutine with net::spawn or net::spawn_logged (net/spawn.hpp)"


class CheckNetOnlyTest(CheckerCase):
    CHECKER = "check-net-only"

    def test_clean_tree_passes(self):
        rc, out, err = self.check(self.fake_tree(CLEAN))
        self.assertEqual((rc, out), (0, ""), err)

    def test_co_spawn_outside_net_fails_naming_file_and_line(self):
        files = {**CLEAN, "top/top_test.cpp": '#include "net/spawn.hpp"\n\n'
                                              "  asio::co_spawn(io, body(), [](auto) {});\n"}
        rc, out, err = self.check(self.fake_tree(files))
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out.splitlines(),
                         [f"src/top/top_test.cpp:3: co_spawn outside src/net/: {REMEDY}"])

    def test_a_folder_called_net_elsewhere_is_not_net(self):
        files = {**CLEAN, "grp/net/x.hpp": "using boost::asio::co_spawn;\n"}
        rc, out, _ = self.check(self.fake_tree(files))
        self.assertEqual(rc, 1)
        self.assertEqual(out.splitlines(), [f"src/grp/net/x.hpp:1: co_spawn outside src/net/: {REMEDY}"])

    def test_code_after_a_comment_ends_on_the_same_line_counts(self):
        files = {**CLEAN, "top/top.cpp": "/* start */ co_spawn(ex, coro(), on_done);\n"}
        rc, out, _ = self.check(self.fake_tree(files))
        self.assertEqual(rc, 1)
        self.assertEqual(out.splitlines(), [f"src/top/top.cpp:1: co_spawn outside src/net/: {REMEDY}"])

    def test_a_tree_without_src_is_an_error_of_its_own(self):
        rc, _, err = self.check(self.fake_tree({}))
        self.assertEqual(rc, 2)
        self.assertIn("has no src/", err)


if __name__ == "__main__":
    unittest.main()
