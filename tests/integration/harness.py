"""Shared helpers for the seccell integration tests.

The binary under test comes from the SECCELL environment variable (set by
ctest).  Every subprocess gets a hard timeout, and every test kills and reaps
whatever it started: the test process makes itself a child subreaper, so
anything orphaned by a run (a sandbox survivor, a leftover broker or tracer)
is re-parented to it, can be found by walking /proc from our pid, and is
killed and reaped in tearDown.

Timing: nothing sleeps and hopes.  Conditions are polled with a deadline;
the only timing assertions are the generous "within a few seconds" bounds the
issue asks for (FEW_SECONDS).
"""

import ctypes
import errno
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SECCELL = os.environ.get("SECCELL", "")

# "within a few seconds": generous, for a loaded 2-core machine.
FEW_SECONDS = 5.0
# Hard ceiling for any single subprocess a test starts.
HARD_TIMEOUT = 60.0

PR_SET_CHILD_SUBREAPER = 36

# The interpreter running the tests: a real binary (python3 on PATH may be a
# pyenv shim script).
PYTHON = sys.executable

_counter = itertools.count(1)


def marker(seconds):
    """A unique `sleep` duration such as '1000.123450001': sleep accepts it,
    and no other process on the host has it in its argv."""
    return "%d.%d%04d" % (seconds, os.getpid(), next(_counter))


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def become_subreaper():
    if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


# --------------------------------------------------------------------- /proc

def proc_stat(pid):
    """(comm, state, ppid) of pid, or None if it is gone. From
    /proc/<pid>/status: a read of /proc/<pid>/stat waits while the process
    is in an exec, which the tests hold in a stalled file system."""
    try:
        with open("/proc/%d/status" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":\t", 1) for line in data.split("\n") if ":\t" in line)
    try:
        return fields["Name"], fields["State"].split()[0], int(fields["PPid"])
    except (KeyError, IndexError, ValueError):
        return None  # exited while read


def all_pids():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            out.append(int(name))
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive_with_marker(mark, comm="sleep"):
    """Live (not zombie) processes named `comm` with `mark` in their argv."""
    hits = []
    m = mark.encode()
    for pid in all_pids():
        st = proc_stat(pid)
        if not st or st[1] in ("Z", "X") or st[0] != comm:
            continue
        args = cmdline(pid)
        if args and m in args[1:]:
            hits.append(pid)
    return hits


def descendants(root):
    """Every live-or-zombie process below root (transitively)."""
    children = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children.setdefault(st[2], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, ()):
            out.append(c)
            todo.append(c)
    return out


def live_descendants(root, comm=None):
    out = []
    for pid in descendants(root):
        st = proc_stat(pid)
        if st and st[1] not in ("Z", "X") and (comm is None or st[0] == comm):
            out.append(pid)
    return out


