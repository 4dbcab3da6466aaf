"""seccell's own command line: bad input → 125 with one clear line; good
input runs; options stop at the command."""

import os
import tempfile
import unittest

from harness import SeccellTestCase, load_json_lines


class CliErrors(SeccellTestCase):

    def assertRefused(self, args, *needles):
        r = self.seccell(args + ["--", "/bin/echo", "should-not-run"] if "--" not in args else args)
        self.assertEqual(r.returncode, 125, "seccell %r: %r" % (args, r.stderr))
        self.assertEqual(r.stdout, b"", "the command ran although seccell refused %r" % (args,))
        self.assertClearError(r.stderr, *needles)

    def assertClearError(self, err, *needles):
        """One line says what is wrong, prefixed with the program name; at most
        a `Try '... --help'` hint follows."""
        lines = err.decode("utf-8", "replace").splitlines()
        self.assertTrue(lines, "nothing on stderr")
        problem = [l for l in lines if not l.startswith("Try ")]
        self.assertEqual(len(problem), 1, "expected one error line, got %r" % lines)
        self.assertLessEqual(len(lines), 2, lines)
        self.assertTrue(problem[0].startswith("seccell"),
                        "error line does not say it comes from seccell: %r" % problem[0])
        for n in needles:
            self.assertIn(n, problem[0])

    def test_unknown_option(self):
        self.assertRefused(["run", "--no-such-option"], "--no-such-option")

    def test_unknown_short_option(self):
        self.assertRefused(["run", "-Z"], "Z")

    def test_unknown_subcommand(self):
        r = self.seccell(["frobnicate", "--", "/bin/true"])
        self.assertEqual(r.returncode, 125)
        self.assertClearError(r.stderr, "frobnicate")

    def test_max_memory_zero(self):
        self.assertRefused(["run", "--max-memory", "0"], "0")

    def test_max_memory_below_one_mib(self):
        # Found in review: "64" (bytes) was taken, and every command died.
        for size in ("64", "4096", "64K", "1023K"):
            with self.subTest(size=size):
                self.assertRefused(["run", "--max-memory", size], size, "1 MiB")
        r = self.seccell(["run", "--max-memory", "1M", "--", "/bin/true"])
        self.assertNotIn(b"invalid --max-memory", r.stderr)

    def test_max_memory_negative(self):
        self.assertRefused(["run", "--max-memory=-1"], "-1")

    def test_max_memory_16E_overflows(self):
        self.assertRefused(["run", "--max-memory", "16E"], "16E")

    def test_max_memory_2_pow_64(self):
        self.assertRefused(["run", "--max-memory", "18446744073709551616"], "18446744073709551616")

    def test_max_memory_unknown_suffix(self):
        self.assertRefused(["run", "--max-memory", "12Q"], "12Q")

    def test_max_memory_empty(self):
        self.assertRefused(["run", "--max-memory", ""], "--max-memory")

    def test_max_procs_zero(self):
        self.assertRefused(["run", "--max-procs", "0"], "0")

    def test_max_procs_not_a_number(self):
        self.assertRefused(["run", "--max-procs", "abc"], "abc")

    def test_max_procs_negative(self):
        self.assertRefused(["run", "--max-procs=-3"], "-3")

    def test_timeout_not_a_number(self):
        self.assertRefused(["run", "--timeout", "abc"], "abc")

    def test_timeout_negative(self):
        self.assertRefused(["run", "--timeout=-1"], "-1")

    def test_missing_option_value(self):
        r = self.seccell(["run", "--timeout"])
        self.assertEqual(r.returncode, 125)
        self.assertClearError(r.stderr, "timeout")

    def test_no_command(self):
        r = self.seccell(["run"])
        self.assertEqual(r.returncode, 125)
        self.assertClearError(r.stderr)

    def test_no_command_after_dashdash(self):
        r = self.seccell(["run", "--max-procs", "4", "--"])
        self.assertEqual(r.returncode, 125)
        self.assertClearError(r.stderr)

    def test_unwritable_audit_file(self):
        path = "/nonexistent-%d/audit.jsonl" % os.getpid()
        self.assertRefused(["run", "--audit", path], path)


class CliAccepted(SeccellTestCase):

    def policy_of(self, opts):
        with tempfile.TemporaryDirectory() as d:
            audit = os.path.join(d, "a.jsonl")
            r = self.run_cmd(["/bin/true"], opts=list(opts) + ["--audit", audit])
            self.assertEqual(r.returncode, 0, r.stderr)
            starts = [e for e in load_json_lines(audit) if e.get("event") == "sandbox_start"]
        self.assertEqual(len(starts), 1)
        return starts[0]["policy"]

    def test_max_memory_1_5G_is_exact(self):
        r = self.run_cmd(["/bin/true"], opts=["--max-memory", "1.5G"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")
        self.assertEqual(self.policy_of(["--max-memory", "1.5G"])["max_memory"], 1610612736)

    def test_max_memory_suffixes(self):
        # values large enough for the command to run under the limit
        for arg, val in [("512M", 512 << 20), ("2GiB", 2 << 30), ("268435456", 256 << 20),
                         ("65536K", 64 << 20), ("1T", 1 << 40)]:
            with self.subTest(arg=arg):
                self.assertEqual(self.policy_of(["--max-memory", arg])["max_memory"], val)

    def test_max_procs_and_timeout(self):
        pol = self.policy_of(["--max-procs", "16", "--timeout", "30"])
        self.assertEqual(pol["max_procs"], 16)

    def test_help(self):
        for args in (["--help"], ["run", "--help"]):
            with self.subTest(args=args):
                r = self.seccell(args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(b"Usage", r.stdout)
                self.assertIn(b"--max-procs", r.stdout)
                self.assertIn(b"--timeout", r.stdout)

    def test_version(self):
        r = self.seccell(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"seccell "), r.stdout)
        self.assertEqual(len(r.stdout.splitlines()), 1)

    def test_options_after_command_belong_to_it(self):
        r = self.seccell(["run", "/bin/echo", "--timeout", "abc", "--bogus"])
        self.assertEqual((r.returncode, r.stdout), (0, b"--timeout abc --bogus\n"), r.stderr)

    def test_dashdash_then_options_belong_to_command(self):
        r = self.run_cmd(["/bin/echo", "--max-procs", "0"])
        self.assertEqual((r.returncode, r.stdout), (0, b"--max-procs 0\n"), r.stderr)


if __name__ == "__main__":
    unittest.main()
