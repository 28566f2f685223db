"""The CLI around the daemon: `check` on good and broken configs (file:line:column, exit
non-zero), `status` and `queue` with no daemon (EXIT.kNotRunning, "not running"), status JSON
shape, the control socket's mode, SIGTERM stops the daemon cleanly, `--version` prints the
CMake project version."""

import json
import os
import re
import stat
import subprocess
import unittest

import bridgehead
from bridgehead import EXIT


class CliTest(bridgehead.TestCase):
    def run_cli(self, *args):
        r = subprocess.run([self.bridgehead_bin] + list(args), capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def config(self):
        """A sound config (written by the fixture) without starting anything."""
        d = bridgehead.Daemon(self, self.workdir)
        d.write_config()
        return d

    def test_check_good_config(self):
        d = self.config()
        rc, out, err = self.run_cli("check", "-c", d.config_path)
        self.assertEqual(rc, EXIT.kOk, out + err)

    def test_check_broken_config_points_at_line_and_column(self):
        d = self.config()
        with open(d.config_path) as f:
            lines = f.read().split("\n")
        smtp_line = lines.index("[smtp]")
        lines.insert(smtp_line + 1, 'max_recipients = "many"')
        lines.insert(smtp_line + 2, "max_recipents = 5")
        with open(d.config_path, "w") as f:
            f.write("\n".join(lines))
        rc, out, err = self.run_cli("check", "-c", d.config_path)
        text = out + err
        self.assertNotEqual(rc, EXIT.kOk, text)
        self.assertRegex(text, r"%s:%d:\d+: .*max_recipients" % (re.escape(d.config_path), smtp_line + 2))
        self.assertRegex(text, r"%s:%d:1: .*max_recipents" % (re.escape(d.config_path), smtp_line + 3))
        # TOML syntax error
        with open(d.config_path, "w") as f:
            f.write("[connector]\nhostname = \"x\n")
        rc, out, err = self.run_cli("check", "-c", d.config_path)
        self.assertNotEqual(rc, EXIT.kOk)
        self.assertRegex(out + err, r"%s:2:\d+: " % re.escape(d.config_path))

    def test_check_semantic_errors(self):
        d = self.config()
        with open(d.config_path) as f:
            text = f.read()
        # the same domain in both systems, and a timeout below its minimum
        text = text.replace('domains = ["notes.example"]', 'domains = ["exchange.example"]')
        text = text.replace("command_timeout_seconds = 120", "command_timeout_seconds = 5")
        with open(d.config_path, "w") as f:
            f.write(text)
        rc, out, err = self.run_cli("check", "-c", d.config_path)
        self.assertNotEqual(rc, EXIT.kOk)
        self.assertIn("exchange.example", out + err)
        self.assertRegex(out + err, r":\d+:\d+: .*command_timeout_seconds")

    def test_version_is_the_cmake_project_version(self):
        expected = os.environ.get("BRIDGEHEAD_PROJECT_VERSION")
        if not expected:
            self.fail("BRIDGEHEAD_PROJECT_VERSION is not set; run the test through ctest, which sets it to "
                      "project(VERSION) of CMakeLists.txt")
        rc, out, err = self.run_cli("--version")
        self.assertEqual(rc, EXIT.kOk, out + err)
        self.assertEqual(out, "bridgehead %s\n" % expected)

    def test_status_and_queue_without_daemon(self):
        d = self.config()
        rc, out, err = self.run_cli("status", "-c", d.config_path, "--json")
        self.assertEqual(rc, EXIT.kNotRunning, out + err)
        st = json.loads(out)
        self.assertIs(st["running"], False)
        self.assertTrue(st.get("remedy"), st)
        rc, out, err = self.run_cli("status", "-c", d.config_path)
        self.assertEqual(rc, EXIT.kNotRunning)
        self.assertRegex(out + err, r"(?i)not running")
        rc, out, err = self.run_cli("queue", "-c", d.config_path, "--json")
        self.assertNotEqual(rc, EXIT.kOk)

    def test_running_daemon_status_socket_and_stop(self):
        d = self.start_daemon()
        sock = os.path.join(d.state_dir, "control.sock")
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        self.assertTrue(stat.S_ISSOCK(os.stat(sock).st_mode))
        self.assertEqual(mode, 0o600, oct(mode))
        st = d.status()
        self.assertIs(st["running"], True)
        names = [p["name"] for p in st["processes"]]
        for n in ("spool", "ingress:exchange", "ingress:notes"):
            self.assertIn(n, names)
        for p in st["processes"]:
            for key in ("name", "state", "activity", "since", "counters", "gauges", "details"):
                self.assertIn(key, p, p)
        ing = d.process("ingress:exchange")
        self.assertIn("127.0.0.1:%d" % d.port(), ing["activity"])
        rc, out, err = self.run_cli("status", "-c", d.config_path)
        self.assertEqual(rc, EXIT.kOk)
        self.assertIn("ingress:exchange", out)
        d.stop()
        rc, out, err = self.run_cli("status", "-c", d.config_path, "--json")
        self.assertEqual(rc, EXIT.kNotRunning, out + err)

    def test_control_socket_mode_from_config(self):
        d = self.start_daemon(extra='\n[admin]\ncontrol_socket_mode = "0660"\n')
        mode = stat.S_IMODE(os.stat(os.path.join(d.state_dir, "control.sock")).st_mode)
        self.assertEqual(mode, 0o660, oct(mode))


if __name__ == "__main__":
    unittest.main()