def status_fields(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


# -------------------------------------------------------------------- waiting

def wait_for(pred, timeout, what, interval=0.01):
    """Poll pred() until it returns a true value (returned) or the deadline
    passes (AssertionError naming `what` and the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, v))
        time.sleep(interval)


def read_line(stream, timeout):
    """Read one line from a pipe with a deadline; b'' on EOF."""
    fd = stream.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no complete line within %.1fs (got %r)" % (timeout, buf))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        c = os.read(fd, 1)
        if not c:
            return buf
        buf += c
    return buf


def read_to_eof(stream, timeout):
    """Read a pipe until EOF with a deadline; returns (data, saw_eof)."""
    fd = stream.fileno()
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        c = os.read(fd, 65536)
        if not c:
            return b"".join(chunks), True
        chunks.append(c)


# ---------------------------------------------------------------- test base

def _reap_all_children():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all_descendants(deadline_s=10.0):
    """SIGKILL and reap every process below us (we are a subreaper, so
    orphans of our runs are ours).  Returns the pids that were still alive;
    AssertionError if some cannot be killed within deadline_s."""
    killed = set()
    deadline = time.monotonic() + deadline_s
    while True:
        live = live_descendants(os.getpid())
        if not live:
            break
        if time.monotonic() >= deadline:
            raise AssertionError("cannot kill processes %r" % live)
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        _reap_all_children()
        time.sleep(0.01)
    _reap_all_children()
    return killed


class SeccellTestCase(unittest.TestCase):
    """Base: finds the binary, owns the processes a test starts."""

    maxDiff = None

    def mount_stallfs(self):
        """A mounted stallfs.py (a FUSE file system whose requests the test
        holds and releases), unmounted at clean-up; returns (its process,
        its mount point)."""
        if not os.path.exists("/dev/fuse"):
            self.skipTest("this kernel has no FUSE")
        top = tempfile.mkdtemp(prefix="seccell-stallfs-")
        os.chmod(top, 0o755)
        mnt = os.path.join(top, "mnt")
        os.mkdir(mnt)
        here = os.path.dirname(os.path.abspath(__file__))
        fs = self.popen(["/usr/bin/python3", os.path.join(here, "stallfs.py"), mnt], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def unmount():
            try:
                fs.stdin.write(b"release\n")
                fs.stdin.close()
            except OSError:
                pass
            fs.terminate()
            try:
                fs.wait(timeout=30)
            except subprocess.TimeoutExpired:
                fs.kill()
                fs.wait()
            # always: a server killed first (the harness's tear-down kills
            # every descendant) leaves a dead mount that ismount() cannot
            # stat
            subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            shutil.rmtree(top, True)
        self.addCleanup(unmount)
        line = read_line(fs.stdout, 60)
        if line != b"mounted\n":
            self.fail("stallfs: %r, not mounted: %s" % (line, errtext(fs)))
        return fs, mnt

    @classmethod
    def setUpClass(cls):
        if not SECCELL:
            raise unittest.SkipTest("SECCELL is not set (path to build/seccell)")
        if not os.access(SECCELL, os.X_OK):
            raise AssertionError("SECCELL=%s is not an executable file" % SECCELL)
        become_subreaper()

    def setUp(self):
        self._popens = []
        self._markers = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for p in self._popens:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    try:
                        s.close()
                    except OSError:
                        pass
        for m in self._markers:
            for pid in alive_with_marker(m):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        kill_all_descendants()

    # -- starting things

    def marker(self, seconds):
        m = marker(seconds)
        self._markers.append(m)
        return m

    def seccell(self, args, input=None, timeout=HARD_TIMEOUT, **kw):
        """Run `seccell ARGS` to completion; CompletedProcess with bytes."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        if "stdin" not in kw:
            kw["stdin"] = subprocess.DEVNULL if input is None else subprocess.PIPE
        p = self.popen([SECCELL] + list(args), **kw)
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = p.poll()
            p.kill()
            kill_all_descendants()
            if rc is not None:
                self.fail("seccell %r exited with %d, but its stdout/stderr stayed open for %ss: "
                          "a process of the sandbox survived the run" % (args, rc, timeout))
            self.fail("seccell %r did not finish within %ss" % (args, timeout))
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def run_cmd(self, cmd, input=None, timeout=HARD_TIMEOUT, opts=(), **kw):
        """seccell run [opts] -- cmd..."""
        return self.seccell(["run"] + list(opts) + ["--"] + list(cmd), input=input, timeout=timeout, **kw)

    def bare(self, cmd, input=None, timeout=HARD_TIMEOUT, **kw):
        """The same command run without seccell, for comparison."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        if "stdin" not in kw:
            kw["stdin"] = subprocess.DEVNULL if input is None else subprocess.PIPE
        p = self.popen(list(cmd), **kw)
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("bare %r did not finish within %ss" % (cmd, timeout))
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def popen(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self._popens.append(p)
        return p

    def wait_exit(self, p, timeout, what):
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail("%s: still running after %.1fs" % (what, timeout))

    # -- assertions

    def assertNoSurvivors(self, mark, timeout=FEW_SECONDS, comm="sleep"):
        wait_for(lambda: not alive_with_marker(mark, comm), timeout,
                 "no live '%s %s' process" % (comm, mark))

    def assertOneLine(self, err, *needles):
        """stderr is exactly one line, mentioning every needle."""
        text = err.decode("utf-8", "replace")
        lines = text.splitlines()
        self.assertEqual(len(lines), 1, "expected one line on stderr, got %r" % text)
        self.assertTrue(text.endswith("\n"), "stderr line is not terminated: %r" % text)
        for n in needles:
            self.assertIn(n, lines[0])


def binaries_for_anyone(names=("seccell", "seccell-broker", "seccell-tracer")):
    """The build's binaries `names` copied to a new directory (0755) that
    any user can reach: the build tree may sit under one that only its
    owner may enter (a clone made in `mktemp -d`). Returns the directory;
    the caller removes it."""
    d = tempfile.mkdtemp(prefix="seccell-bin-")
    os.chmod(d, 0o755)
    src = os.path.dirname(os.path.abspath(SECCELL))
    for name in names:
        shutil.copy2(os.path.join(src, name), os.path.join(d, name))
        os.chmod(os.path.join(d, name), 0o755)
    return d


def py(script):
    """argv running a Python script with the real interpreter."""
    return [PYTHON, "-c", script]


def load_json_lines(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return [json.loads(line) for line in lines]


def errtext(p, timeout=2.0):
    """Whatever a Popen's stderr pipe holds, for failure messages; never
    blocks longer than timeout (a survivor may keep the pipe open)."""
    if not p.stderr:
        return b""
    return read_to_eof(p.stderr, timeout)[0]


def drain(stream, timeout, consume):
    """Read a pipe to EOF within timeout, handing each chunk to consume();
    returns the byte count; AssertionError if EOF does not come in time."""
    fd = stream.fileno()
    n = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no EOF within %.0fs (%d bytes read)" % (timeout, n))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        b = os.read(fd, 1 << 20)
        if not b:
            return n
        n += len(b)
        consume(b)
