"""Integration tests of `seccell run --max-procs N`.

Real programs (mostly seccell-procs-helper, see procs_helper.c) run under
`seccell run --max-procs N --audit FILE --`; every test asserts exact
numbers: the exit status, what the helper printed, and the audit record
(one "fork" per registered child, one "fork_denied" per EAGAIN, peak_procs,
the sandbox_end totals).  The cases are those of issue 3 and "Process
accounting" in shared/cases/README.md.

Environment (set by ctest): SECCELL = build/seccell (seccell-broker and
seccell-tracer beside it), PROCS_HELPER = the helper binary.

Determinism: nothing sleeps and hopes.  Conditions are polled with a
deadline; every subprocess has a hard timeout; the test process is a child
subreaper, and every process a test started (or that a run left behind) is
killed and reaped in cleanup.  The fork bomb runs only after a harmless
probe showed the limit in force, and only inside a pids cgroup fence.
"""

import calendar
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import sys
import time
import unittest

# the process helpers shared by every integration suite
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import _reap_all_children as reap_children  # noqa: E402
from harness import kill_all_descendants as kill_descendants  # noqa: E402
from harness import read_line, read_to_eof, wait_for  # noqa: E402

SECCELL = os.environ.get("SECCELL", "")
HELPER = os.environ.get("PROCS_HELPER", "")

# The real interpreter: `python3` on PATH may be a pyenv shim script that
# forks before it reaches python.
SYS_PYTHON = "/usr/bin/python3"
NOBODY = 65534
HARD_TIMEOUT = 90.0
PR_SET_CHILD_SUBREAPER = 36

SUMMARY_RE = re.compile(
    r"^seccell: summary: peak (\d+) of (\d+) processes, (\d+) forks? allowed, (\d+) denied")


# ------------------------------------------------------------------ /proc

