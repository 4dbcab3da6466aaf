"""The whole sandbox lifetime: timeout, signals sent to seccell, the root
exiting with children left, double-forked daemons, the embedded broker and
tracer going away.  "No survivor" is checked by a unique `sleep` duration
(marker) looked up in /proc."""

import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import unittest

from harness import (FEW_SECONDS, SECCELL, PYTHON, SeccellTestCase, alive_with_marker, errtext,
                     live_descendants, proc_stat, read_line, read_to_eof, wait_for)

# Root of the sandbox forks, the child setsid()s and forks again, the
# grandchild detaches its stdio and execs `sleep MARKER`; the root reports the
# daemon's pid once the exec has happened (CLOEXEC pipe reaches EOF), then
# exits (mode "exit") or waits (mode "wait").
DAEMONIZE = textwrap.dedent(r"""
    import os, sys, time
    mark, mode = sys.argv[1], sys.argv[2]
    r, w = os.pipe()          # both O_CLOEXEC
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        if os.fork() == 0:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.write(w, str(os.getpid()).encode())
            os.execv("/bin/sleep", ["sleep", mark])
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    buf = b""
    while True:
        b = os.read(r, 64)
        if not b:
            break
        buf += b
    gpid = int(buf)
    with open("/proc/%d/cmdline" % gpid, "rb") as f:
        if mark.encode() not in f.read().split(b"\0"):
            sys.exit(50)
    print("daemon", gpid, "sid", os.getsid(gpid), flush=True)
    if mode == "wait":
        time.sleep(1000)
    sys.exit(0)
    """)


