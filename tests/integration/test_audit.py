"""--audit FILE: JSON lines, one per event; seq starts at 1 and increases by
exactly one; every event has a timestamp; start, exec, exit and end events
carry what the issue names."""

import os
import shutil
import tempfile
import unittest

from harness import SeccellTestCase, load_json_lines


class Audit(SeccellTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="seccell-audit-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "audit.jsonl")

    def audited(self, cmd, opts=(), **kw):
        r = self.run_cmd(cmd, opts=["--audit", self.path] + list(opts), **kw)
        events = load_json_lines(self.path)  # every line must parse
        return r, events

    def assertWellFormedRun(self, events, status):
        """One run's events: seq 1..n, ts everywhere, one sandbox id,
        sandbox_start first, exit then sandbox_end last."""
        self.assertTrue(events, "empty audit record")
        self.assertEqual([e.get("seq") for e in events], list(range(1, len(events) + 1)),
                         "seq must start at 1 and increase by exactly one")
        for e in events:
            self.assertIsInstance(e.get("seq"), int)
            self.assertIsInstance(e.get("ts"), str, e)
            self.assertTrue(e["ts"], e)
            self.assertIsInstance(e.get("event"), str, e)
        ids = {e.get("sandbox") for e in events}
        self.assertEqual(len(ids), 1, "events of one run name different sandboxes: %r" % ids)
        self.assertIsNotNone(ids.pop())
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds[0], "sandbox_start")
        self.assertEqual(kinds[-1], "sandbox_end")
        self.assertEqual(kinds.count("sandbox_start"), 1)
        self.assertEqual(kinds.count("sandbox_end"), 1)
        exits = [e for e in events if e["event"] == "exit"]
        self.assertGreaterEqual(len(exits), 1, "no exit event")
        self.assertLess(kinds.index("exit"), len(kinds) - 1)
        end = events[-1]
        self.assertIsInstance(end.get("duration_ns"), int)
        self.assertGreater(end["duration_ns"], 0)
        self.assertEqual(end.get("status"), status)
        root_exit = exits[-1]
        self.assertEqual(root_exit.get("status"), status)
        return events

    def test_true(self):
        r, ev = self.audited(["/bin/true"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertWellFormedRun(ev, {"code": 0})
        start = ev[0]
        self.assertEqual(start["argv"], ["/bin/true"])
        self.assertEqual(start["uid"], os.getuid())
        self.assertIsInstance(start["policy"], dict)
        execs = [e for e in ev if e["event"] == "exec"]
        self.assertEqual(len(execs), 1, execs)
        self.assertEqual(execs[0]["path"], "/bin/true")
        self.assertEqual(execs[0]["argv"], ["/bin/true"])

    def test_sandbox_start_argv_bounded_like_exec_argv(self):
        # found in review: a 534 KB sandbox_start line (exec argv was capped)
        big = "x" * 100000
        r, ev = self.audited(["/bin/true", big, "a"])
        self.assertEqual(r.returncode, 0, r.stderr)
        start = ev[0]
        self.assertEqual(start["argv"], ["/bin/true", "x" * 4096, "a"])
        self.assertIs(start["truncated"], True)
        r, ev = self.audited(["/bin/true", "a"])
        starts = [e for e in ev if e["event"] == "sandbox_start"]
        self.assertIs(starts[-1]["truncated"], False)

    def test_audit_write_errors_reported(self):
        # found in review: --audit /dev/full ran silently with no record
        r = self.run_cmd(["/bin/echo", "ran"], opts=["--audit", "/dev/full"])
        self.assertEqual((r.returncode, r.stdout), (0, b"ran\n"), r.stderr)
        self.assertIn(b"4 audit events could not be written to /dev/full: No space left on device", r.stderr)

    def test_policy_recorded(self):
        # (--max-memory in the policy: test_cli.CliAccepted)
        r, ev = self.audited(["/bin/true"], opts=["--max-procs", "5", "--timeout", "30"])
        self.assertEqual(r.returncode, 0, r.stderr)
        pol = self.assertWellFormedRun(ev, {"code": 0})[0]["policy"]
        self.assertEqual(pol["max_procs"], 5)

    def test_sh_exec_true_two_execs(self):
        r, ev = self.audited(["sh", "-c", "exec /bin/true"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertWellFormedRun(ev, {"code": 0})
        execs = [e for e in ev if e["event"] == "exec"]
        self.assertEqual(len(execs), 2, execs)
        sh = shutil.which("sh")
        self.assertTrue(os.path.isabs(execs[0]["path"]), execs[0])
        self.assertEqual(os.path.realpath(execs[0]["path"]), os.path.realpath(sh))
        self.assertEqual(execs[0]["argv"], ["sh", "-c", "exec /bin/true"])
        self.assertEqual(execs[1]["path"], "/bin/true")
        self.assertEqual(execs[1]["argv"], ["/bin/true"])
        self.assertEqual(execs[0].get("pid"), execs[1].get("pid"))

    def test_exec_argv_with_odd_bytes(self):
        args = ["/bin/echo", "", "two words", "quote\"and\\back", "caf\u00e9", "new\nline"]
        r, ev = self.audited(args)
        self.assertEqual(r.returncode, 0, r.stderr)
        execs = [e for e in ev if e["event"] == "exec"]
        self.assertEqual(len(execs), 1)
        self.assertEqual(execs[0]["argv"], args)

    def test_exit_code_recorded(self):
        r, ev = self.audited(["sh", "-c", "exit 7"])
        self.assertEqual(r.returncode, 7)
        self.assertWellFormedRun(ev, {"code": 7})

    def test_signal_recorded(self):
        r, ev = self.audited(["sh", "-c", "kill -TERM $$"])
        self.assertEqual(r.returncode, 143)
        end = ev[-1]
        self.assertEqual(end["event"], "sandbox_end")
        self.assertEqual(end["status"].get("signal"), 15, end)
        self.assertNotIn("code", end["status"])

    def test_timeout_record_complete(self):
        m = self.marker(30)
        r, ev = self.audited(["sleep", m], opts=["--timeout", "1"], timeout=30)
        self.assertEqual(r.returncode, 124, r.stderr)
        self.assertEqual([e["seq"] for e in ev], list(range(1, len(ev) + 1)))
        self.assertEqual(ev[0]["event"], "sandbox_start")
        self.assertEqual(ev[-1]["event"], "sandbox_end")
        self.assertIn(ev[-1]["status"].get("signal"), (9, 15), ev[-1])
        self.assertNoSurvivors(m)

    def test_append_two_runs(self):
        with open(self.path, "w") as f:
            f.write('{"pre": "existing line"}\n')
        r1, _ = self.audited(["sh", "-c", "exit 1"])
        r2, ev = self.audited(["sh", "-c", "exit 2"])
        self.assertEqual((r1.returncode, r2.returncode), (1, 2))
        self.assertEqual(ev[0], {"pre": "existing line"}, "the file was not appended to")
        runs, cur = [], None
        for e in ev[1:]:
            if e["event"] == "sandbox_start":
                cur = []
                runs.append(cur)
            self.assertIsNotNone(cur, "event before any sandbox_start: %r" % e)
            cur.append(e)
        self.assertEqual(len(runs), 2)
        self.assertWellFormedRun(runs[0], {"code": 1})
        self.assertWellFormedRun(runs[1], {"code": 2})
        self.assertEqual(runs[0][0]["argv"], ["sh", "-c", "exit 1"])
        self.assertEqual(runs[1][0]["argv"], ["sh", "-c", "exit 2"])

    def test_audit_does_not_disturb_output(self):
        r, ev = self.audited(["sh", "-c", "echo out; echo err >&2"])
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"out\n", b"err\n"))
        self.assertWellFormedRun(ev, {"code": 0})


if __name__ == "__main__":
    unittest.main()