def ts_ns(ts):
    """RFC 3339 'YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ' -> ns since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z", ts)
    if not m:
        raise AssertionError("bad audit timestamp %r" % ts)
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs * 10**9 + int(m.group(2))


def private_env(env=None):
    """The environment of a run: a private broker for each run, unless a
    daemon serves /run/seccell (then runs go there; describe() says so)."""
    env = dict(os.environ if env is None else env)
    env.pop("SECCELL_BROKER_DIR", None)
    return env


def daemon_running():
    return os.path.exists("/run/seccell/broker.ipc")


# ---------------------------------------------------------- pids cgroup fence

class PidsFence:
    """A pids cgroup (v1 hierarchy, or v2 with the pids controller) with
    pids.max set: a second fence around the fork bomb."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls, limit):
        name = "seccell-test-%d" % os.getpid()
        candidates = []
        if os.path.isdir("/sys/fs/cgroup/pids"):
            candidates.append("/sys/fs/cgroup/pids")
        try:
            with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
                if "pids" in f.read().split():
                    candidates.append("/sys/fs/cgroup")
        except OSError:
            pass
        for base in candidates:
            path = os.path.join(base, name)
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            except OSError:
                continue
            fence = cls(path)
            try:
                fence._write("pids.max", str(limit))
                if fence._read("pids.max").strip() != str(limit):
                    raise OSError("pids.max not applied")
            except OSError:
                fence.destroy()
                continue
            return fence
        return None

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def _read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def join(self):
        """preexec_fn: move the calling (new) process into the fence before
        it execs; an exception here aborts the start."""
        fd = os.open(os.path.join(self.path, "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, b"%d" % os.getpid())
        finally:
            os.close(fd)

    def procs(self):
        try:
            return [int(x) for x in self._read("cgroup.procs").split()]
        except OSError:
            return []

    def current(self):
        return int(self._read("pids.current"))

    def kill_all(self, deadline_s=30.0):
        end = time.monotonic() + deadline_s
        while True:
            reap_children()
            if self.current() == 0:
                return
            if time.monotonic() > end:
                raise AssertionError("fence %s still holds %r" % (self.path, self.procs()))
            for pid in self.procs():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def destroy(self):
        if not os.path.isdir(self.path):
            return
        try:
            self.kill_all()
        finally:
            os.rmdir(self.path)


# ------------------------------------------------------------------ results

class Run:
    def __init__(self, argv, rc, out, err, events, elapsed):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.events, self.elapsed = events, elapsed

    def of(self, name):
        return [e for e in self.events if e.get("event") == name]

    def count(self, name):
        return len(self.of(name))

    @property
    def end(self):
        ends = self.of("sandbox_end")
        if len(ends) != 1:
            raise AssertionError("%d sandbox_end events in the audit of %r" % (len(ends), self.argv))
        return ends[0]

    @property
    def start(self):
        return self.of("sandbox_start")[0]

    def lines(self):
        return self.out.splitlines()

    def describe(self):
        return "%sargv=%r rc=%r\nstdout:\n%s\nstderr:\n%s\naudit totals: %r" % (
            "(a daemon serves /run/seccell: runs went to it)\n" if daemon_running() else "",
            self.argv, self.rc,
            "\n".join(l for l in self.out.splitlines() if not l.startswith("pids "))[-3000:],
            self.err[-3000:],
            {k: v for k, v in (self.of("sandbox_end") or [{}])[0].items()
             if k not in ("seq", "host_seq", "ts", "sandbox")})


# ------------------------------------------------------------------ the tests

class ProcsTestBase(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not SECCELL or not HELPER:
            raise unittest.SkipTest("SECCELL and PROCS_HELPER must be set (ctest sets them)")
        for path in (SECCELL, HELPER):
            if not os.access(path, os.X_OK):
                raise AssertionError("%s is not executable" % path)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

    def setUp(self):
        # under /tmp: traversable by uid 65534 for the unprivileged runs
        self.tmp = tempfile.mkdtemp(prefix="seccell-procs-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(kill_descendants)
        self._n = 0

    # -- running

    def sandbox(self, procs, argv, opts=(), timeout=HARD_TIMEOUT, user=None, seccell=None, env=None):
        """seccell run --max-procs procs --audit FILE [opts] -- argv, to
        completion within `timeout`; a Run with the parsed audit."""
        self._n += 1
        audit = os.path.join(self.tmp, "audit-%d.jsonl" % self._n)
        cmd = [seccell or SECCELL, "run"]
        if procs is not None:
            cmd += ["--max-procs", str(procs)]
        cmd += ["--audit", audit] + list(opts) + ["--"] + [str(a) for a in argv]
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, env=private_env(env),
                             cwd=self.tmp)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            kill_descendants()
            self.fail("%r did not finish within %.0fs\nstdout:\n%s\nstderr:\n%s" % (
                cmd, timeout, out.decode(errors="replace")[-3000:], err.decode(errors="replace")[-3000:]))
        elapsed = time.monotonic() - t0
        events = []
        if os.path.exists(audit):
            with open(audit) as f:
                events = [json.loads(line) for line in f if line.strip()]
        return Run(cmd, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                   events, elapsed)

    def helper(self, procs, *args, **kw):
        return self.sandbox(procs, [kw.pop("helper", HELPER)] + list(args), **kw)

    # -- assertions

    def assertRun(self, r, rc=0, out=None):
        self.assertEqual(r.rc, rc, "exit status\n" + r.describe())
        if out is not None:
            self.assertEqual(r.out, out, "stdout\n" + r.describe())

    def assertAudit(self, r, procs, forks=None, denied=None, peak=None):
        """The audit invariants of every run under --max-procs procs, and
        the exact totals when given."""
        d = r.describe()
        self.assertEqual(r.count("sandbox_start"), 1, d)
        end = r.end
        seqs = [e["seq"] for e in r.events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "audit sequence has gaps\n" + d)
        self.assertEqual(r.start["policy"]["max_procs"], procs, d)
        self.assertEqual(r.count("fork"), end["forks_allowed"], "fork events vs forks_allowed\n" + d)
        self.assertEqual(r.count("fork_denied"), end["forks_denied"], "fork_denied events vs forks_denied\n" + d)
        self.assertEqual(r.count("reap"), end["reaps"], "reap events vs reaps\n" + d)
        # every registered process, the root included, is reaped by the end
        self.assertEqual(end["reaps"], end["forks_allowed"] + 1, "reaps != forks_allowed + 1\n" + d)
        for e in r.of("fork"):
            self.assertLessEqual(e["live"], procs, "fork event over the limit: %r\n%s" % (e, d))
        for e in r.of("fork_denied"):
            self.assertEqual((e["errno"], e["live"], e["limit"]), ("EAGAIN", procs, procs),
                             "fork_denied event %r\n%s" % (e, d))
        self.assertLessEqual(end["peak_procs"], procs, "peak over the limit\n" + d)
        if forks is not None:
            self.assertEqual(end["forks_allowed"], forks, "forks_allowed\n" + d)
        if denied is not None:
            self.assertEqual(end["forks_denied"], denied, "forks_denied\n" + d)
        if peak is not None:
            self.assertEqual(end["peak_procs"], peak, "peak_procs\n" + d)

    def assertSummary(self, r, peak, procs, forks, denied):
        lines = [l for l in r.err.splitlines() if l.startswith("seccell: summary:")]
        self.assertEqual(len(lines), 1, "one summary line\n" + r.describe())
        m = SUMMARY_RE.match(lines[0])
        self.assertIsNotNone(m, "summary format: %r" % lines[0])
        self.assertEqual(tuple(int(x) for x in m.groups()), (peak, procs, forks, denied), lines[0])

    # -- unprivileged

    def nobody_bin(self):
        """seccell, its daemons and the helper, readable and executable by
        uid 65534, and an environment whose TMPDIR it can write; returns
        (seccell, helper, env)."""
        d = tempfile.mkdtemp(prefix="seccell-procs-nobody-", dir="/tmp")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        bindir = os.path.dirname(os.path.abspath(SECCELL))
        for name in ("seccell", "seccell-broker", "seccell-tracer"):
            shutil.copy(os.path.join(bindir, name), os.path.join(d, name))
        shutil.copy(HELPER, os.path.join(d, "seccell-procs-helper"))
        for name in os.listdir(d):
            os.chmod(os.path.join(d, name), 0o755)
        os.chmod(d, 0o755)
        work = os.path.join(d, "tmp")
        os.mkdir(work)
        os.chown(work, NOBODY, NOBODY)
        os.chown(self.tmp, NOBODY, NOBODY)
        env = dict(os.environ, TMPDIR=work, HOME=work)
        return os.path.join(d, "seccell"), os.path.join(d, "seccell-procs-helper"), env


class TestCounting(ProcsTestBase):
    """Exact counts: every creating syscall counts, threads never do."""

    def test_ten_children_at_three(self):
        # issue 3: 10 long-lived children at N=3 -> 2 created, 8 EAGAIN
        r = self.helper(3, "nfork", 10, "fork", opts=["--summary"])
        self.assertRun(r, 0, "created 2 eagain 8 other 0\n")
        self.assertAudit(r, 3, forks=2, denied=8, peak=3)
        pid = r.start["root_pid"]
        self.assertEqual([(e["pid"], e["tid"]) for e in r.of("fork")], [(pid, pid)] * 2)
        self.assertEqual([(e["pid"], e["tid"]) for e in r.of("fork_denied")], [(pid, pid)] * 8)
        self.assertEqual([e["live"] for e in r.of("fork")], [2, 3])
        self.assertSummary(r, 3, 3, 2, 8)

    def test_every_creating_syscall_counts(self):
        # case 2: P=5, exactly 4 succeed and the rest get EAGAIN, whatever
        # the syscall: fork(), raw SYS_fork, raw clone(SIGCHLD), vfork+exec,
        # posix_spawn
        for mode in ("fork", "sysfork", "clone", "vfork", "spawn"):
            with self.subTest(mode=mode):
                r = self.helper(5, "nfork", 7, mode)
                self.assertRun(r, 0, "created 4 eagain 3 other 0\n")
                self.assertAudit(r, 5, forks=4, denied=3, peak=5)
                if mode in ("vfork", "spawn"):
                    execs = [e for e in r.of("exec") if e["argv"] == ["sleep", "30"]]
                    self.assertEqual(len(execs), 4, r.describe())

    def test_sequential_rounds_at_two(self):
        # issue 3: 200 sequential fork+exit at N=2 with every way of reaping
        for mode in ("wait", "wnohang", "sigign", "spawn"):
            with self.subTest(mode=mode):
                r = self.helper(2, "seq", 200, mode)
                self.assertRun(r, 0, "ok 200\n")
                self.assertAudit(r, 2, forks=200, denied=0, peak=2)

    def test_wnohang_reaping_case1(self):
        # case 1: P=50, 80 rounds reaped by WNOHANG polling only
        r = self.helper(50, "seq", 80, "wnohang")
        self.assertRun(r, 0, "ok 80\n")
        self.assertAudit(r, 50, forks=80, denied=0)

    def test_threads_never_count(self):
        # issue 3: 50 concurrent threads at N=1, pthread_create and raw
        # clone(CLONE_THREAD|...)
        r = self.helper(1, "threads", 50, "pthread")
        self.assertRun(r, 0, "ok 50\n")
        self.assertAudit(r, 1, forks=0, denied=0, peak=1)
        r = self.helper(1, "threads", 50, "raw")
        self.assertRun(r, 0, "ok 50 tasks 51\n")
        self.assertAudit(r, 1, forks=0, denied=0, peak=1)

    def test_thread_after_a_refused_clone(self):
        # Found in review: a clone the kernel refuses leaves its thread
        # seized for a few milliseconds (fork_trace_settle), and a thread
        # it made meanwhile was reported by TRACECLONE and taken for a new
        # process - which could not be registered, so the tracer SIGKILLed
        # it, and with it the whole process
        r = self.helper(2, "refusedthread", 20)
        self.assertRun(r, 0, "ok 20\n")
        self.assertAudit(r, 2, forks=0, denied=0, peak=1)

    def test_exec_beside_a_refused_clone(self):
        # Found in review: the leader, still seized after a clone the
        # kernel refused, is killed by a sibling thread's exec, which takes
        # its tid - and ptrace(2) reports no death for it. The stale trace
        # was taken for the new image's: its forks reused it, unseized, and
        # their children were never registered (10 made at 3).
        for _ in range(5):
            r = self.helper(3, "refusedexec", "nfork", 10, "fork")
            self.assertRun(r, 0, "created 2 eagain 8 other 0\n")
            self.assertAudit(r, 3, forks=2, denied=8, peak=3)

    def test_x32_numbers(self):
        # case 5: an x32 fork number must fail (or count): never 30 children
        r = self.helper(5, "x32")
        self.assertRun(r, 0)
        m = re.fullmatch(r"failed (\d+) created (\d+) errno (\S+) reaped (\d+)\n", r.out)
        self.assertIsNotNone(m, r.describe())
        self.assertEqual((m.group(1), m.group(2), m.group(4)), ("30", "0", "0"), r.describe())
        self.assertAudit(r, 5, forks=0, denied=0, peak=1)

    def test_untraced_refused_promptly(self):
        # case 4: CLONE_UNTRACED is refused with EPERM, with no stall
        for procs in (5, None):
            with self.subTest(procs=procs):
                r = self.helper(procs, "untraced")
                self.assertRun(r, 0)
                m = re.fullmatch(r"rc (-?\d+) errno (\S+) ms (\d+)\n", r.out)
                self.assertIsNotNone(m, r.describe())
                self.assertEqual(m.group(1, 2), ("-1", "EPERM"), r.describe())
                self.assertLess(int(m.group(3)), 1000, "CLONE_UNTRACED stalled\n" + r.describe())
                self.assertLess(r.elapsed, 10, r.describe())
                if procs:
                    self.assertAudit(r, procs, forks=0, denied=0, peak=1)

    def test_namespace_flags(self):
        # case 3: clone3(CLONE_NEWUSER) -> ENOSYS from the filter;
        # clone/unshare(CLONE_NEWUSER), setns -> EPERM from the tracer, each
        # recorded; the sandbox never leaves the initial user namespace
        own = os.readlink("/proc/self/ns/user")
        expected = ("clone3 -1 ENOSYS\nclone -1 EPERM\nunshare -1 EPERM\nsetns -1 EPERM\n"
                    "userns %s\n" % own)
        for procs in (5, None):
            with self.subTest(procs=procs):
                r = self.helper(procs, "ns")
                self.assertRun(r, 0, expected)
                denials = [(e["syscall"], e["flags"]) for e in r.of("namespace_denied")]
                self.assertEqual(denials, [("clone", 0x10000000 | signal.SIGCHLD),
                                           ("unshare", 0x10000000), ("setns", 0)], r.describe())
                self.assertEqual(r.end["namespace_denied"], 3, r.describe())
                # each names its caller: the helper, the sandbox root, on
                # its one thread
                root = r.of("exit")[0]["pid"]
                self.assertEqual([(e["pid"], e["tid"]) for e in r.of("namespace_denied")],
                                 [(root, root)] * 3, r.describe())
                if procs:
                    self.assertAudit(r, procs, forks=0, denied=0, peak=1)


class TestReaping(ProcsTestBase):
    """A process holds its slot from creation until it is reaped."""

    def test_waits_that_reap_nothing(self):
        # issue 3: ECHILD waits, interrupted waits, WSTOPPED/WCONTINUED
        # waits never free a slot; the real reap does
        r = self.helper(2, "nonchild", timeout=60)
        self.assertRun(r, 0, "first fork ok\n"
                             "at-limit fork EAGAIN\n"
                             "echild 3000\n"
                             "after-echild fork EAGAIN\n"
                             "eintr 20\n"
                             "after-eintr fork EAGAIN\n"
                             "stopped yes\n"
                             "after-stop fork EAGAIN\n"
                             "continued yes\n"
                             "after-continue fork EAGAIN\n"
                             "still-eagain\n"
                             "after-reap fork ok\n")
        self.assertAudit(r, 2, forks=2, denied=5, peak=2)

    def test_zombie_holds_its_slot(self):
        r = self.helper(2, "zombie")
        self.assertRun(r, 0, "zombie yes\n"
                             "zombie fork EAGAIN\n"
                             "wnowait yes\n"
                             "after-wnowait fork EAGAIN\n"
                             "after-reap fork ok\n")
        self.assertAudit(r, 2, forks=2, denied=2, peak=2)

    def test_orphan_holds_its_slot(self):
        # the grandchild, adopted outside the sandbox, counts until it is
        # gone
        r = self.helper(3, "orphan")
        self.assertRun(r, 0)
        lines = r.lines()
        m = re.fullmatch(r"grandchild (\d+) orphaned yes", lines[0] if lines else "")
        self.assertIsNotNone(m, r.describe())
        self.assertEqual(lines[1:], ["fork1 ok", "fork2 EAGAIN", "grandchild gone", "fork3 ok"], r.describe())
        self.assertAudit(r, 3, forks=4, denied=1, peak=3)
        g = int(m.group(1))
        self.assertIn(g, [e["child"] for e in r.of("fork")], r.describe())
        self.assertIn(g, [e["pid"] for e in r.of("reap")], r.describe())

    def test_reap_event_is_immediate(self):
        # A reap is recorded when it happens (the pidfd hangs up), not at
        # the next fork decision or the end: the sandbox blocks on stdin
        # until the harness has seen the reap events of a waited child and
        # of one auto-reaped under SIGCHLD = SIG_IGN; lazy events would keep
        # it blocked until the deadline fails the test.
        code = ("import os, signal, sys\n"
                "a = os.fork()\n"
                "if a == 0: os._exit(0)\n"
                "os.waitpid(a, 0)\n"
                "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
                "b = os.fork()\n"
                "if b == 0: os._exit(0)\n"
                "print(a, b, flush=True)\n"
                "sys.stdin.read(1)\n"
                "print('released', flush=True)\n")
        audit = os.path.join(self.tmp, "audit-reap.jsonl")
        cmd = [SECCELL, "run", "--max-procs", "4", "--audit", audit, "--", SYS_PYTHON, "-c", code]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, env=private_env(), cwd=self.tmp)
        self.addCleanup(lambda: p.poll() is None and os.killpg(p.pid, signal.SIGKILL))

        def reaped():
            try:
                with open(audit) as f:
                    return {json.loads(l)["pid"] for l in f if '"event":"reap"' in l}
            except OSError:
                return set()
        try:
            line = read_line(p.stdout, 30).decode()
            m = re.fullmatch(r"(\d+) (\d+)\n", line)
            self.assertIsNotNone(m, "first line %r" % line)
            a, b = int(m.group(1)), int(m.group(2))
            wait_for(lambda: {a, b} <= reaped(), 30, "reap events of %d and %d in %s" % (a, b, audit))
            p.stdin.write(b"x")
            p.stdin.close()
            out, eof = read_to_eof(p.stdout, 30)
            self.assertTrue(eof, "no end of output after the release")
            p.wait(timeout=30)
            err = p.stderr.read()
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                f.close()
        self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
        self.assertEqual(out, b"released\n")
        with open(audit) as f:
            events = [json.loads(l) for l in f if l.strip()]
        r = Run(cmd, p.returncode, line + out.decode(), err.decode(errors="replace"), events, 0)
        self.assertAudit(r, 4, forks=2, denied=0, peak=2)

    def test_mass_reap(self):
        # 300 children exit and are reaped newest first, twice: the reaps
        # arrive as a burst of pidfd hang-ups, and one recount can release
        # hundreds of entries within one batch of events (they must outlive
        # the batch). Every count exact: 600 forks, 600 + 1 reaps, peak 301.
        code = ("import os\n"
                "for _ in range(2):\n"
                "    pids = []\n"
                "    for _ in range(300):\n"
                "        p = os.fork()\n"
                "        if p == 0:\n"
                "            os._exit(0)\n"
                "        pids.append(p)\n"
                "    for p in pids:\n"
                "        os.waitid(os.P_PID, p, os.WEXITED | os.WNOWAIT)\n"
                "    for p in reversed(pids):\n"
                "        os.waitpid(p, 0)\n"
                "print('reaped', len(pids) * 2)\n")
        r = self.sandbox(400, [SYS_PYTHON, "-c", code], timeout=120)
        self.assertRun(r, 0, "reaped 600\n")
        self.assertAudit(r, 400, forks=600, denied=0, peak=301)

    def test_shell_loop_status(self):
        # case 10: 200 fork+wait rounds by the root while the broker waits
        # for it: no hang, its own status
        r = self.sandbox(2, ["/bin/dash", "-c",
                             'i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done; echo $i; exit 7'],
                         timeout=60)
        self.assertRun(r, 7, "200\n")
        self.assertAudit(r, 2, forks=200, denied=0, peak=2)


class TestThreads(ProcsTestBase):
    """Notifications carry thread ids; processes are thread groups."""

    def test_fork_from_non_leader_thread(self):
        r = self.helper(2, "threadfork")
        self.assertRun(r, 0)
        lines = r.lines()
        m = re.fullmatch(r"tid (\d+) pid (\d+)", lines[0] if lines else "")
        self.assertIsNotNone(m, r.describe())
        tid, pid = int(m.group(1)), int(m.group(2))
        self.assertNotEqual(tid, pid)
        self.assertEqual(pid, r.start["root_pid"])
        self.assertEqual(lines[1], "thread fork1 ok fork2 EAGAIN", r.describe())
        child = int(re.fullmatch(r"child (\d+)", lines[2]).group(1))
        self.assertEqual(lines[3:], ["thread fork3 ok"], r.describe())
        self.assertAudit(r, 2, forks=2, denied=1, peak=2)
        self.assertEqual([(e["pid"], e["tid"]) for e in r.of("fork")], [(pid, tid)] * 2, r.describe())
        self.assertEqual(r.of("fork")[0]["child"], child)
        self.assertEqual([(e["pid"], e["tid"]) for e in r.of("fork_denied")], [(pid, tid)], r.describe())

    def test_exec_from_non_leader_thread(self):
        # case 13: the exec'ing thread takes over the process; the count
        # stays 1 (P=1 works) ...
        r = self.helper(1, "threadexec", "/bin/sh", "-c", "echo ok")
        self.assertRun(r, 0)
        m = re.fullmatch(r"exec from tid (\d+) of pid (\d+)\nok\n", r.out)
        self.assertIsNotNone(m, r.describe())
        pid = int(m.group(2))
        self.assertAudit(r, 1, forks=0, denied=0, peak=1)
        execs = [e for e in r.of("exec") if e["argv"] == ["/bin/sh", "-c", "echo ok"]]
        self.assertEqual([e["pid"] for e in execs], [pid],
                         "the exec event must name the process (%d), not the exec'ing thread\n%s" % (
                             pid, r.describe()))
        # ... and exactly 1: at P=2 the new image can still fork, one at a time
        r = self.helper(2, "threadexec", "/bin/sh", "-c", "/bin/true && /bin/true && echo ok")
        self.assertRun(r, 0)
        self.assertTrue(r.out.endswith("\nok\n"), r.describe())
        self.assertAudit(r, 2, forks=2, denied=0, peak=2)

    def test_python_subprocess_from_threads(self):
        # case 12: 4 threads x 50 subprocess.run(["true"]) at P=8
        script = (
            "import subprocess, threading\n"
            "ok = 0; bad = []; lock = threading.Lock()\n"
            "def work():\n"
            "    global ok\n"
            "    for _ in range(50):\n"
            "        try:\n"
            "            r = subprocess.run(['true'])\n"
            "        except OSError as e:\n"
            "            with lock: bad.append(repr(e))\n"
            "            continue\n"
            "        with lock:\n"
            "            if r.returncode == 0: ok += 1\n"
            "            else: bad.append(r.returncode)\n"
            "ts = [threading.Thread(target=work) for _ in range(4)]\n"
            "for t in ts: t.start()\n"
            "for t in ts: t.join()\n"
            "print('%d/200' % ok, bad[:3])\n")
        env = dict(os.environ, PATH="/usr/local/bin:/usr/bin:/bin")
        r = self.sandbox(8, [SYS_PYTHON, "-c", script], env=env, timeout=120)
        self.assertRun(r, 0, "200/200 []\n")
        self.assertAudit(r, 8, forks=200, denied=0)
        self.assertLessEqual(r.end["peak_procs"], 5, r.describe())


class TestRegistration(ProcsTestBase):
    """Birth registration: before the child runs, exact under load."""

    def test_child_registered_before_it_runs(self):
        n = 50
        r = self.helper(2, "firstrun", n)
        self.assertRun(r, 0)
        lines = r.lines()
        self.assertEqual(lines[-1], "done %d" % n, r.describe())
        forks = {e["child"]: e for e in r.of("fork")}
        self.assertEqual(len(lines) - 1, n, r.describe())
        for line in lines[:-1]:
            _, pid, t = line.split()
            pid, t = int(pid), int(t)
            self.assertIn(pid, forks, "child %d never registered\n%s" % (pid, r.describe()))
            self.assertLess(ts_ns(forks[pid]["ts"]), t,
                            "child %d ran (at %d) before its fork event (%s)" % (pid, t, forks[pid]["ts"]))
        self.assertAudit(r, 2, forks=n, denied=0, peak=2)

    def test_signals_in_the_window_sa_restart(self):
        # case 9 with an SA_RESTART handler: SIGALRM every 50 us, 20,000
        # forks, none returns EINTR and every one is registered
        r = self.helper(2, "sigalrm", 20000, "restart", timeout=120)
        self.assertRun(r, 0, "ok 20000 eintr 0\nalarms yes\n")
        self.assertAudit(r, 2, forks=20000, denied=0, peak=2)

    def test_signals_in_the_window_no_restart_only_eintr(self):
        # case 9 without SA_RESTART: whatever the signals do, a fork either
        # succeeds (and is registered) or fails with EINTR - nothing else,
        # no lost registration, no hang
        r = self.helper(2, "sigalrm", 20000, timeout=120)
        self.assertEqual(r.rc, 0, r.describe())
        m = re.fullmatch(r"(?:ok 20000 eintr 0|fail eintr (\d+) created (\d+))\nalarms yes\n", r.out)
        self.assertIsNotNone(m, r.describe())
        created = int(m.group(2)) if m.group(1) else 20000
        self.assertAudit(r, 2, forks=created, denied=0, peak=2)

    @unittest.expectedFailure
    def test_signals_in_the_window(self):
        # case 9 as written: no SA_RESTART, and no fork may return EINTR.
        # KNOWN KERNEL LIMITATION: a signal that arrives while the fork's
        # seccomp notification waits to be received by the tracer (state
        # INIT) ends the wait with -ERESTARTSYS, which a handler without
        # SA_RESTART turns into EINTR (kernel/seccomp.c; WAIT_KILLABLE_RECV
        # only covers the time after the receive). This test flips to an
        # unexpected success - a failure - the day that window is closed.
        r = self.helper(2, "sigalrm", 20000, timeout=120)
        self.assertRun(r, 0, "ok 20000 eintr 0\nalarms yes\n")

    def test_dash_pipelines(self):
        # case 9: 100 runs of a three-process pipeline under P=64: none
        # hangs, the limit never refuses anything, and each run prints abc
        # with its 3 forks registered - except for the one known failure:
        # dash's SIGCHLD handler has no SA_RESTART, so a child's exit that
        # lands while a fork's notification is not yet received makes that
        # fork fail with EINTR ("Cannot fork"; README, "Limits"). Seen about
        # once in 300 runs on a loaded machine; counted, bounded, and
        # reported, so a regression to any other failure still fails here.
        eintr = []
        for i in range(100):
            r = self.sandbox(64, ["/bin/dash", "-c", "echo abc | cat | cat"], timeout=30)
            self.assertAudit(r, 64, denied=0)
            if r.rc == 2 and r.out == "" and "Cannot fork" in r.err:
                eintr.append(i)
                continue
            self.assertRun(r, 0, "abc\n")
            self.assertEqual(r.end["forks_allowed"], 3, r.describe())
        if eintr:
            print("\n  dash pipelines: %d of 100 runs lost a fork to EINTR (runs %s)" % (len(eintr), eintr))
        self.assertLessEqual(len(eintr), 5, "far more EINTR than the kernel window explains")

    def test_stale_notifications(self):
        # case 7 adapted: 200 children looping fork attempts, each killed
        # after a random 0-200 us, then 100 mmaps and 3 forks: done in
        # seconds, no slot left reserved
        r = self.helper(8, "stale", 200, timeout=60)
        self.assertRun(r, 0)
        lines = r.lines()
        m = re.fullmatch(r"started (\d+) refused (\d+) final-forks 3", lines[0] if lines else "")
        self.assertIsNotNone(m, r.describe())
        self.assertEqual(int(m.group(1)) + int(m.group(2)), 200, r.describe())
        self.assertEqual(lines[1:], ["done"], r.describe())
        self.assertLess(r.elapsed, 30, r.describe())
        self.assertAudit(r, 8)

    def test_creator_killed_at_its_fork_event(self):
        # Found in review: a forking process SIGKILLed at its fork-event
        # stop makes PTRACE_GETEVENTMSG fail; the tracer took child pid 0
        # and, failing to register it, ran kill(0, SIGKILL) - its own
        # process group (in daemon mode the broker and every sandbox's
        # supervision with it). 1000 children killed 0-200 us into fork
        # loops hit that window in about 1 run of 3: 10 runs, each must end
        # normally.
        for i in range(10):
            r = self.helper(8, "stale", 1000, timeout=60)
            self.assertRun(r, 0)
            self.assertNotIn("child 0", r.err, r.describe())
            self.assertEqual(r.lines()[1:], ["done"], r.describe())

    def test_many_forks_at_once_all_allowed(self):
        # case 8: 64 threads released by one barrier each fork once, 200
        # rounds, P=65: all allowed, every child registered. A loop that
        # left queued notifications behind at a wake-up, with nothing to
        # wake it again, would leave the round's last forks waiting: a
        # hang, which the run's timeout turns into a failure. The case's
        # "every round within a second" is a speed target, measured by
        # bench/limits.py (burst row), not asserted here (a round took
        # 1075 ms once on a loaded machine).
        r = self.helper(65, "burst", 200, timeout=120)
        self.check_burst(r, 65, 200, 64)

    def test_many_forks_at_once_at_the_limit(self):
        # the same at P=17: the children of a round are all alive together,
        # so exactly 16 per round, 48 EAGAIN
        r = self.helper(17, "burst", 100, timeout=120)
        self.check_burst(r, 17, 100, 16)

    def check_burst(self, r, procs, rounds, per_round):
        self.assertRun(r, 0)
        lines = r.lines()
        self.assertEqual(lines[-1], "ok", r.describe())
        m = re.fullmatch(r"rounds (\d+) created (\d+) eagain (\d+) other (\d+) per-round (\d+)\.\.(\d+) "
                         r"round-us median (\d+) max (\d+)", lines[-2])
        self.assertIsNotNone(m, r.describe())
        got = [int(x) for x in m.groups()]
        want = [rounds, rounds * per_round, rounds * (64 - per_round), 0, per_round, per_round]
        self.assertEqual(got[:6], want, "rounds created eagain other min max\n" + lines[-2])
        kids = [int(x) for line in lines[:-2] for x in line.split()[1:]]
        self.assertEqual(len(kids), rounds * per_round)
        registered = [e["child"] for e in r.of("fork")]
        unregistered = sorted(set(kids) - set(registered))
        self.assertEqual(unregistered, [], "%d children never registered (no fork event)\n%s" % (
            len(unregistered), r.describe()))
        self.assertAudit(r, procs, forks=rounds * per_round, denied=rounds * (64 - per_round), peak=procs)

    def test_vfork_parents_under_cpu_load(self):
        # case 11: 4 busy threads (2 per core), 4 threads x 500
        # posix_spawn(/bin/true)+waitpid at P=5: one child per thread
        r = self.helper(5, "spawnload", 4, 4, 500, timeout=120)
        self.assertRun(r, 0, "ok 2000\n")
        self.assertAudit(r, 5, forks=2000, denied=0)


class TestUnprivileged(ProcsTestBase):
    """Runs as uid 65534 (setpriv), where RLIMIT_NPROC applies."""

    def setUp(self):
        super().setUp()
        if os.getuid() != 0:
            self.skipTest("needs root to switch to uid 65534")
        if not shutil.which("setpriv"):
            self.skipTest("setpriv not found")

    def test_limit_as_nobody(self):
        seccell, helper, env = self.nobody_bin()
        r = self.helper(3, "nfork", 10, "fork", seccell=seccell, helper=helper, user=NOBODY, env=env)
        self.assertRun(r, 0, "created 2 eagain 8 other 0\n")
        self.assertEqual(r.start["uid"], NOBODY)
        self.assertAudit(r, 3, forks=2, denied=8, peak=3)

    def test_kernel_refused_forks_leave_no_phantom(self):
        # case 6: forks refused by RLIMIT_NPROC fail with EAGAIN promptly,
        # the tracer keeps serving, and afterwards exactly P-1 children
        procs = 6
        seccell, helper, env = self.nobody_bin()
        r = self.helper(procs, "rlimit", procs, seccell=seccell, helper=helper, user=NOBODY, env=env,
                        timeout=60)
        self.assertRun(r, 0)
        lines = [l for l in r.lines() if not l.startswith("phase1 noise")]
        m = re.fullmatch(r"phase1 created (\d+) refused (\d+) other (\d+) max-refused-ms (\d+)",
                         lines[0] if lines else "")
        self.assertIsNotNone(m, r.describe())
        created1, refused, other, ms = (int(x) for x in m.groups())
        self.assertLess(created1 + 1, procs,
                        "RLIMIT_NPROC did not bite before the sandbox limit (a busy uid 65534?)\n" + r.describe())
        self.assertEqual((refused, other), (20, 0),
                         "kernel-refused forks must fail with EAGAIN, nothing else\n" + r.describe())
        self.assertLess(ms, 1000, "a refused fork took %d ms\n%s" % (ms, r.describe()))
        self.assertEqual(lines[1:], ["phase2 created %d eagain 3 other 0" % (procs - 1)], r.describe())
        # only the sandbox's own refusals are in the record
        self.assertAudit(r, procs, forks=created1 + procs - 1, denied=3, peak=procs)


class TestForkBomb(ProcsTestBase):

    def test_fork_bomb(self):
        # Safety first: the limit must hold on a harmless probe, or the bomb
        # is not run at all.
        probe = self.helper(3, "nfork", 10, "fork")
        if probe.rc != 0 or probe.out != "created 2 eagain 8 other 0\n":
            self.fail("the process limit does not hold on a harmless probe; "
                      "the fork bomb is NOT run\n" + probe.describe())
        fence = PidsFence.create(300)
        if fence is None:
            self.skipTest("no pids cgroup fence can be created; the fork bomb is not run")
        self.addCleanup(fence.destroy)

        audit = os.path.join(self.tmp, "bomb.jsonl")
        errpath = os.path.join(self.tmp, "bomb.err")
        cmd = [SECCELL, "run", "--max-procs", "20", "--timeout", "5", "--summary", "--audit", audit,
               "--", "/bin/bash", "-c", "b(){ b|b& }; b; sleep 60"]
        t0 = time.monotonic()
        with open(errpath, "wb") as errf:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                 preexec_fn=fence.join, start_new_session=True, cwd=self.tmp,
                                 env=private_env())
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                fence.kill_all()
                p.wait()
                self.fail("the fork bomb run did not end within 60 s (--timeout 5)")
        elapsed = time.monotonic() - t0
        with open(errpath, "rb") as f:
            err = f.read().decode(errors="replace")
        with open(audit) as f:
            events = [json.loads(line) for line in f if line.strip()]
        r = Run(cmd, rc, "", "\n".join(err.splitlines()[-20:]), events, elapsed)

        # nothing survives: the fence empties (the run's own helpers
        # included) once seccell is gone
        def empty():
            reap_children()
            return fence.current() == 0
        try:
            wait_for(empty, 10, "an empty fence cgroup")
        except AssertionError:
            survivors = fence.procs()
            self.fail("processes survived the fork bomb run: %r\n%s" % (
                [(pid, _comm(pid)) for pid in survivors], r.describe()))

        self.assertEqual(rc, 124, r.describe())
        self.assertLess(elapsed, 30, r.describe())
        self.assertTrue(r.end["timed_out"], r.describe())
        self.assertGreater(r.end["forks_denied"], 0, r.describe())
        self.assertAudit(r, 20, peak=20)
        lines = [l for l in err.splitlines() if l.startswith("seccell: summary:")]
        self.assertEqual(len(lines), 1, r.describe())
        self.assertTrue(lines[0].startswith("seccell: summary: peak 20 of 20 processes"), lines[0])


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    unittest.main(verbosity=2)