class Timeout(SeccellTestCase):

    def test_timeout_fires_124_no_survivor(self):
        m = self.marker(30)
        t0 = time.monotonic()
        r = self.run_cmd(["sleep", m], opts=["--timeout", "1"], timeout=30)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.returncode, 124, r.stderr)
        self.assertLess(elapsed, 1 + FEW_SECONDS, "timeout took %.1fs" % elapsed)
        self.assertNoSurvivors(m)

    def test_timeout_not_reached_keeps_status(self):
        r = self.run_cmd(["sh", "-c", "exit 3"], opts=["--timeout", "30"])
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_timeout_kills_whole_process_group(self):
        m = self.marker(1000)
        r = self.run_cmd(["sh", "-c", "sleep %s & sleep %s & wait" % (m, m)],
                         opts=["--timeout", "1"], timeout=30)
        self.assertEqual(r.returncode, 124, r.stderr)
        self.assertNoSurvivors(m)

    def test_timeout_stdout_reader_sees_eof(self):
        m = self.marker(1000)
        p = self.popen([SECCELL, "run", "--timeout", "1", "--", "sh", "-c",
                        "echo started; sleep %s & sleep %s; wait" % (m, m)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        data, eof = read_to_eof(p.stdout, 1 + FEW_SECONDS + 5)
        self.assertTrue(eof, "stdout reader did not see EOF after the timeout")
        self.assertEqual(data, b"started\n")
        self.assertEqual(self.wait_exit(p, FEW_SECONDS, "seccell after EOF"), 124)
        self.assertNoSurvivors(m)


class SignalsToSeccell(SeccellTestCase):

    def start_two_sleeps(self, mark, env=None):
        p = self.popen([SECCELL, "run", "--", "sh", "-c", "sleep %s & sleep %s & wait" % (mark, mark)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       start_new_session=True, env=env)
        wait_for(lambda: len(alive_with_marker(mark)) == 2, 30, "both sleeps to start")
        return p

    def test_sigkill_to_seccell_leaves_no_sleep(self):
        m = self.marker(1000)
        p = self.start_two_sleeps(m)
        t0 = time.monotonic()
        p.kill()
        p.wait(timeout=FEW_SECONDS)
        self.assertNoSurvivors(m)
        _, eof = read_to_eof(p.stdout, max(0.1, FEW_SECONDS - (time.monotonic() - t0)))
        self.assertTrue(eof, "stdout reader did not see EOF after seccell was killed")

    def test_sigkill_to_seccell_removes_broker_and_tracer(self):
        m = self.marker(1000)
        p = self.start_two_sleeps(m)
        p.kill()
        p.wait(timeout=FEW_SECONDS)
        wait_for(lambda: not (live_descendants(os.getpid(), "seccell-broker")
                              + live_descendants(os.getpid(), "seccell-tracer")),
                 FEW_SECONDS, "the private broker and tracer to exit")

    def private_tmpdir(self):
        tmp = tempfile.mkdtemp(prefix="seccell-it-")
        os.chmod(tmp, 0o755)  # reachable by the tracer's uid, so seccell uses it
        self.addCleanup(shutil.rmtree, tmp, True)
        env = dict(os.environ, TMPDIR=tmp)
        env.pop("XDG_RUNTIME_DIR", None)
        return tmp, env

    def test_sigkill_to_seccell_leaves_no_runtime_dir(self):
        # the private broker outlives its CLI long enough to end the run:
        # it must also remove the runtime directory it serves in
        tmp, env = self.private_tmpdir()
        m = self.marker(1000)
        p = self.start_two_sleeps(m, env=env)
        self.assertEqual(len(os.listdir(tmp)), 1)
        p.kill()
        p.wait(timeout=FEW_SECONDS)
        self.assertNoSurvivors(m)
        wait_for(lambda: not os.listdir(tmp), FEW_SECONDS,
                 "the runtime directory %s/%s to be removed" % (tmp, (os.listdir(tmp) or ["?"])[0]))

    def test_sigkill_to_broker_leaves_no_runtime_dir(self):
        tmp, env = self.private_tmpdir()
        m = self.marker(1000)
        p = self.start_two_sleeps(m, env=env)
        brokers = [b for b in live_descendants(p.pid, "seccell-broker") if proc_stat(b)[2] == p.pid]
        self.assertEqual(len(brokers), 1)
        os.kill(brokers[0], signal.SIGKILL)
        self.wait_exit(p, FEW_SECONDS, "seccell after its broker was killed")
        self.assertNoSurvivors(m)
        self.assertEqual(os.listdir(tmp), [], "runtime directory left behind")

    def test_sigterm_forwarded_143(self):
        m = self.marker(1000)
        p = self.start_two_sleeps(m)
        p.send_signal(signal.SIGTERM)
        rc = self.wait_exit(p, FEW_SECONDS, "seccell after SIGTERM")
        self.assertEqual(rc, 143, errtext(p))
        self.assertNoSurvivors(m)
        _, eof = read_to_eof(p.stdout, FEW_SECONDS)
        self.assertTrue(eof)

    def handler_case(self, sig, code):
        script = textwrap.dedent("""
            import signal, sys, time
            def h(s, f):
                print("handled", s, flush=True)
                sys.exit(%d)
            signal.signal(%d, h)
            print("ready", flush=True)
            while True:
                time.sleep(1)
            """ % (code, sig))
        p = self.popen([SECCELL, "run", "--", PYTHON, "-c", script],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       start_new_session=True)
        self.assertEqual(read_line(p.stdout, 30), b"ready\n")
        p.send_signal(sig)
        rc = self.wait_exit(p, FEW_SECONDS, "seccell after signal %d" % sig)
        out, _ = read_to_eof(p.stdout, FEW_SECONDS)
        self.assertEqual(out, b"handled %d\n" % sig, "the sandbox's handler did not run")
        self.assertEqual(rc, code, errtext(p))

    def test_sigint_forwarded_handler_runs(self):
        self.handler_case(signal.SIGINT, 9)

    def test_sighup_forwarded_handler_runs(self):
        self.handler_case(signal.SIGHUP, 10)

    def test_sigint_forwarded_shell_trap(self):
        p = self.popen([SECCELL, "run", "--", "sh", "-c",
                        'trap "echo trapped; exit 9" INT; echo ready; while :; do read x; done'],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       start_new_session=True)
        self.assertEqual(read_line(p.stdout, 30), b"ready\n")
        p.send_signal(signal.SIGINT)
        rc = self.wait_exit(p, FEW_SECONDS, "seccell after SIGINT")
        out, _ = read_to_eof(p.stdout, FEW_SECONDS)
        self.assertEqual((rc, out), (9, b"trapped\n"))

    def test_sigkill_to_broker_ends_run(self):
        m = self.marker(1000)
        p = self.start_two_sleeps(m)
        brokers = [b for b in live_descendants(p.pid, "seccell-broker") if proc_stat(b)[2] == p.pid]
        self.assertEqual(len(brokers), 1, "expected one private broker below seccell")
        os.kill(brokers[0], signal.SIGKILL)
        rc = self.wait_exit(p, FEW_SECONDS, "seccell after its broker was killed")
        self.assertNotEqual(rc, 0)
        self.assertNoSurvivors(m)
        _, eof = read_to_eof(p.stdout, FEW_SECONDS)
        self.assertTrue(eof)


class RootExit(SeccellTestCase):

    def test_root_exits_with_background_child(self):
        m = self.marker(1000)
        t0 = time.monotonic()
        p = self.popen([SECCELL, "run", "--", "sh", "-c", "sleep %s & exit 0" % m],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        rc = self.wait_exit(p, FEW_SECONDS + 5, "seccell after its root exited")
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, errtext(p))
        self.assertLess(elapsed, FEW_SECONDS, "seccell took %.1fs to return" % elapsed)
        self.assertNoSurvivors(m)
        _, eof = read_to_eof(p.stdout, FEW_SECONDS)
        self.assertTrue(eof, "stdout reader did not see EOF")

    def test_double_fork_daemon_killed_when_root_exits(self):
        m = self.marker(1000)
        r = self.run_cmd([PYTHON, "-c", DAEMONIZE, m, "exit"], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"daemon "), r.stdout)
        self.assertNoSurvivors(m)

    def test_double_fork_daemon_killed_on_timeout(self):
        m = self.marker(1000)
        p = self.popen([SECCELL, "run", "--timeout", "3", "--", PYTHON, "-c", DAEMONIZE, m, "wait"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = read_line(p.stdout, 30)
        self.assertTrue(line.startswith(b"daemon "), "daemon not established before the timeout: %r" % line)
        self.assertTrue(alive_with_marker(m), "the daemon should be running before the timeout")
        rc = self.wait_exit(p, 3 + FEW_SECONDS, "seccell --timeout 3")
        self.assertEqual(rc, 124, errtext(p))
        self.assertNoSurvivors(m)

    def test_double_fork_daemon_killed_on_sigterm(self):
        m = self.marker(1000)
        p = self.popen([SECCELL, "run", "--", PYTHON, "-c", DAEMONIZE, m, "wait"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       start_new_session=True)
        self.assertTrue(read_line(p.stdout, 30).startswith(b"daemon "))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p, FEW_SECONDS, "seccell after SIGTERM"), 143)
        self.assertNoSurvivors(m)



class EmbeddedMode(SeccellTestCase):

    def test_private_broker_and_tracer_removed_after_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)
            env = dict(os.environ, TMPDIR=tmp)
            env.pop("XDG_RUNTIME_DIR", None)
            r = self.run_cmd(["/bin/true"], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: not (live_descendants(os.getpid(), "seccell-broker")
                                  + live_descendants(os.getpid(), "seccell-tracer")),
                     FEW_SECONDS, "the private broker and tracer to exit")
            self.assertEqual(os.listdir(tmp), [], "runtime directory left behind")

    def test_private_runtime_dir_0700(self):
        # A root login's XDG_RUNTIME_DIR (/run/user/0) is mode 0700; a
        # private TMPDIR usually is too.  Embedded mode must work there.
        for var in ("XDG_RUNTIME_DIR", "TMPDIR"):
            with self.subTest(var=var), tempfile.TemporaryDirectory() as tmp:
                self.assertEqual(os.stat(tmp).st_mode & 0o777, 0o700)
                env = dict(os.environ)
                env.pop("XDG_RUNTIME_DIR", None)
                env[var] = tmp
                r = self.run_cmd(["sh", "-c", "echo ok"], env=env)
                self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"ok\n", b""))
                wait_for(lambda: not (live_descendants(os.getpid(), "seccell-broker")
                                      + live_descendants(os.getpid(), "seccell-tracer")),
                         FEW_SECONDS, "the private broker and tracer to exit")
                self.assertEqual(os.listdir(tmp), [], "runtime directory left behind")


if __name__ == "__main__":
    unittest.main()
