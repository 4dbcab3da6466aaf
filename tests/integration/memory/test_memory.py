"""Integration tests of `seccell run --max-memory M`.

Real programs run under `seccell run --max-memory M --audit FILE --`: the
helper (mem_helper.c) for the cases that need exact syscalls, Python, gcc
and make for real workloads.  The cases are those of issue 4 and "Memory
accounting" (18-23) and case 13 in shared/cases/README.md.

The measure (shared/DESIGN.md, "Memory limit"): the sandbox-wide sum of each
live address space's private writable commitment, /proc/<pid>/statm field 6
(data + stack, the kernel's data_vm), plus SysV segments.  A request that
would push it over M kills the requesting process (SIGKILL, 137 for the
root) with a memory_kill audit event {pid, tid, syscall, requested, ledger,
limit}; sandbox_end has peak_memory and memory_kills.

Exactness: the helper announces each request with its own statm field 6
just before the call ("req STEP CALL data D grow G") and nothing it does in
between changes that measure, so in a one-process sandbox the kill must come
at the first request with D + G > M, with ledger == D and requested == G.
Where the issue's expectation conflicts with the measure (16 Python threads
at 128M), the test follows the measure, from numbers measured in the same
run.

Determinism: nothing sleeps and hopes; every wait is on a condition, every
subprocess has a hard timeout, the test process is a child subreaper and
kills and reaps whatever a run left behind; SysV segments a run may leave
are removed by key.

Environment (set by ctest): SECCELL = build/seccell (seccell-broker and
seccell-tracer beside it), MEM_HELPER = the helper, MEM_HELPER_STATIC = the
helper linked statically (empty when there is no static libc).
"""

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import sys
import threading
import time
import unittest

# the process helpers shared by every integration suite
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import _reap_all_children as reap_children  # noqa: E402
from harness import kill_all_descendants as kill_descendants  # noqa: E402
from harness import binaries_for_anyone, read_line, wait_for  # noqa: E402

SECCELL = os.environ.get("SECCELL", "")
HELPER = os.environ.get("MEM_HELPER", "")
BIGBSS = os.environ.get("MEM_BIGBSS", "")
FREEBSS = os.environ.get("MEM_FREEBSS", "")
HELPER_STATIC = os.environ.get("MEM_HELPER_STATIC", "")
BSS = os.environ.get("MEM_BSS", "")
BSS_STATIC = os.environ.get("MEM_BSS_STATIC", "")
HERE = os.path.dirname(os.path.abspath(__file__))

# The real interpreter: `python3` on PATH may be a pyenv shim that forks.
SYS_PYTHON = "/usr/bin/python3"
MIB = 1 << 20
HARD_TIMEOUT = 120.0
BUILD_TIMEOUT = 300.0
PR_SET_CHILD_SUBREAPER = 36

NR = {"mmap": 9, "mmap-shared": 9, "mmap-shared-ro": 9, "mprotect": 10, "brk": 12, "mremap": 25, "shmget": 29, "pkey_mprotect": 329}

REQ_RE = re.compile(r"^req (\d+) (\S+) data (\d+) grow (\d+)$")
OK_RE = re.compile(r"^ok (\d+)$")
SUMMARY_RE = re.compile(r"^seccell: summary: peak (\S+ \S+) of (\S+ \S+), (\d+) memory kills?, ")


def format_size(n):
    """As seccell shows sizes (common/size.h format_size)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    u = 0
    while u + 1 < len(units) and n >> (10 * (u + 1)):
        u += 1
    tenths = ((n * 20 >> (10 * u)) + 1) >> 1
    if tenths >= 10240 and u + 1 < len(units):
        u += 1
        tenths = ((n * 20 >> (10 * u)) + 1) >> 1
    return ("%d.%d %s" % (tenths // 10, tenths % 10, units[u]) if tenths % 10
            else "%d %s" % (tenths // 10, units[u]))


# ------------------------------------------------------------------ /proc

def private_env():
    env = dict(os.environ)
    env.pop("SECCELL_BROKER_DIR", None)
    return env


def remove_shm(key):
    """Remove the SysV segment with `key`, if a killed run left it."""
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(ctypes.c_int(key), ctypes.c_size_t(0), ctypes.c_int(0))
    if shmid >= 0:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


# ------------------------------------------------------------------ results

class Run:
    def __init__(self, argv, rc, out, err, events):
        self.argv, self.rc, self.out, self.err, self.events = argv, rc, out, err, events

    def of(self, name):
        return [e for e in self.events if e.get("event") == name]

    def count(self, name):
        return len(self.of(name))

    @property
    def end(self):
        ends = self.of("sandbox_end")
        if len(ends) != 1:
            raise AssertionError("%d sandbox_end events\n%s" % (len(ends), self.describe()))
        return ends[0]

    @property
    def root(self):
        return self.of("sandbox_start")[0]["root_pid"]

    def lines(self):
        return self.out.splitlines()

    def reqs(self):
        """[(step, call, data, grow, ok)] of the helper's announced requests."""
        out, oks = [], set()
        for line in self.lines():
            m = REQ_RE.match(line)
            if m:
                out.append([int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))])
            m = OK_RE.match(line)
            if m:
                oks.add(int(m.group(1)))
        return [tuple(r) + (r[0] in oks,) for r in out]

    def describe(self):
        keep = ("event", "pid", "tid", "syscall", "requested", "unjudged", "ledger", "limit", "status",
                "peak_memory", "memory_kills", "peak_procs", "forks_allowed", "execs", "path")
        ev = "\n".join(json.dumps({k: v for k, v in e.items() if k in keep})
                       for e in self.events if e.get("event") != "exec")
        return "argv=%r rc=%r\nstdout:\n%s\nstderr:\n%s\naudit (exec events left out):\n%s" % (
            self.argv, self.rc, self.out[-4000:], self.err[-3000:], ev[-4000:])


# ------------------------------------------------------------------ base

class MemTestBase(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not SECCELL or not HELPER:
            raise unittest.SkipTest("SECCELL and MEM_HELPER must be set (ctest sets them)")
        for path in (SECCELL, HELPER, SYS_PYTHON):
            if not os.access(path, os.X_OK):
                raise AssertionError("%s is not executable" % path)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="seccell-memory-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(kill_descendants)
        self._n = 0

    def sandbox(self, limit, argv, opts=(), timeout=HARD_TIMEOUT, cwd=None, prefix=()):
        """[prefix] seccell run --max-memory limit --audit FILE [opts] -- argv."""
        self._n += 1
        audit = os.path.join(self.tmp, "audit-%d.jsonl" % self._n)
        cmd = list(prefix) + [SECCELL, "run", "--max-memory", str(limit), "--audit", audit] + list(opts)
        cmd += ["--"] + [str(a) for a in argv]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, env=private_env(),
                             cwd=cwd or self.tmp)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            kill_descendants()
            self.fail("%r did not finish within %.0fs\nstdout:\n%s\nstderr:\n%s" % (
                cmd, timeout, out.decode(errors="replace")[-3000:],
                err.decode(errors="replace")[-3000:]))
        events = []
        if os.path.exists(audit):
            with open(audit) as f:
                events = [json.loads(line) for line in f if line.strip()]
        return Run(cmd, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                   events)

    def helper(self, limit, *args, **kw):
        return self.sandbox(limit, [kw.pop("helper", HELPER)] + list(args), **kw)

    # -- assertions

    def assertFitAndDone(self, r, limit):
        """A run that fitted under `limit`: exit 0, its helper's last line
        "done data D", and no memory kill."""
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertTrue(r.lines()[-1].startswith("done data "), d)
        self.assertAudit(r, limit, kills=0)

    def assertAudit(self, r, limit, kills=None):
        """Invariants of every run under --max-memory limit."""
        d = r.describe()
        self.assertEqual(r.count("sandbox_start"), 1, d)
        seqs = [e["seq"] for e in r.events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "audit sequence has gaps\n" + d)
        self.assertEqual(r.of("sandbox_start")[0]["policy"]["max_memory"], limit, d)
        end = r.end
        self.assertEqual(r.count("memory_kill"), end["memory_kills"], "memory_kill events\n" + d)
        for e in r.of("memory_kill"):
            self.assertEqual(e["limit"], limit, d)
            self.assertGreater(e["ledger"] + e["requested"], limit,
                               "a kill for a request that fits\n" + d)
        self.assertLessEqual(end["peak_memory"], limit, "peak over the limit\n" + d)
        if kills is not None:
            self.assertEqual(end["memory_kills"], kills, "memory_kills\n" + d)

    def assertFits(self, r, limit, nreq=None):
        """Every announced request fits by the measure and was allowed; the
        helper ran to its end; the peak is the highest D + G (one process,
        whose measure the tracer re-reads at each request)."""
        d = r.describe()
        reqs = r.reqs()
        self.assertEqual(r.rc, 0, "exit status\n" + d)
        self.assertTrue(r.lines() and r.lines()[-1].startswith("done"), "did not finish\n" + d)
        for step, call, data, grow, ok in reqs:
            self.assertLessEqual(data + grow, limit, "precondition: step %d fits\n%s" % (step, d))
            self.assertTrue(ok, "step %d (%s) was not allowed\n%s" % (step, call, d))
        if nreq is not None:
            self.assertEqual(len(reqs), nreq, d)
        self.assertAudit(r, limit, kills=0)
        self.assertEqual(r.end["status"], {"code": 0}, d)
        if reqs:
            self.assertGreaterEqual(r.end["peak_memory"], max(q[2] + q[3] for q in reqs), d)
        return reqs

    def assertKilledAtCrossing(self, r, limit, call, extra=0, extra_from=1, tid=None):
        """One process: killed exactly at the first announced request with
        D + extra + G > limit (extra: SysV bytes in the ledger from step
        extra_from on), with an exact memory_kill event naming the root
        (and tid, when given); returns that request."""
        d = r.describe()
        reqs = [q[:2] + (q[2] + (extra if q[0] >= extra_from else 0),) + q[3:] for q in r.reqs()]
        crossing = [q for q in reqs if q[2] + q[3] > limit]
        self.assertTrue(crossing, "no announced request crosses the limit\n" + d)
        step, name, data, grow, ok = crossing[0]
        self.assertEqual(reqs[-1][0], step, "requests were made after the crossing one\n" + d)
        for q in reqs[:-1]:
            self.assertTrue(q[4], "step %d fits but was not allowed\n%s" % (q[0], d))
        self.assertFalse(ok, "the crossing request (step %d) was allowed\n%s" % (step, d))
        self.assertEqual(r.rc, 137, "exit status\n" + d)
        self.assertAudit(r, limit, kills=1)
        root = r.root
        (kill,) = r.of("memory_kill")
        self.assertEqual(
            {k: kill[k] for k in ("pid", "tid", "syscall", "requested", "ledger", "limit")},
            {"pid": root, "tid": root if tid is None else tid, "syscall": NR[call],
             "requested": grow, "ledger": data, "limit": limit}, "memory_kill event\n" + d)
        self.assertEqual(r.end["status"], {"signal": 9, "core_dumped": False}, d)
        # the peak is of allowed requests: the highest D + G before the kill
        allowed = [q[2] + q[3] for q in reqs if q[4]]
        if allowed:
            self.assertGreaterEqual(r.end["peak_memory"], max(allowed), d)
        self.assertLess(r.end["peak_memory"], data + grow, d)
        return crossing[0]


# ------------------------------------------------------------------ the tests

class TestCharges(MemTestBase):
    """One process, one kind of request at a time, exact kill points."""

    def test_private_anonymous_200m_at_64m(self):
        r = self.helper(64 * MIB, "map", "anon", 200, 1)
        self.assertKilledAtCrossing(r, 64 * MIB, "mmap")

    def test_devzero_private_writable_200m_at_64m(self):
        # /dev/zero MAP_PRIVATE PROT_READ|PROT_WRITE is memory
        r = self.helper(64 * MIB, "map", "devzero", 200, 1)
        self.assertKilledAtCrossing(r, 64 * MIB, "mmap")
        # and it adds up: 24 MiB pieces, the third crosses 64M
        r = self.helper(64 * MIB, "map", "devzero", 24, 4)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mmap")
        self.assertEqual(step[0], 3, r.describe())

    def test_prot_none_reservation_then_mprotect(self):
        # the 200 MiB PROT_NONE reservation is not memory; making it
        # writable is, and is killed at the mprotect (or pkey_mprotect)
        for how, call in (("mprotect", "mprotect"), ("pkey", "pkey_mprotect")):
            with self.subTest(how=how):
                r = self.helper(64 * MIB, "reserve", 200, "%s:200" % how)
                m = re.search(r"^reserved (\d+) data (\d+)$", r.out, re.M)
                self.assertIsNotNone(m, "the reservation did not succeed\n" + r.describe())
                self.assertEqual(int(m.group(1)), 200 * MIB)
                step = self.assertKilledAtCrossing(r, 64 * MIB, call)
                self.assertEqual(step[3], 200 * MIB)

    def test_go_style_reservation_case23(self):
        # 1 GiB PROT_NONE, a few MiB of it committed three ways, under 64M
        r = self.helper(64 * MIB, "reserve", 1024, "mprotect:4", "fixed:4", "pkey:4")
        self.assertFits(r, 64 * MIB, nreq=3)
        m = re.search(r"^reserved (\d+) data (\d+)$", r.out, re.M)
        self.assertLess(int(m.group(2)), 4 * MIB, "the reservation counted as data\n" + r.describe())
        self.assertLess(r.end["peak_memory"], 16 * MIB, r.describe())

    def test_rewriting_writable_memory_is_not_growth(self):
        # 40 MiB committed under 64M, then made writable again by mprotect
        # and replaced by a MAP_FIXED mapping of the same size: neither adds
        # memory, so neither may be charged as 40 MiB more (which would
        # cross the limit and kill a process that stays at 40 MiB)
        r = self.helper(64 * MIB, "reserve", 256, "mprotect:40", "remprotect:40", "refixed:40",
                        "remprotect:8")
        reqs = self.assertFits(r, 64 * MIB, nreq=4)
        self.assertEqual([q[1] for q in reqs], ["mprotect", "mprotect", "mmap-fixed", "mprotect"], r.describe())
        self.assertLess(r.end["peak_memory"], 48 * MIB, r.describe())

    def test_fixed_over_kept_shared_memory(self):
        # 40 MiB of anonymous shared memory kept by a child; the parent maps
        # 40 MiB of private memory over its own view (MAP_FIXED): the shared
        # memory lives on, so the sandbox now holds 80 MiB - killed at 64M
        r = self.helper(64 * MIB, "fixedshared", 40)
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        self.assertAudit(r, 64 * MIB, kills=1)
        kill = r.of("memory_kill")[0]
        self.assertEqual((kill["pid"], kill["syscall"]), (r.root, 9), d)
        self.assertNotIn("done", r.lines(), d)

    def test_long_path_poses_as_no_mapping(self):
        # Found in review: maps were read 512 bytes a line, so a file whose
        # path is long split its line, and the tail - a name the sandbox
        # chose - was parsed as a mapping of its own: a fake writable
        # private range that a MAP_FIXED mapping "replaced", charged
        # nothing (1 GiB of shared memory held at 64M). Lines are read
        # whole: the 200 MiB mapping is charged in full and killed.
        r = self.helper(64 * MIB, "longpath", 200)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mmap-shared")
        self.assertEqual((step[0], step[3]), (1, 200 * MIB), r.describe())
        self.assertNotIn("held 200", r.lines(), r.describe())

    def test_fixed_shared_over_private_memory_counts(self):
        # Found in review: anonymous shared memory mapped MAP_FIXED over
        # private memory already charged was judged net of what it
        # replaces, and so recorded as nothing - but the private memory
        # leaves statm while the shared object is in no statm: 80 MiB of
        # each held at 100M. The shared object is recorded whole: the
        # 40 MiB asked for next would bring the sandbox to 120 MiB.
        limit = 100 * MIB
        r = self.helper(limit, "sharedover", 80, 40)
        step = self.assertKilledAtCrossing(r, limit, "mmap", extra=80 * MIB, extra_from=3)
        self.assertEqual((step[0], step[3]), (3, 40 * MIB), r.describe())

    def test_refused_brk_is_not_the_break(self):
        # brk requests for 48, 96, ... MiB past the break, which the kernel
        # refuses (a page in the way): each is judged from the real break,
        # not from the last one allowed, so the second (96 MiB) is killed;
        # remembering the refused 48 MiB as the break would let every step
        # and then the whole 384 MiB pass
        r = self.helper(64 * MIB, "brkblocked", 48, 8)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "brk")
        self.assertEqual((step[0], step[3]), (2, 96 * MIB), r.describe())

    def test_brk_is_judged_from_below_a_decoy_at_the_break(self):
        # Found in review (by reading): older kernels name "[heap]" a
        # mapping that starts at the break, and the break is read as the
        # end of the last such mapping; a PROT_NONE one there (never
        # judged) would make a brk into its room look like no growth. 6.18
        # does not name it so: the brk is charged whole, from the real
        # break, and killed at 64M. (Taking the last writable piece
        # instead charged a heap made PROT_NONE again: see below.)
        for kind, helper in self.helpers():
            with self.subTest(helper=kind):
                r = self.helper(64 * MIB, "brkdecoy", 100, 80, helper=helper)
                step = self.assertKilledAtCrossing(r, 64 * MIB, "brk")
                self.assertEqual(step[3], 80 * MIB, r.describe())
                self.assertNotIn("brk refused", r.out)

    def test_brk_above_a_heap_made_inaccessible_is_charged_its_growth(self):
        # Found in review: with the break taken as the end of the last
        # writable heap piece, a heap made PROT_NONE (which leaves data_vm)
        # was charged again at the next brk: 20 MiB asked, 50 MiB charged,
        # killed at 64M with 50 MiB held in all. Every heap piece counts.
        r = self.helper(64 * MIB, "heapnone", 30, 30, 20)
        self.assertFitAndDone(r, 64 * MIB)

    def test_growsdown_mappings_refused(self):
        # Found in review: a one-page MAP_GROWSDOWN mapping is charged a
        # page, then grows by page faults (never notified) up to
        # RLIMIT_STACK - 32 of them held 254 MiB at 64M. Under a memory
        # limit such mappings are refused (EPERM), whatever the protection;
        # without one they work.
        limit = 64 * MIB
        r = self.helper(limit, "growsdown")
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines(), ["growsdown rw errno %d" % errno.EPERM,
                                     "growsdown none errno %d" % errno.EPERM, "done"], d)
        self.assertAudit(r, limit, kills=0)
        bare = subprocess.run([HELPER, "growsdown"], stdout=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(bare.stdout.splitlines(), ["growsdown rw ok", "growsdown none ok", "done"])

    def test_stack_copies_and_set_mm_refused(self):
        # Found in review: mremap of a page of the main stack (kept with
        # MREMAP_DONTUNMAP, or moved) makes another mapping that grows down
        # by page faults - 40 copies held 288 MiB at 64M; prctl(PR_SET_MM)
        # moved the break under a running brk judgement. Refused (EPERM)
        # under a memory limit; bare, all three work.
        limit = 64 * MIB
        r = self.helper(limit, "stackcopy")
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines(), ["%s errno %d" % (w, errno.EPERM) for w in ("dontunmap", "move", "setmm")]
                         + ["done"], d)
        self.assertAudit(r, limit, kills=0)
        bare = subprocess.run([HELPER, "stackcopy"], stdout=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(bare.stdout.splitlines(), ["dontunmap ok", "move ok", "setmm ok", "done"])

    def check_shared_maps(self, how):
        limit = 64 * MIB
        r = self.helper(limit, "sharedmaps", how, 48, 3)
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        # from step 2 on, the ledger holds the first object whole (48 MiB)
        step = self.assertKilledAtCrossing(r, limit, "mmap-shared-ro" if how == "ro" else "mmap-shared",
                                           extra=48 * MIB, extra_from=2)
        self.assertEqual(step[0], 2, d)

    def test_shared_mapping_with_a_hole_counts_whole(self):
        # Found in review: only the first piece of a shared object was
        # counted - one page unmapped from the middle of each 48 MiB
        # mapping, 10 of them held 480 MiB at 64M. An object counts by the
        # furthest byte any mapping of it reaches.
        self.check_shared_maps("hole")

    def test_read_only_shared_mapping_counts(self):
        # a read-only anonymous shared mapping allocates its pages when
        # read (shmem): routed and counted like a writable one
        self.check_shared_maps("ro")

    def test_vfork_child_memory_stays_counted(self):
        # Found in review: a vfork child that maps 48 MiB and exits leaves
        # it in its parent's address space, but its charge went with it
        # until the parent's statm was read again; a child forked before
        # then got 40 MiB at 64M (88 MiB in all).
        limit = 64 * MIB
        r = self.helper(limit, "vforkmap", 48, 40, opts=["--max-procs", "8"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertRegex(r.out, r"(?m)^vforked 1 pid \d+ exit 0$")
        self.assertRegex(r.out, r"(?m)^q 1 pid \d+ signal 9$")
        self.assertAudit(r, limit, kills=1)

    def test_exec_image_larger_than_the_limit(self):
        # Found in review: exec maps an image's data and bss itself, and a
        # program without libc need not make a single call before it has
        # touched them - 256 MiB ran at 64M. The sandbox's hard RLIMIT_DATA
        # is the limit, so the kernel refuses such an image: the exec
        # fails past its point of no return (SIGSEGV), nothing runs.
        if not BIGBSS:
            self.skipTest("MEM_BIGBSS not set")
        limit = 64 * MIB
        r = self.sandbox(limit, [BIGBSS])
        d = r.describe()
        self.assertEqual(r.rc, 128 + signal.SIGSEGV, d)
        self.assertNotIn("touched", r.out, d)
        self.assertAudit(r, limit, kills=0)
        bare = subprocess.run([BIGBSS], stdout=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual((bare.returncode, bare.stdout), (0, "touched 256 MiB\n"))

    EXEC_BSS = r"""
import mmap, subprocess, sys
m = mmap.mmap(-1, 40 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, 40 << 20, 4096):
    m[i] = 1
r = subprocess.run([sys.argv[1]], stdout=subprocess.PIPE, text=True)
print(("child %d %s" % (r.returncode, r.stdout.strip())).strip(), flush=True)
"""

    def test_exec_image_judged_at_its_first_request(self):
        # An exec maps the image's data and bss unjudged; a glibc program's
        # first judged request (the loader's mmap, static start-up's brk)
        # comes before main and sees it in the kernel's measure: the image
        # that does not fit beside its parent's 40 MiB is the one killed.
        progs = [p for p in (BSS, BSS_STATIC) if p]
        if not progs:
            self.skipTest("MEM_BSS not set")
        for prog in progs:
            with self.subTest(prog=os.path.basename(prog)):
                r = self.sandbox(64 * MIB, [SYS_PYTHON, "-c", self.EXEC_BSS, prog])
                d = r.describe()
                self.assertEqual(r.rc, 0, d)
                self.assertEqual(r.lines()[-1], "child -9", d)
                self.assertAudit(r, 64 * MIB, kills=1)
                (kill,) = r.of("memory_kill")
                self.assertNotEqual(kill["pid"], r.root, d)
                self.assertGreaterEqual(kill["ledger"], 80 * MIB, d)
                fits = self.sandbox(128 * MIB, [SYS_PYTHON, "-c", self.EXEC_BSS, prog])
                self.assertEqual(fits.lines()[-1], "child 0 bss ran", fits.describe())
                self.assertAudit(fits, 128 * MIB, kills=0)

    def test_mremap_growth_to_200m(self):
        r = self.helper(64 * MIB, "mremap", 16, 200)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mremap")
        self.assertEqual(step[3], 184 * MIB)

    def test_mremap_of_shared_memory_adds_nothing(self):
        # Found in review: every mremap was charged as private growth: a
        # file mapped shared grown from 30 to 100 MiB, 40 MiB of anonymous
        # shared memory duplicated (old size 0) or grown, a SysV segment
        # grown - each killed at 64M with data_vm at 0.3 MiB. A shared
        # mapping adds nothing to data_vm, its object no page.
        for kind, mib, grow in (("file", 30, 70), ("anon", 30, 70), ("dup", 40, 0), ("sysv", 30, 70)):
            with self.subTest(kind=kind):
                r = self.helper(64 * MIB, "remapshared", kind, mib, grow)
                self.assertFitAndDone(r, 64 * MIB)

    def test_mremap_spanning_mappings_is_charged_for_all_of_them(self):
        # Found in review: since 6.17 a move-only mremap may span several
        # mappings; judged by the first one alone (a read-only page), each
        # MREMAP_DONTUNMAP copy of the 24 MiB writable beside it was let
        # through uncharged (96.7 MiB held at 64M until the sweep). The
        # private writable bytes of the whole range are charged.
        r = self.helper(64 * MIB, "remapspan", 24, 4)
        if re.search(r"(?m)^error mremap: Bad address$", r.out):
            self.skipTest("this kernel moves one mapping at a time (before 6.17)\n" + r.describe())
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mremap")
        self.assertEqual(step[3], 24 * MIB, r.describe())

    def test_mremap_of_more_mappings_than_looked_at_is_refused(self):
        # Found in review (by reading): a move over more mappings than the
        # tracer looks at counted whole, unrefused even with a main stack
        # further on. Past 1,024 mappings the call is refused (EPERM).
        for n, want in ((1000, "moved"), (1100, "mremap errno %d" % errno.EPERM)):
            with self.subTest(mappings=n):
                r = self.helper(64 * MIB, "remapmany", n)
                if n == 1000 and re.search(r"(?m)^mremap errno %d$" % errno.EFAULT, r.out):
                    self.skipTest("this kernel moves one mapping at a time (before 6.17)\n" + r.describe())
                self.assertEqual((r.rc, r.lines()[-1]), (0, want), r.describe())
                self.assertAudit(r, 64 * MIB, kills=0)

    def test_mremap_onto_private_memory_is_netted(self):
        # Found in review: a single-threaded process's MREMAP_FIXED move
        # onto 24 MiB of its private memory was charged as if none left
        # (grow: 8 MiB, data_vm -16; dontunmap: 16 MiB, data_vm +0), and
        # with another process holding 16 MiB at 64M it was killed. The
        # destination's private memory is netted out, as for MAP_FIXED.
        for mode in ("grow", "dontunmap"):
            with self.subTest(mode=mode):
                r = self.helper(64 * MIB, "remapfixed", mode, 16, opts=["--max-procs", "4"])
                self.assertRegex(r.out, r"(?m)^holder 1 pid \d+ exit 0$", r.describe())
                self.assertFitAndDone(r, 64 * MIB)

    def test_mremap_of_read_only_memory_is_charged_when_made_writable(self):
        # a private mapping that is not writable is not in data_vm, grown
        # or not: free to grow, charged whole at the mprotect that makes
        # it writable
        r = self.helper(64 * MIB, "remapshared", "ro", 10, 100)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mprotect")
        self.assertEqual(step[3], 110 * MIB, r.describe())

    def test_mremap_dontunmap_case22(self):
        # M=256M, 64 MiB touched, rounds of MREMAP_DONTUNMAP keep both
        # ranges: rounds 1 and 2 fit (192 MiB + the helper's few pages),
        # round 3 would pass 256 MiB and is killed at its mremap
        r = self.helper(256 * MIB, "dontunmap", 8, 64)
        step = self.assertKilledAtCrossing(r, 256 * MIB, "mremap")
        self.assertEqual((step[0], step[1], step[3]), (4, "mremap-dontunmap", 64 * MIB), r.describe())
        self.assertIn("round 2 data", r.out)
        self.assertNotIn("round 3", r.out)

    def helpers(self):
        hs = [("dynamic", HELPER)]
        if HELPER_STATIC:
            hs.append(("static", HELPER_STATIC))
        return hs

    def test_first_brk_is_memory_case19(self):
        # brk(current + 512 MiB) under 128M: killed at the brk, never alive
        # with 512 MiB; growth measured from the kernel's current break.
        # The static helper is the case as written (its libc moved the break
        # before main); the dynamic one makes the process's first brk.
        for kind, helper in self.helpers():
            with self.subTest(helper=kind):
                r = self.helper(128 * MIB, "brk", 512, 1, helper=helper)
                step = self.assertKilledAtCrossing(r, 128 * MIB, "brk")
                self.assertEqual((step[0], step[3]), (1, 512 * MIB), r.describe())
                self.assertNotIn("done", r.out)

    def test_brk_steps_exact(self):
        # 1 MiB brk steps at 64M: killed at exactly the step whose growth
        # crosses the limit by the process's own measure
        for kind, helper in self.helpers():
            with self.subTest(helper=kind):
                r = self.helper(64 * MIB, "brk", 1, 100, helper=helper)
                step = self.assertKilledAtCrossing(r, 64 * MIB, "brk")
                self.assertGreater(step[0], 50, r.describe())

    def test_anonymous_shared_200m_at_64m(self):
        r = self.helper(64 * MIB, "map", "shared", 200, 1)
        self.assertKilledAtCrossing(r, 64 * MIB, "mmap")

    def test_anonymous_shared_adds_up(self):
        # DESIGN "Charges": anonymous MAP_SHARED is charged, and the README
        # lists no gap for it.  24 MiB pieces, touched and kept, at 64M: the
        # third brings the charges to 72 MiB and must be killed.  (statm
        # field 6 does not count shared mappings, so a ledger that is only
        # re-read from statm forgets each piece at the next request.)
        limit = 64 * MIB
        r = self.helper(limit, "map", "shared", 24, 4)
        d = r.describe()
        self.assertEqual(r.rc, 137, "4 x 24 MiB of anonymous shared memory ran under 64M\n" + d)
        self.assertAudit(r, limit, kills=1)
        (kill,) = r.of("memory_kill")
        self.assertEqual((kill["pid"], kill["syscall"], kill["requested"]), (r.root, 9, 24 * MIB), d)
        self.assertGreaterEqual(kill["ledger"], 48 * MIB, d)
        self.assertEqual([q[4] for q in r.reqs()], [True, True, False], d)

    def test_devzero_shared_by_descriptor_adds_up(self):
        # /dev/zero opened and mapped MAP_SHARED is a new anonymous shared
        # object, as MAP_SHARED|MAP_ANONYMOUS is (it was never notified:
        # 4 x 24 MiB ran under 64M)
        limit = 64 * MIB
        r = self.helper(limit, "map", "devzeroshared", 24, 4)
        d = r.describe()
        self.assertEqual(r.rc, 137, "4 x 24 MiB of /dev/zero shared memory ran under 64M\n" + d)
        self.assertAudit(r, limit, kills=1)
        (kill,) = r.of("memory_kill")
        self.assertEqual((kill["pid"], kill["syscall"], kill["requested"]), (r.root, 9, 24 * MIB), d)
        self.assertGreaterEqual(kill["ledger"], 48 * MIB, d)
        self.assertEqual([q[4] for q in r.reqs()], [True, True, False], d)

    def test_shared_file_mapping_is_not_memory(self):
        # a regular file mapped shared and written is page cache: three
        # 100 MiB rounds fit under 64M (the tracer looks at the descriptor)
        limit = 64 * MIB
        r = self.helper(limit, "map", "file", 100, 3)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual([q[4] for q in r.reqs()], [True, True, True], d)
        self.assertAudit(r, limit, kills=0)
        self.assertLess(r.end["peak_memory"], 16 * MIB, d)

    def test_stack_growth_counts(self):
        # The measure counts the stack (statm field 6 = data + stack).  The
        # helper raises RLIMIT_STACK to its hard limit and grows the main
        # thread's stack by page faults alone, 1 MiB frames to 100 MiB, under
        # 64M.  No syscall is made, so the tracer cannot judge it; a
        # sandbox whose hard RLIMIT_STACK allows it holds 100 MiB.  Right:
        # the process never lives with more than 64 MiB - killed (137) or
        # refused the growth by a capped RLIMIT_STACK (SIGSEGV, 139).
        limit = 64 * MIB
        r = self.helper(limit, "stack", 100)
        d = r.describe()
        over = [l for l in r.lines() if re.match(r"^(stack \d+|done) data (\d+)$", l)
                and int(l.split()[-1]) > limit]
        self.assertEqual(over, [], "the sandbox held more than 64 MiB of stack\n" + d)
        self.assertIn(r.rc, (137, 139), d)
        self.assertAudit(r, limit)

    def assertSwept(self, r, limit, n, per_kill=1):
        """growkids: the parent lived; the children that grew past the
        limit were killed by the sweep (memory_kill events with "unjudged"
        bytes, no syscall) until the rest fit."""
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        m = re.match(r"^survivors (\d+) killed (\d+) data (\d+)$", r.lines()[-1])
        self.assertIsNotNone(m, d)
        survivors, killed, data = map(int, m.groups())
        self.assertEqual(survivors + killed, n, d)
        self.assertLessEqual(data, limit, d)
        self.assertGreater(killed, 0, d)
        kills = r.of("memory_kill")
        self.assertEqual(len(kills), per_kill * killed, d)
        for k in kills:
            self.assertNotEqual(k["pid"], r.root, d)
            self.assertNotIn("syscall", k, d)
            self.assertGreater(k["unjudged"], 0, d)
        self.assertAudit(r, limit, kills=per_kill * killed)
        return survivors

    def test_stacks_grown_unjudged_are_swept(self):
        # Found in review: main stacks grow by page faults, which no request
        # shows; 40 children each growing 7 MiB of stack held 280 MiB at
        # 64M for as long as nobody asked for memory. The tracer's sweep
        # (every 100 ms) sees the kernel's measure over the limit and kills
        # the processes that grew past their judgement until it fits; the
        # parent, which grew nothing, runs on.
        survivors = self.assertSwept(self.helper(64 * MIB, "growkids", 40, "stack", 7, 64), 64 * MIB, 40)
        self.assertLessEqual(survivors, 64 // 7)

    def test_stack_growth_not_passed_by_a_refused_fork(self):
        # Found in review: any exact re-read that killed no one took the
        # measure as judged - here each grown child's fork, refused with
        # ENOMEM: 8 x 60 MiB of stack stayed at 64M. A refusal passes
        # nothing; the sweep still kills the growers.
        survivors = self.assertSwept(self.helper(64 * MIB, "growkids", 40, "stackfork", 7, 64), 64 * MIB, 40)
        self.assertLessEqual(survivors, 64 // 7)

    def test_stack_growth_swept_beside_a_failed_exec(self):
        # Found in review: a thread's exec failed and the thread slept on,
        # so the exec stayed pending for the tracer, which then never
        # re-based the process's judgement on its measure while each ended
        # grant still added to it: 20 x (map, unmap 8 MiB) made it 160 MiB,
        # and 40 such children held 294 MiB of stack at 64M with no kill.
        survivors = self.assertSwept(self.helper(64 * MIB, "growkids", 12, "execstack", 7, 64), 64 * MIB, 12)
        self.assertLessEqual(survivors, 64 // 7)

    def test_memory_given_back_is_no_longer_judged(self):
        # Found in review: what a process was let have never came down when
        # it unmapped (not notified). 7 children judged with 8 MiB each
        # unmapped it, a fork's re-read showed the room, the parent took
        # 48 MiB of it, and the children grew 7 MiB of stack each back into
        # their old judgement: 101 MiB held at 64M, the sweep blaming no
        # one. Each reading now lowers the judgement to the measure.
        r = self.helper(64 * MIB, "stalejudge", 7, 64)
        self.assertIn("parent mapped 48 MiB", r.out, r.describe())
        survivors = self.assertSwept(r, 64 * MIB, 7)
        self.assertLessEqual(survivors, 2, r.describe())

    def stack_helper(self, limit, *args):
        """helper() under an unlimited RLIMIT_STACK (seccell caps it at the
        limit), for tests that grow a main stack past the limit."""
        if not shutil.which("prlimit"):
            self.skipTest("prlimit (util-linux) is not installed")
        return self.helper(limit, *args, prefix=["prlimit", "--stack=unlimited:unlimited", "--"])

    def test_grant_of_a_thread_blocked_in_another_call_is_over(self):
        # Found in review: a thread mapped 24 MiB and blocked reading an
        # eventfd (a wait not listed by name): its grant still counted on
        # top of the measure that showed the mapping, and the main thread's
        # 16 MiB request, which fitted (about 41 MiB in all at 64M), was
        # killed 9 runs of 10. A thread blocked in a call that is no memory
        # call (/proc/<tid>/syscall) is past its own.
        r = self.helper(64 * MIB, "grantwait", 24, 16)
        self.assertFitAndDone(r, 64 * MIB)

    def test_request_over_only_by_a_running_threads_grant_waits(self):
        # Found in CI (test_sweep_kills_the_grower_not_a_process_whose_call_waits,
        # once): a thread ran on from its mmap to its first touch as another
        # thread asked; its grant counted on top of the measure that showed
        # the mapping, and the request, which fitted, was killed. A request
        # over the limit only by grants of threads seen running is held
        # (up to 100 ms from when each was first seen so) and judged again.
        r = self.helper(64 * MIB, "grantrun", 24, 24)
        self.assertFitAndDone(r, 64 * MIB)

    def test_grant_of_a_thread_stopped_after_its_call_is_over(self):
        # Found in review: a thread stopped on its way out of its allowed
        # mmap still shows mmap in /proc/<tid>/syscall; taken as still in
        # it, its grant counted on top of the measure that showed the
        # mapping, and another process's request that fitted was killed,
        # 10 of 10. A stopped thread is past its calls (wchan, looked at
        # first).
        r = self.helper(64 * MIB, "stopgrant", 24, 24, opts=["--max-procs", "4"])
        d = r.describe()
        m = re.search(r"(?m)^mapper stopped in (-?\d+)$", r.out)
        self.assertIsNotNone(m, d)
        self.assertEqual(int(m.group(1)), 9, "the mapper did not stop on its way out of its mmap\n" + d)
        self.assertFitAndDone(r, 64 * MIB)

    def test_grant_beside_a_failed_exec_is_over(self):
        # Found in review: a thread's exec that failed (and whose thread
        # made no call after) kept every other thread's grant counted on
        # top of the measure: a thread's 24 MiB, touched, counted twice,
        # and the process's 24 MiB request, which fitted, was killed 5 of
        # 5. Another thread's stat is looked at while an exec is pending.
        r = self.helper(64 * MIB, "execgrant", 24, 24)
        self.assertIn("exec errno %d" % errno.ENOENT, r.out, r.describe())
        self.assertFitAndDone(r, 64 * MIB)

    def test_grant_in_the_judgement_is_not_counted_again(self):
        # Found in review: a thread maps 16 MiB and spins (its call cannot
        # be told over); another thread's request takes the process's
        # reading, which holds the 16 MiB, as its judgement, while the
        # grant still counted on top - and was added again when it ended.
        # The process then grew 15 MiB of main stack, unblamed, while a
        # child took the room: 72 MiB held at 64M. The stack grower is killed.
        r = self.stack_helper(64 * MIB, "grantjudged", 60, 16, 24, 17)
        d = r.describe()
        self.assertIn("filling", r.out, d)
        self.assertNotIn("survived", r.out, "72 MiB held at 64M\n" + d)
        self.assertEqual(r.rc, 137, d)
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["requested"]), (r.root, 0), d)
        self.assertGreaterEqual(k["unjudged"], 14 * MIB, d)

    def test_sweep_kills_the_grower_not_a_process_whose_call_waits(self):
        # Found in review: P's 40 MiB mmap, allowed, waited for mmap_lock
        # (another thread's MADV_POPULATE_READ) while a third thread's
        # requests re-judged P from readings without it; a rule that took
        # every grant of another thread as already in such a reading made
        # the 40 MiB unjudged once it ran. Q then grew 30 MiB of stack with
        # no request: the sweep killed P, 12 runs of 12, and Q lived. A
        # grant counts as allowed on top of the judgement until it ends.
        r = self.stack_helper(64 * MIB, "innocent")
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        p = re.search(r"(?m)^p 1 pid (\d+) (.*)$", r.out)
        q = re.search(r"(?m)^q (\d+) data (\d+)$", r.out)
        self.assertIsNotNone(p, d)
        self.assertIsNotNone(q, d)
        self.assertEqual(p.group(2), "exit 0", "P, within what it was let have, was killed\n" + d)
        self.assertEqual(q.group(2), "0", "the grower lived\n" + d)
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["requested"]), (int(q.group(1)), 0), d)
        self.assertGreaterEqual(k["unjudged"], 29 * MIB, d)

    def test_droppable_memory_is_judged_as_private(self):
        # Found in review: MAP_DROPPABLE (6.11; glibc 2.41 maps its
        # getrandom state so) is private memory in data_vm, but was taken
        # for anonymous shared memory: never judged, so when a child grew
        # its stack unjudged the sweep killed the droppable mapper, 10 of
        # 10 runs, and the grower lived. (And each such call banked the
        # creation of an object that never was, which let an object no
        # request made stand judged.)
        r = self.stack_helper(64 * MIB, "dropgrow", 56, 10)
        d = r.describe()
        if re.search(r"(?m)^error mmap: (Invalid argument|Operation not supported)$", r.out):
            self.skipTest("no MAP_DROPPABLE before Linux 6.11\n" + d)
        self.assertEqual(r.rc, 0, "the droppable mapper, within what it was let have, was killed\n" + d)
        g = re.search(r"(?m)^grower 1 pid (\d+) signal 9$", r.out)
        self.assertIsNotNone(g, "the grower lived\n" + d)
        self.assertEqual(r.lines()[-1], "done", d)
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["requested"]), (int(g.group(1)), 0), d)

    def test_shared_object_counts_whole_with_its_tail_unmapped(self):
        # Found in review: an anonymous shared object counted by the
        # furthest byte still mapped; touched, then unmapped but for its
        # first page, it kept its pages and counted 4 KiB - 4 x 48 MiB held
        # at 64M. An object counts at least its size as created (or as last
        # counted): the second is killed at its mmap, either way round.
        for keep in ("head", "tail"):
            with self.subTest(keep=keep):
                r = self.helper(64 * MIB, "shmtail", 4, 48, keep)
                d = r.describe()
                self.assertEqual(r.rc, 137, d)
                self.assertIn("object 1 held", r.out, d)
                self.assertNotIn("object 2 held", r.out, d)
                self.assertAudit(r, 64 * MIB, kills=1)
                (k,) = r.of("memory_kill")
                self.assertEqual((k["pid"], k["syscall"]), (r.root, 9), d)
                self.assertGreaterEqual(k["ledger"], 48 * MIB, "the first object not counted whole\n" + d)

    def assertRootKilledAtMmap(self, r, before, d):
        """The helper (the root) was killed at an mmap, once, and never
        printed `before`."""
        self.assertEqual(r.rc, 137, d)
        self.assertNotIn(before, r.lines(), d)
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["syscall"]), (r.root, 9), d)
        return k

    def assertSecondObjectKilled(self, cmd):
        """`cmd` 3 40 48 of the helper at 64M: its first round's 40 MiB
        object counts whole, and the root is killed at an mmap of round 2."""
        r = self.helper(64 * MIB, cmd, 3, 40, 48)
        d = r.describe()
        self.assertIn("round 1 held", r.lines(), d)
        k = self.assertRootKilledAtMmap(r, "round 2 held", d)
        self.assertGreaterEqual(k["ledger"], 40 * MIB, d)
        return k

    def test_a_request_beside_a_dying_victim_waits_for_it(self):
        # Found in review: a process the limit killed counts until its exit
        # is seen, and another's request judged in between was judged on
        # the victim's memory: of two programs growing side by side at 64M,
        # both were killed in 13 runs of 40, the second 0.2-0.5 ms after the
        # first on the same ledger. Such a request waits for the victim to
        # go (the kernel frees its memory before its pidfd says it exited),
        # as the kernel's OOM killer waits for its victim. Two children hold
        # 38 and 22 MiB and each maps 4 MiB 3,000 times: the first to cross
        # is killed, the other runs on - five runs (the unfixed build killed
        # both in 5 runs of 8).
        for run in range(5):
            with self.subTest(run=run):
                r = self.helper(64 * MIB, "racekill", 38, 22, 4, 3000)
                d = r.describe()
                self.assertEqual(r.rc, 0, d)
                ends = sorted(re.findall(r"(?m)^[ab] \d pid \d+ (.*)$", r.out))
                self.assertEqual(ends, ["exit 0", "signal 9"], d)
                self.assertAudit(r, 64 * MIB, kills=1)

    def test_shared_object_outlives_the_child_it_was_counted_under(self):
        # Found in review: an exact re-read counts an object under the
        # first holder met, the newest process: a fork child. Its exit
        # took the parent's 60 MiB object out of the ledger until the next
        # exact re-read, and the parent was let map 59 MiB more (123 MiB
        # held at 64M). What an exited process's objects stood for counts
        # until that re-read.
        r = self.helper(64 * MIB, "sharedfork", 60, 59)
        d = r.describe()
        self.assertRegex(r.out, r"(?m)^child 1 pid \d+ exit 0$", d)
        k = self.assertRootKilledAtMmap(r, "private mapped", d)
        self.assertEqual(k["requested"], 59 * MIB, d)
        self.assertGreaterEqual(k["ledger"], 60 * MIB, d)

    def test_shared_object_is_not_sized_by_a_smaller_one_gone(self):
        # Found in review: an object first met cut to a page took the size
        # of the smallest creation as large - a 4 KiB object already
        # unmapped - and 5 x 40 MiB objects hid, 252 MiB held at 64M. A
        # creation's size goes to the largest: the second round's 48 MiB
        # reservation no longer fits beside the first 40 MiB object.
        self.assertSecondObjectKilled("sharedswap")

    def test_shared_object_beside_a_failed_exec_keeps_its_size(self):
        # Found in review: an exact re-read skips the maps of a process
        # whose exec is pending (they may wait on the exec), and dropped
        # the known sizes of the objects only it holds; cut to a page, each
        # then counted 4 KiB (292 MiB held at 64M). Such a re-read keeps
        # them: the second 40 MiB object does not fit beside the first.
        k = self.assertSecondObjectKilled("execcut")
        self.assertEqual(k["requested"], 40 * MIB)

    def test_shared_objects_are_sized_by_the_kernel(self):
        # Found in review: an object's size was inferred from the sizes its
        # sandbox was let create - only the last 8 a process made, so 40
        # objects of 1 MiB cut to a page each counted 8 MiB and a page
        # apiece (240 MiB held at 64M); and an object first met while its
        # creating call was not seen over was known at its extent for good
        # (144 MiB held at 64M). A tracer started as root now reads each
        # object's size (a shmem file's i_size) through
        # /proc/<pid>/map_files: the 30 MiB after the 40 objects is killed.
        if os.geteuid() != 0:
            self.skipTest("the tracer sizes objects through map_files only when started as root")
        r = self.helper(64 * MIB, "manycut", 60, 40, 1024, 30)
        d = r.describe()
        self.assertIn("objects held 40", r.lines(), d)
        k = self.assertRootKilledAtMmap(r, "private mapped", d)
        self.assertEqual(k["requested"], 30 * MIB, d)
        self.assertGreaterEqual(k["ledger"], 40 * MIB, d)

    def assertAskerKilled(self, limit, ask, *args):
        """The helper's root, asking for `ask` MiB, is the one process
        killed, at that request, and never says "got it"."""
        r = self.helper(limit, *args)
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        self.assertNotIn("got it", r.lines(), d)
        self.assertAudit(r, limit, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["requested"]), (r.root, ask * MIB), d)
        return r

    def test_object_made_by_a_thread_of_an_exited_process_was_judged(self):
        # Found in review: an object a thread's request made, inherited by
        # a fork child of a process that then exited, lost its creation with
        # the exited process's grants and was taken for one no request made:
        # at the next crossing its holder was killed in place of the process
        # that asked. The root asks for 80 MiB beside the 40 MiB object at
        # 100M: the root is killed, the holder lives.
        r = self.assertAskerKilled(100 * MIB, 80, "orphanobject", 40, 80, 95)
        self.assertRegex(r.out, r"(?m)^middle 1 pid \d+ exit 0$", r.describe())

    def test_object_whose_call_is_in_flight_takes_its_own_creation(self):
        # Found in review: creations were matched to the objects an exact
        # re-read meets smallest-larger, in address order, so a 1 MiB
        # object whose call was in flight took an 8 MiB one's creation; the
        # 8 MiB object was taken for one no request made and its holder
        # killed in place of the root, whose request crossed. An object is
        # matched to a creation of its own size first.
        self.assertAskerKilled(64 * MIB, 56, "inflightorder", 56, 40)

    def test_shared_object_no_request_made_is_swept(self):
        # Found in review: an mmap(MAP_SHARED) whose descriptor the tracer
        # found a regular file, and another thread then dup2()'d /dev/zero
        # over, made an anonymous shared object no request was charged for:
        # 120 MiB held at 64M, and every request after the next exact
        # re-read killed while the holder never was. Such a call now makes
        # the next sweep take an exact re-read, where an object first met
        # that no creation stands for (sized by the kernel) counts as
        # unjudged: over the limit, its holder is killed. The race is won
        # on CPU 0 with the mapping thread SCHED_IDLE (most tries here).
        if os.geteuid() != 0:
            self.skipTest("objects are sized by the kernel only by a tracer started as root")
        r = self.helper(64 * MIB, "zerosmuggle", 8, 10)
        d = r.describe()
        if r.rc != 137:
            m = re.search(r"(?m)^held (\d+)$", r.out)
            held = int(m.group(1)) if m else 0
            if held * 8 * MIB < 56 * MIB:
                self.skipTest("the descriptor swap won the race %d times: within the limit\n%s" % (held, d))
            self.fail("%d x 8 MiB of objects no request made held at 64M\n%s" % (held, d))
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["requested"]), (r.root, 0), d)
        self.assertGreaterEqual(k["unjudged"], 8 * MIB, d)

    def test_dev_zero_shared_at_an_offset_charges_to_its_offset(self):
        # Found in review: /dev/zero mapped shared keeps its file offset,
        # and an object counts to the furthest byte its mappings reach: 4
        # KiB at offset 1 GiB was charged 4 KiB and counted 1 GiB at the
        # next exact re-read, so innocent requests were killed. Its request
        # is charged as it will count.
        r = self.helper(64 * MIB, "zerooffset", 1024)
        d = r.describe()
        k = self.assertRootKilledAtMmap(r, "mapped", d)
        self.assertEqual(k["requested"], 1024 * MIB + 4096, d)

    def test_remap_file_pages_is_unavailable(self):
        # Found in review: it moves a shared mapping's offset with no mmap
        # (4 KiB counted 1 GiB). Deprecated: ENOSYS under a memory limit,
        # as on a kernel without it.
        bare = subprocess.run([HELPER, "remapfile"], stdout=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(bare.stdout, "remap_file_pages errno 0\n")
        r = self.helper(64 * MIB, "remapfile")
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertIn("remap_file_pages errno %d" % errno.ENOSYS, r.lines(), d)
        self.assertAudit(r, 64 * MIB, kills=0)

    def assertGrowerKilled(self, out, kills, d):
        """grower_beside in the helper: the asker, within what it was let
        have, exited 0; the grower alone was killed, by the sweep."""
        grower = re.search(r"(?m)^grower 1 pid (\d+) (.*)$", out)
        asked = re.search(r"(?m)^asked 2 pid (\d+) (.*)$", out)
        self.assertIsNotNone(grower, d)
        self.assertIsNotNone(asked, d)
        self.assertEqual(asked.group(2), "exit 0", d)
        self.assertEqual(grower.group(2), "signal 9", d)
        self.assertEqual([k["pid"] for k in kills], [int(grower.group(1))], d)

    def test_process_whose_leader_exited_keeps_its_judgement(self):
        # Found in review: P's leader exited; its thread mapped 40 MiB,
        # allowed. The judgement took start_brk through the requesting
        # thread and compared it through the zombie leader (whose stat
        # shows 0): P was taken as a new image, all of it unjudged, and the
        # sweep killed P in place of Q, which grew 30 MiB of stack with no
        # request (10 of 10).
        r = self.stack_helper(64 * MIB, "zombieleader")
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertAudit(r, 64 * MIB, kills=1)
        self.assertGrowerKilled(r.out, r.of("memory_kill"), d)

    @unittest.skipUnless(os.geteuid() == 0, "runs the sandbox as nobody")
    def test_non_dumpable_process_keeps_its_judgement_unprivileged(self):
        # Found in review: run by an unprivileged user, the tracer has no
        # CAP_SYS_PTRACE, and a non-dumpable process's stat shows start_brk
        # 0: I was taken as a new image, all unjudged, and killed in place
        # of Q, which grew 30 MiB of stack with no request (5 of 5).
        for tool in ("prlimit", "setpriv"):
            if not shutil.which(tool):
                self.skipTest(tool + " is not installed")
        bins = binaries_for_anyone()
        self.addCleanup(shutil.rmtree, bins, True)
        shutil.copy2(HELPER, os.path.join(bins, "helper"))
        os.chmod(os.path.join(bins, "helper"), 0o755)
        out = tempfile.mkdtemp(prefix="seccell-nobody-")
        self.addCleanup(shutil.rmtree, out, True)
        os.chmod(out, 0o777)
        audit = os.path.join(out, "audit.jsonl")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=" + out, "TMPDIR=" + out,
               "prlimit", "--stack=unlimited:unlimited", "--", os.path.join(bins, "seccell"), "run",
               "--max-memory", "64M", "--audit", audit, "--", os.path.join(bins, "helper"), "nodump"]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=out,
                           timeout=HARD_TIMEOUT, env=private_env())
        events = []
        if os.path.exists(audit):
            with open(audit) as f:
                events = [json.loads(l) for l in f]
        d = "rc %d\nstdout:\n%s\nstderr:\n%s\naudit:\n%s" % (p.returncode, p.stdout, p.stderr[-2000:],
                                                           "\n".join(json.dumps(e) for e in events[-8:]))
        self.assertEqual(p.returncode, 0, d)
        self.assertGrowerKilled(p.stdout, [e for e in events if e.get("event") == "memory_kill"], d)

    def test_clone_vm_child_inherits_no_more_than_the_space_holds(self):
        # Found in review: a CLONE_VM child took over its parent's
        # judgement of 40 MiB the parent had unmapped (not notified, not
        # re-read); the parent exec'd, and the child grew the old main
        # stack 38 MiB into it, unblamed, while the new image took the
        # room: 82 MiB held at 64M. The child is killed.
        r = self.stack_helper(64 * MIB, "inheritstale", 50, 40, 38, 44)
        d = r.describe()
        m = re.search(r"(?m)^new image, child (\d+)$", r.out)
        self.assertIsNotNone(m, d)
        self.assertIn("child killed", r.out, d)
        self.assertEqual(r.rc, 0, d)
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["requested"]), (int(m.group(1)), 0), d)
        self.assertGreaterEqual(k["unjudged"], 37 * MIB, d)

    def test_vfork_images_are_swept(self):
        # Found in review: a vfork child was registered with its parent's
        # address space as its own judged measure, so an image without
        # libc no larger than that was never blamed (4 x 40 MiB beside a
        # parent's 45 MiB at 64M). A sharer owns nothing; after its exec
        # the whole image is unjudged. Beside 20 MiB one of three fits.
        if not FREEBSS:
            self.skipTest("MEM_FREEBSS not set")
        r = self.helper(64 * MIB, "vforkimages", 3, 20, FREEBSS, 64)
        self.assertEqual(self.assertSwept(r, 64 * MIB, 3), 1)

    def test_images_without_libc_are_swept(self):
        # Exec maps an image's data and bss itself; a program without libc
        # need make no request at all. Three such images of 40 MiB each,
        # touched and held, at 64M: the sweep leaves one.
        if not FREEBSS:
            self.skipTest("MEM_FREEBSS not set")
        r = self.helper(64 * MIB, "growkids", 3, FREEBSS, 40, 64)
        self.assertEqual(self.assertSwept(r, 64 * MIB, 3), 1)

    def test_shared_address_space_grown_unjudged_is_swept(self):
        # Found in review: an address space shared by two processes
        # (CLONE_VM) was blamed on neither, so what it grew with no request
        # stayed for good - 16 children with a CLONE_VM peer each grew 7 MiB
        # of stack, 114 MiB held at 64M. It is judged by the most any of its
        # processes was let have, and what grew past that is blamed on all
        # of them: a child dies with its peer, until the rest fits.
        limit, n = 64 * MIB, 16
        r = self.helper(limit, "growkids", n, "vmstack", 7, 64)
        d = r.describe()
        survivors = self.assertSwept(r, limit, n, per_kill=2)
        killed = n - survivors
        self.assertLessEqual(survivors, 64 // 7, d)
        peers = {}
        for line in r.lines():
            c = re.match(r"^child \d+ pid (\d+) peer (\d+)$", line)
            if c:
                peers[int(c.group(1))] = int(c.group(2))
        self.assertEqual(len(peers), n, d)
        # every child killed went with its peer, and nothing else went
        kills = {k["pid"] for k in r.of("memory_kill")}
        killed_kids = {p for p in peers if p in kills}
        self.assertEqual(len(killed_kids), killed, d)
        self.assertEqual(kills, killed_kids | {peers[p] for p in killed_kids}, d)

    def test_failed_exec_keeps_its_judgement(self):
        # Found in review: an exec let run voided what its process was
        # judged to have before the kernel ran it; when it failed (ENOENT)
        # the old image stayed, counted as grown unjudged, and the sweep
        # killed that process - here the root - for a child's unjudged
        # stack. A failed exec leaves the judgement as it was: the child
        # that grew is killed, the root runs on.
        limit = 64 * MIB
        r = self.helper(limit, "failexec", 58, 7)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertIn("exec errno %d" % errno.ENOENT, r.lines(), d)
        m = re.search(r"(?m)^grower 1 pid (\d+) signal 9$", r.out)
        self.assertIsNotNone(m, d)
        self.assertEqual(r.lines()[-1], "done", d)
        self.assertAudit(r, limit, kills=1)
        (kill,) = r.of("memory_kill")
        self.assertEqual(kill["pid"], int(m.group(1)), d)
        self.assertNotIn("syscall", kill, d)
        self.assertGreater(kill["unjudged"], 0, d)

class TestFileMappings(MemTestBase):

    def test_file_map_unmap_does_not_launder(self):
        # a 48 MiB file mapped MAP_PRIVATE read-only and unmapped 20 times,
        # then read-write (every page written) and unmapped 20 times; then
        # 8 MiB pieces: killed at exactly the piece that crosses 64M
        path = os.path.join(self.tmp, "file48")
        with open(path, "wb") as f:
            chunk = b"\x5a" * MIB
            for _ in range(48):
                f.write(chunk)
        r = self.helper(64 * MIB, "filecycle", path, 20, 8, 10)
        d = r.describe()
        self.assertIn("read-only rounds 20", r.out, d)
        self.assertIn("read-write rounds 20", r.out, d)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mmap")
        self.assertEqual(step[1], "mmap", d)
        self.assertEqual(len([q for q in r.reqs() if q[1] == "mmap-file" and q[4]]), 20, d)


class TestProcesses(MemTestBase):

    def test_only_the_offender_dies(self):
        # sibling B holds 20 MiB; child A asks for 100 MiB at 64M and is
        # killed; B then maps 20 MiB more and exits 0; the parent maps 20
        # MiB and exits 0
        limit = 64 * MIB
        r = self.helper(limit, "offender", 100, 20)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        m = re.search(r"^offender 1 pid (\d+) signal 9$", r.out, re.M)
        self.assertIsNotNone(m, "the offender was not killed by SIGKILL\n" + d)
        offender = int(m.group(1))
        self.assertRegex(r.out, r"(?m)^sibling 1 pid \d+ exit 0$")
        self.assertTrue(r.lines()[-1] == "parent done", d)
        self.assertAudit(r, limit, kills=1)
        (kill,) = r.of("memory_kill")
        self.assertEqual((kill["pid"], kill["tid"], kill["syscall"], kill["requested"]),
                         (offender, offender, 9, 100 * MIB), d)
        # the sibling's 20 MiB is in the ledger
        self.assertGreaterEqual(kill["ledger"], 20 * MIB, d)
        self.assertLess(kill["ledger"], 24 * MIB, d)
        self.assertEqual(r.end["status"], {"code": 0}, d)

    def test_processes_asking_at_once(self):
        # Two children map 40 MiB each at the same moment at 64M: one fits,
        # both do not. The one judged second counts the first's grant,
        # which an exact re-read of statm must not drop while that mmap may
        # not have run yet: in every round exactly one child is killed.
        limit, n = 64 * MIB, 20
        r = self.helper(limit, "procrace", n, 40, opts=["--max-procs", "4"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "done", d)
        for i in range(n):
            got = sorted(re.search(r"(?m)^status %d pid \d+ (.*)$" % k, r.out).group(1)
                         for k in (2 * i + 1, 2 * i + 2))
            self.assertEqual(got, ["exit 0", "signal 9"], "round %d\n%s" % (i + 1, d))
        self.assertAudit(r, limit, kills=n)

    def test_fork_copies_no_more_than_was_judged(self):
        # Found in review: a fork is judged on the parent's size, and its
        # copy reserved; another thread is then let map 56 MiB at 64M
        # (parent + copy + 56 fit). Mapped before the kernel copies the
        # parent, the child got it too, and was blessed at birth with it:
        # 112 MiB held, no kill, the peak shown as 56.8 MiB. The child may
        # keep only what was judged at its fork; the rest, over the limit,
        # is its unjudged growth. The race is hit by chance: tries go on
        # until 3 children got the copy (1-80 tries each here).
        limit = 64 * MIB
        r = self.helper(limit, "forkmap", 56, 3000, 3, timeout=200)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        m = re.search(r"(?m)^tries (\d+) refused (\d+) killed (\d+) late (\d+) held (\d+) plain (\d+)$", r.out)
        self.assertIsNotNone(m, d)
        tries, refused, killed, late, held, plain = (int(x) for x in m.groups())
        self.assertEqual(held, 0, "a child kept a copy of memory nobody judged past the limit\n" + d)
        self.assertNotIn("odd", r.out, d)
        self.assertEqual(killed + late, 3, "the race was not hit in %d tries\n%s" % (tries, d))
        self.assertEqual(refused + killed + late + plain, tries, d)
        self.assertAudit(r, limit, kills=3)
        victims = {int(x) for x in re.findall(r"(?m)^(?:killed|late) pid (\d+)", r.out)}
        self.assertEqual({k["pid"] for k in r.of("memory_kill")}, victims, d)
        for k in r.of("memory_kill"):
            # the copy of the mapping, unjudged: killed for no request
            self.assertEqual(k["requested"], 0, d)
            self.assertGreaterEqual(k["unjudged"], 56 * MIB, d)

    def test_clone_vm_child_is_one_address_space(self):
        # clone(CLONE_VM | SIGCHLD): a second process in the same address
        # space (the ledger is per address space; DESIGN: threads share
        # their leader's entry).  The parent holds 30 MiB, the child maps 1
        # MiB of it, the parent maps 25 MiB: the address space's measure is
        # ~58 MiB (printed before the request), under 64M.
        limit = 64 * MIB
        r = self.helper(limit, "clonevm", 30, 25)
        d = r.describe()
        self.assertFits(r, limit, nreq=3)
        self.assertRegex(r.out, r"(?m)^child 1 pid \d+ exit 0$")
        self.assertEqual(r.end["forks_allowed"], 1, d)

    def check_seq(self, limit, n, mib):
        r = self.helper(limit, "seq", n, mib)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "ready %d/%d" % (n, n), d)
        want = {"exit": "exit 0", "abort": "signal 6", "killed": "signal 9"}
        for i in range(1, n + 1):
            how = ("exit", "abort", "killed")[(i - 1) % 3]
            self.assertIn("child %d %s ready" % (i, how), r.lines(), d)
            self.assertRegex(r.out, r"(?m)^status %d pid \d+ %s$" % (i, want[how]))
        self.assertAudit(r, limit, kills=0)
        self.assertEqual(r.end["forks_allowed"], n, d)

    def test_sequential_children_40m_at_64m(self):
        # issue: 10 children one after another, each touching 40 MiB: the
        # ledger is credited when each exits
        self.check_seq(64 * MIB, 10, 40)

    def test_exit_returns_the_charge_case20(self):
        # M=256M, 10 children one after another, each touching 64 MiB and
        # ending by _exit, abort or SIGKILL
        self.check_seq(256 * MIB, 10, 64)

    def test_nested_execs(self):
        # 30 nested execs at 64M, each image growing its heap by 20 MiB:
        # exec releases the old image and resets the brk base
        limit = 64 * MIB
        r = self.helper(limit, "execchain", 30, 20)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.out, "chain end pid %d\n" % r.root, d)
        self.assertAudit(r, limit, kills=0)
        execs = r.of("exec")
        self.assertEqual(len(execs), 31, d)
        self.assertEqual({(e["pid"], e["tid"]) for e in execs}, {(r.root, r.root)}, d)

    def test_exec_resets_the_heap_base_case18(self):
        # M=64M: 20 x (fork; child sbrk(1 MiB), exec sh -c 'echo ok')
        limit = 64 * MIB
        r = self.helper(limit, "forkexec", 20, 1)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.out, "ok\n" * 20 + "forkexec 20/20\n", d)
        self.assertAudit(r, limit, kills=0)
        self.assertEqual(r.end["forks_allowed"], 20, d)
        self.assertEqual(len([e for e in r.of("exec") if e["argv"] == ["sh", "-c", "echo ok"]]), 20, d)


class TestThreads(MemTestBase):

    def test_thread_exit_keeps_the_charge_case21(self):
        # a non-leader thread (1 MiB stack) maps and touches 64 MiB and
        # exits; the 64 MiB stays in the process's measure and in the ledger
        limit = 128 * MIB
        for then, killed in ((60, False), (64, True)):
            with self.subTest(then=then):
                r = self.helper(limit, "threadmap", 64, then)
                d = r.describe()
                before = int(re.search(r"^before data (\d+)$", r.out, re.M).group(1))
                joined = int(re.search(r"^joined data (\d+)$", r.out, re.M).group(1))
                self.assertGreaterEqual(joined - before, 64 * MIB,
                                        "the thread's mapping left the measure\n" + d)
                # precondition: the outcome follows from the measure
                self.assertEqual(joined + then * MIB > limit, killed, d)
                if killed:
                    step = self.assertKilledAtCrossing(r, limit, "mmap")
                    self.assertEqual((step[0], step[2]), (2, joined), d)
                else:
                    self.assertFits(r, limit, nreq=2)

    def test_exec_from_non_leader_thread_case13(self):
        # the main thread touches 64 MiB (M=128M); another thread execs
        # sh -c 'sleep 1; echo ok': prints ok, exit 0, no process added by
        # the exec (dash forks only `sleep`), the old image released
        limit = 128 * MIB
        r = self.helper(limit, "threadexec", 64, "/bin/sh", "-c", "sleep 1; echo ok",
                        opts=["--max-procs", "8"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        m = re.search(r"^thread (\d+) execs /bin/sh$", r.out, re.M)
        self.assertIsNotNone(m, d)
        tid = int(m.group(1))
        self.assertNotEqual(tid, r.root)
        self.assertEqual(r.lines()[-1], "ok", d)
        self.assertAudit(r, limit, kills=0)
        sh = [e for e in r.of("exec") if e["argv"][:1] == ["/bin/sh"]]
        self.assertEqual([(e["pid"], e["tid"]) for e in sh], [(r.root, tid)], d)
        self.assertEqual((r.end["forks_allowed"], r.end["peak_procs"]), (1, 2), d)
        # released: the new image (the helper again) maps 100 MiB, which
        # fits in 128M only without the old image's 64 MiB + stack
        r = self.helper(limit, "threadexec", 64, "/bin/sh", "-c",
                        "echo ok; exec %s map anon 100 1" % HELPER)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertIn("ok", r.lines(), d)
        self.assertRegex(r.lines()[-1], r"^done data \d+$", d)
        self.assertAudit(r, limit, kills=0)

    def test_exec_beside_threads_asking_for_memory(self):
        # Found in review: an exec kills every other thread of its process
        # first, some parked in a brk notification; judged after that, the
        # brk's break could no longer be read ("unknown": fail closed) and
        # the kill hit the new image - 4 runs in 10 ended 137 with one
        # memory_kill. A request whose thread is gone kills no one now.
        limit, n = 64 * MIB, 30
        r = self.helper(limit, "brkexec", n, 4, opts=["--max-procs", "4"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "done", d)
        for i in range(1, n + 1):
            self.assertRegex(r.out, r"(?m)^status %d pid \d+ exit 0$" % i, d)
        self.assertAudit(r, limit, kills=0)

    def test_threads_spawning_are_not_counted_twice(self):
        # Found in review: a posix_spawn (vfork-like) child whose exec was
        # under way was counted on its own, though until its exec has
        # replaced it the address space is its creator's: its creator's
        # memory counted twice. 4 threads of a 32 MiB process spawning
        # /bin/true were killed at 64M, 96M and 128M, every run. A first
        # fix ended the sharing at the creator's VFORK_DONE, which the
        # kernel sends before the exec switches address spaces: read in
        # between, the child still showed its creator's memory, and 2 runs
        # in 100 of the first case (4 loops side by side, 2 busy CPUs) were
        # killed at a ledger of 73.6 MB. The child is now traced to its
        # exec's event, sent once the new image is in. A review of that
        # found the PATH search (posix_spawnp, execvp, subprocess.run of a
        # bare name: an exec that fails in each directory before the one
        # that runs) still killed every run: a failed exec ended the
        # child's sharing. It keeps it now.
        for threads, rounds, mib, limit in ((4, 25, 30, 64 * MIB), (8, 50, 100, 256 * MIB)):
            for path in ([], ["path"]):
                with self.subTest(threads=threads, mib=mib, path=bool(path)):
                    r = self.helper(limit, "spawnloop", threads, rounds, mib, *path, opts=["--max-procs", "32"])
                    d = r.describe()
                    self.assertEqual(r.rc, 0, d)
                    self.assertIn("spawned %d" % (threads * rounds), r.lines(), d)
                    self.assertEqual(r.lines()[-1], "done", d)
                    self.assertAudit(r, limit, kills=0)
                    w = r.end["memory_work"]
                    self.assertEqual((w["vfork_children"], w["vfork_let_go"]), (threads * rounds, 0), d)

    def test_vfork_child_traced_to_its_exec(self):
        # A vfork child is traced from its first stop to its exec's event
        # (the test above). What it may do before its exec still works
        # under that trace: a signal reaches its handler (SIGCONT too,
        # whose trap is passed over), a SIGSTOP stops it until a SIGCONT,
        # a thread it makes runs (and is not killed as a task nobody
        # announced - found in review: one with exit signal SIGCHLD, which
        # ptrace reports as a fork, was), and a child it forks is counted
        # and exits. The last three end the trace early: the child then
        # stands alone until its exec is seen over (vfork_let_go).
        limit = 64 * MIB
        for mode, mark, let_go in (("signal", 1, 0), ("cont", 1, 0), ("stop", 1, 1), ("thread", 1, 1),
                                   ("sigthread", 1, 1), ("fork", 0, 1)):
            with self.subTest(mode=mode):
                r = self.helper(limit, "vforkwatch", mode, 8, opts=["--max-procs", "8"])
                d = r.describe()
                self.assertEqual(r.rc, 0, d)
                self.assertIn("%s ok %d" % (mode, mark), r.lines(), d)
                self.assertRegex(r.out, r"(?m)^status 1 pid \d+ exit 0$", d)
                self.assertEqual(r.lines()[-1], "done", d)
                self.assertEqual(r.end["forks_allowed"], 2 if mode == "fork" else 1, d)
                self.assertEqual(r.end["execs"], 2, d)
                self.assertAudit(r, limit, kills=0)
                w = r.end["memory_work"]
                self.assertEqual((w["vfork_children"], w["vfork_let_go"]), (1, let_go), d)

    def test_brk_after_part_of_the_heap_is_made_read_only(self):
        # Found in review: the end of the first [heap] mapping was taken
        # for the break, so once an mprotect had split the heap, each brk
        # was charged the whole heap again: killed at a peak of 24 MiB of
        # 48M. The break is the end of the last [heap] piece.
        limit = 48 * MIB
        r = self.helper(limit, "heapsplit", 24, 16)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertRegex(r.lines()[-1], r"^done data \d+$", d)
        self.assertAudit(r, limit, kills=0)

    def test_threads_asking_at_once(self):
        # Two threads of one process map 40 MiB each at the same moment at
        # 64M: one fits, both do not. Whichever is judged second must count
        # the first's grant although that mmap may not have run yet (statm
        # does not show it), so every child is killed, 30 times over. Before
        # grants were kept, a re-read of statm for the second thread dropped
        # the first's, and about half the children kept both mappings.
        limit, n = 64 * MIB, 30
        r = self.helper(limit, "threadrace", n, 40, opts=["--max-procs", "4"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "done", d)
        self.assertNotIn("both mapped", r.out, "a child kept both mappings past the limit\n" + d)
        for i in range(1, n + 1):
            self.assertRegex(r.out, r"(?m)^status %d pid \d+ signal 9$" % i, d)
        self.assertAudit(r, limit, kills=n)

    def test_exited_leader_threads_still_charged(self):
        # The main thread calls pthread_exit; the process lives on in another
        # thread, which maps 40 MiB pieces at 64M.  Its measure (statm of
        # /proc/thread-self: the shared address space) counts every piece;
        # /proc/<pid>/statm of the zombie leader reads 0.  Killed at the
        # second piece, as any process would be.
        limit = 64 * MIB
        r = self.helper(limit, "leaderexit", "map", 40, 5)
        d = r.describe()
        m = re.search(r"^leader gone statm-of-pid (\d+) data (\d+)$", r.out, re.M)
        self.assertIsNotNone(m, d)
        self.assertEqual(r.rc, 137, "%d pieces of 40 MiB ran under 64M\n%s" % (
            len([q for q in r.reqs() if q[4]]), d))
        step = self.assertKilledAtCrossing(r, limit, "mmap", tid=r.of("memory_kill")[0]["tid"])
        self.assertEqual(step[0], 2, d)
        self.assertNotEqual(r.of("memory_kill")[0]["tid"], r.root, d)

    def test_requests_after_the_leader_exits(self):
        # Found in review, with the main thread exited: the break was read
        # from the leader's stat, whose start_brk then reads 0 ("unknown":
        # a 1 MiB brk was killed); shared memory was read from the
        # leader's maps, which then have no address space (the last
        # reading was kept: 16 MiB mapped and unmapped 10 times was killed
        # at 64M). Both are read through a live thread now. And a CLONE_VM
        # peer's address space was compared (kcmp) through the exited
        # leader, which has none: it looked unshared, was counted twice,
        # and 32 + 4 MiB were killed at 64M.
        limit = 64 * MIB
        for kind, mib, count in (("brk", 1, 8), ("sharedcycle", 16, 10), ("clonevm", 32, 5)):
            with self.subTest(kind=kind):
                r = self.helper(limit, "leaderexit", kind, mib, count)
                d = r.describe()
                self.assertEqual(r.rc, 0, d)
                self.assertRegex(r.lines()[-1], r"^done data \d+$", d)
                self.assertAudit(r, limit, kills=0)

    def test_shared_memory_held_by_a_process_whose_leader_exited(self):
        # Found in review: such a process's shared memory was never
        # counted (its leader's maps read empty): 10 x 48 MiB were held at
        # 64M. The second 40 MiB crosses the limit: the first is still
        # held by the child's remaining thread.
        limit = 64 * MIB
        r = self.helper(limit, "hideshared", 40, opts=["--max-procs", "4"])
        d = r.describe()
        self.assertIn("hidden in", r.out, d)
        self.assertEqual(r.rc, 137, d)
        self.assertNotIn("done", r.lines(), d)
        self.assertAudit(r, limit, kills=1)
        self.assertEqual(r.of("memory_kill")[0]["pid"], r.root, d)

    PY_THREADS = r"""
import sys, threading
stack = int(sys.argv[1])
if stack:
    threading.stack_size(stack)
def data():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[5]) * 4096
def reservations():
    n = 0
    with open('/proc/self/maps') as f:
        for line in f:
            a, b = (int(x, 16) for x in line.split()[0].split('-'))
            if line.split()[1] == '---p' and b - a >= 16 << 20:
                n += 1
    return n
bar = threading.Barrier(17)
def work():
    mine = bytearray(1 << 20)            # 1 MiB, touched
    small = [bytearray(2000) for _ in range(200)]   # from the thread's malloc arena
    bar.wait()
    bar.wait()
ts = [threading.Thread(target=work) for _ in range(16)]
for t in ts:
    t.start()
bar.wait()
print("all alive data", data(), "reservations", reservations(), flush=True)
bar.wait()
for t in ts:
    t.join()
print("joined")
"""

    def py_threads(self, limit, stack):
        return self.sandbox(limit, [SYS_PYTHON, "-c", self.PY_THREADS, stack])

    def test_python_16_threads(self):
        # issue: 16 threads each touching 1 MiB at 128M -> fine.  By the
        # defined measure each default thread stack is 8 MiB of data_vm, so
        # with default stacks the threads alone commit 128 MiB: measured
        # here at 1G, the outcome at 128M follows the measure.
        limit = 128 * MIB
        big = self.py_threads(1024 * MIB, 0)
        d = big.describe()
        self.assertEqual(big.rc, 0, d)
        m = re.search(r"^all alive data (\d+) reservations (\d+)$", big.out, re.M)
        self.assertIsNotNone(m, d)
        alive = int(m.group(1))
        self.assertAudit(big, 1024 * MIB, kills=0)
        # the tracer's peak is the measure (one process, re-read at each
        # request), within what Python allocates around the sample - plus,
        # above it, grants still counted: an allowed call counts until it
        # is seen over, and a thread that runs on after its call cannot be
        # told from one still in it, so the creating thread's last stack
        # (8 MiB, made writable by mprotect) and a worker's 1 MiB buffer
        # may count on top of the measure that already shows them
        self.assertGreaterEqual(big.end["peak_memory"], alive - 4 * MIB, d)
        self.assertLessEqual(big.end["peak_memory"], alive + 4 * MIB + 8 * MIB + 1 * MIB, d)
        r = self.py_threads(limit, 0)
        if alive > limit:
            # the measure is over 128M: some thread's stack (or buffer) is
            # the crossing request, and that kills the process
            self.assertEqual(r.rc, 137, "%d bytes of data_vm ran under 128M\n%s" % (alive, r.describe()))
            self.assertAudit(r, limit, kills=1)
            self.assertEqual(r.of("memory_kill")[0]["pid"], r.root)
            self.assertNotIn("all alive", r.out)
        else:
            self.assertEqual(r.rc, 0, r.describe())
            self.assertAudit(r, limit, kills=0)

    def test_python_16_threads_small_stacks(self):
        # the issue's point: glibc's per-thread malloc arenas are PROT_NONE
        # reservations (64 MiB each) and cost nothing; with 256 KiB stacks
        # 16 threads each touching 1 MiB fit in 128M
        limit = 128 * MIB
        r = self.py_threads(limit, 256 * 1024)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        m = re.search(r"^all alive data (\d+) reservations (\d+)$", r.out, re.M)
        self.assertIsNotNone(m, d)
        self.assertLess(int(m.group(1)), limit, d)
        self.assertGreaterEqual(int(m.group(2)), 2, "no malloc arena reservations were made\n" + d)
        self.assertEqual(r.lines()[-1], "joined", d)
        self.assertAudit(r, limit, kills=0)


class TestGrantsEnd(MemTestBase):
    """A grant (an allowed call that may not have run yet) counts on top of
    statm until its call is seen over. Seen too late, it kills requests
    that fit (found in review: every case below was killed or refused).
    A maps and touches MIB; B then asks for MIB, which fits only without
    A's grant counted on top of what statm shows."""

    def check(self, how, mib, limit):
        r = self.helper(limit, "phantom", how, mib, opts=["--max-procs", "4"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "done", d)
        self.assertAudit(r, limit, kills=0)
        return r

    def test_process_runs_on_after_unmapping(self):
        # A, another process, unmaps and spins: single-threaded, it took
        # page faults after its call
        r = self.check("proc", 120, 200 * MIB)
        self.assertRegex(r.out, r"(?m)^a 1 pid \d+ exit 0$")

    def test_thread_runs_on_after_unmapping(self):
        # A, a thread of the same process, unmaps and spins: no wait shows
        # it past its call, its page faults do
        self.check("unmap", 120, 200 * MIB)

    def test_thread_sleeps_in_epoll(self):
        self.check("epoll", 120, 200 * MIB)

    def test_thread_runs_on_holding_it(self):
        # A keeps 90 MiB and spins; B's 90 MiB fits at 200M beside it (and
        # beside 1 MiB thread stacks), not beside it twice
        self.check("keep", 90, 200 * MIB)

    def test_fork_beside_a_running_thread(self):
        # A keeps 100 MiB and spins; the main thread forks: the child's copy
        # (~100 MiB) fits at 256M; counting A's grant on top of it did not
        r = self.check("fork", 100, 256 * MIB)
        self.assertRegex(r.out, r"(?m)^forked 1 pid \d+ exit 0$")
        self.assertEqual((r.end["forks_allowed"], r.end["forks_denied"]), (1, 0), r.describe())


class TestOutOfDescriptors(MemTestBase):

    def test_registration_fails_closed(self):
        # The tracer keeps a pidfd and a statm descriptor per process. With
        # 64 descriptors it cannot register 60 children: those it cannot
        # register are killed before they run, never left to run unseen -
        # so the last child, asking for 512 MiB at 256M, dies either way.
        if not shutil.which("prlimit"):
            self.skipTest("prlimit (util-linux) is not installed")
        r = self.helper(256 * MIB, "sleepers", 60, 512, prefix=["prlimit", "--nofile=64:64", "--"])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        m = [l for l in r.lines() if l.startswith("last 1 ")]
        self.assertEqual(len(m), 1, d)
        self.assertTrue(m[0].endswith("signal 9"), "the last child was not killed\n" + d)
        self.assertIn("cannot register child", r.err, d)
        self.assertAudit(r, 256 * MIB)


class TestSysV(MemTestBase):

    def key(self, n):
        k = 0x5ECC0000 | ((os.getpid() & 0xFFF) << 4) | n
        remove_shm(k)
        self.addCleanup(remove_shm, k)
        return k

    def test_shm_200m_at_64m_cannot_be_used(self):
        r = self.helper(64 * MIB, "shm", 200)
        self.assertKilledAtCrossing(r, 64 * MIB, "shmget")
        self.assertNotIn("used", r.out)

    def test_shm_40m_at_64m_used_in_full(self):
        r = self.helper(64 * MIB, "shm", 40)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "used %d" % (40 * MIB), d)
        self.assertAudit(r, 64 * MIB, kills=0)

    def outside_segment(self, n, mib):
        """A segment of `mib` MiB made here, outside any sandbox; its id."""
        libc = ctypes.CDLL(None, use_errno=True)
        shmid = libc.shmget(ctypes.c_int(self.key(n)), ctypes.c_size_t(mib * MIB), ctypes.c_int(0o1600))
        self.assertGreaterEqual(shmid, 0, os.strerror(ctypes.get_errno()))
        return shmid

    def test_segment_made_outside_is_charged_when_attached(self):
        # Found in review: a segment made outside the sandbox (by the host,
        # an earlier run) cost nothing - 100 MiB of it touched plus 48 MiB
        # held at 64M. Its attach charges it: 40 MiB attached and touched,
        # then 40 MiB private is killed at its mmap.
        r = self.helper(64 * MIB, "shmattach", self.outside_segment(5, 40), 1, 40)
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        self.assertIn("attached 1", r.lines(), d)
        self.assertNotIn("private mapped", r.lines(), d)
        self.assertAudit(r, 64 * MIB, kills=1)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["syscall"], k["requested"]), (r.root, 9, 40 * MIB), d)
        self.assertGreaterEqual(k["ledger"], 40 * MIB, d)

    def test_segment_made_outside_is_charged_once(self):
        # attached three times, by one process: charged once, so 16 MiB
        # private beside it fits at 64M
        r = self.helper(64 * MIB, "shmattach", self.outside_segment(6, 40), 3, 16)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-2:], ["attached 3", "private mapped"], d)
        self.assertAudit(r, 64 * MIB, kills=0)
        self.assertGreaterEqual(r.end["peak_memory"], 56 * MIB, d)
        self.assertLess(r.end["peak_memory"], 64 * MIB, d)

    def test_segment_too_large_is_killed_at_its_attach(self):
        r = self.helper(64 * MIB, "shmattach", self.outside_segment(7, 100), 1, 0)
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        self.assertNotIn("attached 1", r.lines(), d)
        (k,) = r.of("memory_kill")
        self.assertEqual((k["pid"], k["syscall"], k["requested"]), (r.root, 30, 100 * MIB), d)

    def test_shm_segment_is_in_the_ledger(self):
        # a 40 MiB segment, attached and touched, then 30 MiB of anonymous
        # memory at 64M: killed at the mmap, the segment in the ledger
        r = self.helper(64 * MIB, "shmkey", self.key(1), 40, 0, 30)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mmap", extra=40 * MIB, extra_from=2)
        self.assertEqual(step[0], 2, r.describe())

    def test_removed_segments_are_credited(self):
        # 100 rounds of a 4 MiB segment created, used and removed at 64M:
        # one exists at a time, so all fit; charges that were never
        # credited would pass 64M around round 15
        r = self.helper(64 * MIB, "shmcycle", 100, 4)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "done cycled 100", d)
        self.assertAudit(r, 64 * MIB, kills=0)
        self.assertLess(r.end["peak_memory"], 16 * MIB, d)

    def test_removed_but_attached_segment_still_counts(self):
        # IPC_RMID destroys a segment only at its last detach: a removed
        # 40 MiB IPC_PRIVATE segment, still attached, is in the ledger when
        # 30 MiB of anonymous memory is asked for at 64M (the crossing
        # kills); test_shm_segment_is_in_the_ledger does it with a key
        r = self.helper(64 * MIB, "shmkey", 0, 40, 0, 30)
        step = self.assertKilledAtCrossing(r, 64 * MIB, "mmap", extra=40 * MIB, extra_from=2)
        self.assertEqual(step[0], 2, r.describe())

    def test_keyed_and_private_segments_cannot_launder(self):
        # each round: a private segment (removed, so it lists with key 0)
        # and a keyed one of the same size, exact re-reads around the
        # private one's end; the keyed ones stay: 16 MiB more each round.
        # Round 3's keyed segment would bring 64M to 64.5 MiB: killed there.
        base = self.key(8)
        for n in (9, 10, 11):
            self.key(n)
        r = self.helper(64 * MIB, "shmpair", 4, 16, base)
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        self.assertAudit(r, 64 * MIB, kills=1)
        self.assertIn("round 2 keyed %d" % (32 * MIB), r.lines(), d)
        self.assertFalse([l for l in r.lines() if l.startswith("round 3")], d)

    def test_failed_shmget_is_not_charged_for_ever(self):
        # three children each ask for a 32 MiB huge-page segment and exit;
        # where no huge pages are reserved the shmget fails (ENOMEM) and
        # creates nothing, where it succeeds the segment is removed at once.
        # Either way nothing is left: the parent's 40 MiB fit in 64M.
        r = self.helper(64 * MIB, "shmkids", 3, 32, 40)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "done", d)
        self.assertEqual(len([l for l in r.lines() if re.match(r"child \d+ shmget ", l)]), 3, d)
        self.assertAudit(r, 64 * MIB, kills=0)

    def test_huge_page_segment_charged_whole_pages(self):
        # Found in review: a shmget(SHM_HUGETLB) segment was charged its
        # size rounded to 4 KiB, but the kernel makes it of whole huge
        # pages (the default size, or the one its flags ask for). 4 KiB
        # asked beside 63 MiB at 64M takes a 2 MiB page: killed at the
        # shmget, as is a 1 GiB page asked for beside 8 MiB (where the
        # kernel has such pages; with none reserved the call would fail,
        # but it is judged on what it asks, before it runs).
        limit = 64 * MIB
        for hold, log in ((63, 0), (8, 30)):
            with self.subTest(log=log):
                r = self.helper(limit, "shmhuge", hold, 4, log)
                if r.lines() == ["nohuge"]:
                    continue  # no such huge pages here
                step = self.assertKilledAtCrossing(r, limit, "shmget")
                self.assertEqual(step[0], 2, r.describe())
                self.assertGreaterEqual(step[3], 2 * MIB, r.describe())

    def test_shm_lookup_is_not_charged_again(self):
        # issue: "shmget segment sizes (once per segment, not per lookup)".
        # A 40 MiB segment created, then looked up twice with
        # shmget(key, size, IPC_CREAT) - the same segment, nothing created -
        # attached and touched: 40 MiB at 64M fits.
        limit = 64 * MIB
        r = self.helper(limit, "shmkey", self.key(2), 40, 2, 0)
        d = r.describe()
        self.assertEqual(r.rc, 0, "a lookup of an existing segment was charged\n" + d)
        self.assertEqual(r.lines()[-1], "done", d)
        self.assertAudit(r, limit, kills=0)

    # shmget(key, size, IPC_CREAT) of an existing key is answered by the
    # tracer itself (a continued call could create a segment uncharged if
    # the key were removed before it ran): its answers must be the
    # kernel's. Probed bare and sandboxed on a segment that nobody created
    # (mode 0604), so root meets its "others" bits - and, having dropped
    # CAP_IPC_OWNER, is refused what they do not grant.
    LOOKUPS = r"""
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
key, mib = int(sys.argv[1]), 1 << 20
IPC_CREAT, IPC_EXCL = 0o1000, 0o2000
def get(size, flags):
    ctypes.set_errno(0)
    r = libc.shmget(ctypes.c_int(key), ctypes.c_size_t(size), ctypes.c_int(flags))
    return r if r >= 0 else -ctypes.get_errno()
out = [get(mib, IPC_CREAT | 0o600)]
# capset(2): CAP_IPC_OWNER (15) out of the effective and permitted sets
hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
data = (ctypes.c_uint32 * 6)()
assert libc.syscall(125, hdr, data) == 0
data[0] &= ~(1 << 15); data[1] &= ~(1 << 15)
assert libc.syscall(126, hdr, data) == 0
for size, flags in ((mib, IPC_CREAT | 0o600), (mib, IPC_CREAT | 0o040), (mib, IPC_CREAT | 0o004),
                    (mib, IPC_CREAT), (mib // 2, IPC_CREAT | 0o444), (2 * mib, IPC_CREAT),
                    (mib, IPC_CREAT | IPC_EXCL), (mib, 0o600)):
    out.append(get(size, flags))
print(json.dumps(out))
"""

    def test_lookups_answered_as_the_kernel_does(self):
        k = self.key(3)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                os.setgid(65534)
                os.setgroups([])
                os.setuid(65534)
                libc = ctypes.CDLL(None, use_errno=True)
                shmid = libc.shmget(ctypes.c_int(k), ctypes.c_size_t(MIB), ctypes.c_int(0o1000 | 0o604))
                os.write(w, str(shmid).encode())
            finally:
                os._exit(0)
        os.close(w)
        shmid = int(os.read(r, 64))
        os.close(r)
        os.waitpid(pid, 0)
        self.assertGreaterEqual(shmid, 0)
        bare = subprocess.run([SYS_PYTHON, "-c", self.LOOKUPS, str(k)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=HARD_TIMEOUT)
        self.assertEqual(bare.returncode, 0, bare.stderr)
        want = [shmid, -errno.EACCES, shmid, shmid, shmid, shmid, -errno.EINVAL, -errno.EEXIST, -errno.EACCES]
        self.assertEqual(json.loads(bare.stdout), want)
        # a root client's sandbox has no capability (no CAP_IPC_OWNER): as
        # the kernel answers root without capabilities, the first lookup
        # of the other user's 0604 segment is refused
        capless = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all",
                                  SYS_PYTHON, "-c", self.LOOKUPS, str(k)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=HARD_TIMEOUT)
        self.assertEqual(capless.returncode, 0, capless.stderr)
        want = json.loads(capless.stdout)
        if os.geteuid() == 0:
            self.assertEqual(want, [-errno.EACCES] + json.loads(bare.stdout)[1:])
        r = self.sandbox(64 * MIB, [SYS_PYTHON, "-c", self.LOOKUPS, str(k)])
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(json.loads(r.out), want, r.describe())
        self.assertAudit(r, 64 * MIB, kills=0)


class TestPython(MemTestBase):

    def test_bytearray_200m_at_64m_killed(self):
        limit = 64 * MIB
        r = self.sandbox(limit, [SYS_PYTHON, "-c", "b = bytearray(200 << 20); print('alive')"],
                         opts=["--summary"])
        d = r.describe()
        self.assertEqual(r.rc, 137, d)
        self.assertEqual(r.out, "", d)
        self.assertAudit(r, limit, kills=1)
        (kill,) = r.of("memory_kill")
        self.assertEqual((kill["pid"], kill["tid"]), (r.root, r.root), d)
        self.assertGreaterEqual(kill["requested"], 200 * MIB, d)
        self.assertEqual(r.end["status"], {"signal": 9, "core_dumped": False}, d)
        # the exit event names the root, killed by signal 9
        self.assertIn({"pid": r.root, "status": {"signal": 9, "core_dumped": False}},
                      [{"pid": e["pid"], "status": e["status"]} for e in r.of("exit")], d)
        lines = [l for l in r.err.splitlines() if l.startswith("seccell: summary:")]
        self.assertEqual(len(lines), 1, d)
        m = SUMMARY_RE.match(lines[0])
        self.assertIsNotNone(m, "summary format: %r" % lines[0])
        self.assertEqual(m.groups(), (format_size(r.end["peak_memory"]), "64 MiB", "1"), lines[0])

    def test_tiny_limit_says_why(self):
        # Found in review: at --max-memory 4k the stack and data limits,
        # capped to it, left the kernel no room to set up the image: the
        # exec died with SIGSEGV (139) and no word; later every command was
        # killed at its first request ("64" is 64 bytes). Below 1 MiB, in
        # which no program can run, the limit is refused before anything
        # runs.
        r = self.sandbox(4096, ["/bin/true"])
        d = r.describe()
        self.assertEqual(r.rc, 125, d)
        self.assertIn("less than 1 MiB", r.err, d)
        self.assertEqual(r.events, [], d)

    def test_bytearray_20m_at_64m_fine(self):
        limit = 64 * MIB
        r = self.sandbox(limit, [SYS_PYTHON, "-c", "b = bytearray(20 << 20); print('alive')"])
        d = r.describe()
        self.assertEqual((r.rc, r.out), (0, "alive\n"), d)
        self.assertAudit(r, limit, kills=0)
        self.assertGreater(r.end["peak_memory"], 20 * MIB, d)

    def test_imports_at_128m(self):
        limit = 128 * MIB
        r = self.sandbox(limit, [SYS_PYTHON, "-c", "import json, sqlite3, ssl, asyncio; print('ok')"])
        d = r.describe()
        self.assertEqual((r.rc, r.out), (0, "ok\n"), d)
        self.assertAudit(r, limit, kills=0)


class TestBuilds(MemTestBase):

    def test_gcc_O2_3000_functions_at_512m(self):
        src = os.path.join(self.tmp, "big.c")
        with open(src, "w") as f:
            for i in range(3000):
                f.write("int f%d(int x) { int s = 0; for (int i = 0; i < x; i++) "
                        "s += (i * %d) ^ (s >> 3); return s + %d; }\n" % (i, i, i))
        limit = 512 * MIB
        r = self.sandbox(limit, ["/usr/bin/gcc", "-O2", "-c", src, "-o", "big.o"],
                         timeout=BUILD_TIMEOUT)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertAudit(r, limit, kills=0)
        self.assertGreater(os.path.getsize(os.path.join(self.tmp, "big.o")), 0)

    def test_make_j2_at_512m(self):
        proj = os.path.join(self.tmp, "proj")
        os.mkdir(proj)
        objs = []
        for m in range(8):
            with open(os.path.join(proj, "m%d.c" % m), "w") as f:
                for i in range(100):
                    f.write("int m%d_f%d(int x) { return x * %d + %d; }\n" % (m, i, i + 1, m))
                f.write("int m%d_sum(void) { int s = 0;\n" % m)
                for i in range(100):
                    f.write("  s += m%d_f%d(%d);\n" % (m, i, i))
                f.write("  return s; }\n")
            objs.append("m%d.o" % m)
        with open(os.path.join(proj, "main.c"), "w") as f:
            f.write("#include <stdio.h>\n")
            for m in range(8):
                f.write("int m%d_sum(void);\n" % m)
            f.write("int main(void) { long s = 0;\n")
            for m in range(8):
                f.write("  s += m%d_sum();\n" % m)
            f.write('  printf("%ld\\n", s); return 0; }\n')
        with open(os.path.join(proj, "Makefile"), "w") as f:
            f.write("CC = gcc\nCFLAGS = -O2\nOBJS = main.o %s\n" % " ".join(objs))
            f.write("prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n")
            f.write("%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n")
        want = sum(i * (i + 1) + m for m in range(8) for i in range(100))
        limit = 512 * MIB
        r = self.sandbox(limit, ["/usr/bin/make", "-j2"], cwd=proj, timeout=BUILD_TIMEOUT)
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertAudit(r, limit, kills=0)
        out = subprocess.run([os.path.join(proj, "prog")], stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(out.stdout.decode(), "%d\n" % want)


class TestLedgerAccuracy(MemTestBase):
    """The ledger against the sum of statm field 6 over the live sandbox
    processes (issue: within max(5%, 4 MiB), sampled at many points), for a
    Python workload that grows and frees memory (ledger_workload.py).

    Two observations of the tracer, each deterministic:

    * probes: at each sample point, with the workload quiescent, a probe
      process measures the sum S (itself included) and asks for
      LIMIT - S + T bytes, then LIMIT - S - T (T = max(4 MiB, 5% of S)).
      The first must be killed, with memory_kill.ledger within T of S;
      the second must be allowed.  An under-counting ledger lets the
      first through; an over-counting one (after its exact re-read) kills
      the second.
    * peak: without probes, the workload prints S after every growth (where
      the maximum is); sandbox_end.peak_memory must be within T of the
      largest S.
    """

    LIMIT = 512 * MIB

    def workload(self, mode, scenario):
        r = self.sandbox(self.LIMIT, [SYS_PYTHON, os.path.join(HERE, "ledger_workload.py"),
                                      HELPER, self.LIMIT, mode, scenario])
        d = r.describe()
        self.assertEqual(r.rc, 0, d)
        self.assertEqual(r.lines()[-1], "workload done", d)
        self.assertAudit(r, self.LIMIT)
        return r

    def check_probes(self, scenario):
        r = self.workload("probe", scenario)
        d = r.describe()
        pat = re.compile(r"^point (\S+) ([+-]) rc (-?\d+) probe sum (\d+) procs (\d+) "
                         r"tol (\d+) grow (\d+)(.*)$")
        points = [pat.match(l) for l in r.lines() if l.startswith("point ")]
        self.assertTrue(points and all(points), d)
        kills = r.of("memory_kill")
        n_up = 0
        bad = []
        for m in points:
            label, sign, rc, s, tol = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(6))
            if sign == "+":
                if rc != -9:
                    bad.append("%s: the ledger is more than %d below the statm sum %d "
                               "(a request for LIMIT - sum + %d was allowed)" % (label, tol, s, tol))
                    continue
                k = kills[n_up]
                n_up += 1
                if abs(k["ledger"] - s) > tol:
                    bad.append("%s: memory_kill ledger %d vs statm sum %d" % (label, k["ledger"], s))
            elif rc != 0:
                bad.append("%s: the ledger is more than %d above the statm sum %d "
                           "(a request for LIMIT - sum - %d got rc %d)" % (label, tol, s, tol, rc))
        self.assertEqual(len(kills), n_up, d)
        self.assertEqual(bad, [], d)

    def check_peak(self, scenario):
        r = self.workload("sample", scenario)
        d = r.describe()
        sums = [(m.group(1), int(m.group(2))) for m in
                (re.match(r"^point (\S+) sum (\d+)$", l) for l in r.lines()) if m]
        self.assertTrue(sums, d)
        top = max(s for _, s in sums)
        tol = max(4 * MIB, top // 20)
        self.assertEqual(r.end["memory_kills"], 0, d)
        peak = r.end["peak_memory"]
        self.assertLessEqual(abs(peak - top), tol,
                             "peak_memory %d vs the largest statm sum %d (%r)\n%s" % (peak, top, sums, d))

    def test_single_process(self):
        with self.subTest(check="probes"):
            self.check_probes("single")
        with self.subTest(check="peak"):
            self.check_peak("single")

    def test_forked_child(self):
        # a forked child's address space (its inherited copy: statm counts
        # it in full) is part of the measure from its birth
        with self.subTest(check="probes"):
            self.check_probes("forked")
        with self.subTest(check="peak"):
            self.check_peak("forked")

    def test_spawned_worker(self):
        # memory the root freed is not in the measure when a worker grows
        with self.subTest(check="probes"):
            self.check_probes("spawned")
        with self.subTest(check="peak"):
            self.check_peak("spawned")


class TestSharedTracer(MemTestBase):
    """One tracer serves every sandbox of a daemon broker: what one sandbox
    makes its memory judgements cost must not hold the others."""

    def start_daemon(self):
        d = tempfile.mkdtemp(prefix="seccell-memory-daemon-", dir="/tmp")
        self.addCleanup(shutil.rmtree, d, True)
        r, w = os.pipe()
        broker = os.path.join(os.path.dirname(SECCELL), "seccell-broker")
        p = subprocess.Popen([broker, "--dir", d, "--ready-fd", str(w)], pass_fds=(w,),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True, env=private_env())
        os.close(w)
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.wait, 30)
        self.addCleanup(p.terminate)
        with os.fdopen(r, "rb", buffering=0) as ready:
            self.assertEqual(read_line(ready, 30), b"r", "the daemon did not get ready")
        return d, p

    MANY_MAPPINGS = r"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
n, rounds = int(sys.argv[1]), int(sys.argv[2])
base = libc.mmap(None, 2 * n * 4096, 0, 0x22, -1, 0)      # PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS
for i in range(n):
    libc.mprotect(base + i * 8192, 4096, 1)                 # a read-only page: a mapping of its own
for _ in range(rounds):
    m = mmap.mmap(-1, 1 << 20)                              # MAP_SHARED|MAP_ANONYMOUS
    m[0] = 1
    m.close()
print("done")
"""

    def test_program_of_many_mappings_is_not_killed_while_its_budget_is_spent(self):
        # Found in review: with the exact re-reads over their share, the
        # requests were judged on last readings, which still held every
        # 1 MiB of shared memory mapped and unmapped since: killed at
        # "peak 1023.9 MiB of 1 GiB", its data_vm about 5 MiB. Such a
        # request now waits for the exact look.
        r = self.sandbox(1 << 30, [SYS_PYTHON, "-c", self.MANY_MAPPINGS, "30000", "3000"], opts=["--summary"])
        d = r.describe()
        self.assertEqual((r.rc, r.out), (0, "done\n"), d)
        self.assertAudit(r, 1 << 30, kills=0)
        self.assertLess(r.end["peak_memory"], 64 << 20, d)

    def start_attacker(self, d, opts, helper_args):
        """A sandbox of the daemon in `d` running the helper, once it says
        "armed"; it ends (137) when its stdin is closed. Its audit record
        goes to attacker.audit_path."""
        audit = os.path.join(d, "attacker-audit.jsonl")
        attacker = subprocess.Popen(
            [SECCELL, "run", "--broker", d, "--audit", audit] + opts + ["--", HELPER] + helper_args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            env=private_env())
        attacker.audit_path = audit
        self.addCleanup(attacker.stderr.close)
        self.addCleanup(attacker.stdout.close)
        self.addCleanup(attacker.wait, 60)
        self.addCleanup(attacker.stdin.close)
        lines = []
        while not lines or lines[-1] not in (b"armed\n", b""):
            lines.append(read_line(attacker.stdout, HARD_TIMEOUT))
        self.assertEqual(lines[-1], b"armed\n", lines)
        return attacker

    def work_beside(self, d, opts, helper_args, until=None):
        """Another user's /bin/true runs (runs_beside) go on beside a
        sandbox of the helper, which is then ended (once it has said a
        line starting with `until`, if given): its sandbox_end, whose
        memory_work says what judging its memory cost the tracer - counts
        of work, which the tests bound instead of timing the runs."""
        attacker = self.start_attacker(d, opts, helper_args)
        self.runs_beside(d)
        line = b""
        while until and not line.startswith(until.encode()):
            line = read_line(attacker.stdout, HARD_TIMEOUT)
            self.assertTrue(line, "the helper ended before saying %r" % until)
        attacker.stdin.close()
        self.assertEqual(attacker.wait(timeout=60), 137)
        with open(attacker.audit_path) as f:
            ends = [e for e in map(json.loads, f) if e["event"] == "sandbox_end"]
        self.assertEqual(len(ends), 1, ends)
        self.assertIn("memory_work", ends[0])
        return ends[0]

    def runs_beside(self, d, seconds=6):
        """Another user's /bin/true runs beside an attacker (at least five,
        for `seconds` at least: a re-read the attacker's budget defers
        comes within them), each of which must succeed."""
        runs = 0
        begin = time.monotonic()
        while runs < 5 or time.monotonic() - begin < seconds:
            r = subprocess.run([SECCELL, "run", "--broker", d, "--max-procs", "10", "--", "/bin/true"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=HARD_TIMEOUT,
                               env=private_env())
            self.assertEqual(r.returncode, 0, r.stderr)
            runs += 1

    def test_costly_exact_rereads_are_held_to_a_share_of_the_tracer(self):
        # Found in review: 20 processes with 30k mappings each, and a
        # CLONE_VM peer that sends every sweep (10 a second) to the exact
        # re-read of every process's maps, under the one tracer lock: each
        # of another user's runs took 8-11 s instead of 0.03 s. A user's
        # exact re-reads now take at most 1/READ_BUDGET_SHARE (10) of the
        # tracer's time, after a first burst of READ_BUDGET_BURST_NS (1 s)
        # at that share; a re-read already begun runs to its end.
        d, daemon = self.start_daemon()
        log = []
        reader = threading.Thread(target=lambda: log.append(daemon.stderr.read()), daemon=True)
        reader.start()
        end = self.work_beside(d, ["--max-memory", "100M"], ["manyvmas", "20", "30000", "60"])
        daemon.terminate()
        daemon.wait(timeout=30)
        reader.join(30)
        said = log[0].decode(errors="replace") if log else ""
        # the budget held the attacker's user back, and said so once
        self.assertEqual(said.count("exact memory re-reads are over their share of the tracer's time"), 1, said)
        w = end["memory_work"]
        self.assertGreater(w["exact_rereads"], 1, end)
        # the tracer's own clock: what the re-reads took is within the share
        # of the sandbox's life (plus the burst, and the last re-read,
        # which the budget lets begin)
        share = (end["duration_ns"] + 10 ** 9) // 10 + w["exact_max_ns"]
        self.assertLessEqual(w["exact_ns"], share, end)

    def test_looking_up_one_mapping_does_not_read_every_mapping(self):
        # Found in review: a brk (where is the break?) or an mremap (is it
        # the main stack?) read the requester's maps text from its start,
        # under the one tracer lock and outside any budget: three processes
        # of 64k free mappings below their heaps, each calling brk and
        # mremap in a loop, made each call cost 40-80 ms, and another
        # user's five /bin/true runs took about 20 s. One mapping is now
        # looked up by address (PROCMAP_QUERY, Linux 6.11: before it the
        # text is read, and this cost is back).
        if tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2]) < (6, 11):
            self.skipTest("PROCMAP_QUERY needs Linux 6.11")
        d, _ = self.start_daemon()
        end = self.work_beside(d, ["--max-memory", "1G", "--max-procs", "8"], ["vmaspin", "3", "32000"])
        w = end["memory_work"]
        self.assertGreater(w["requests"], 100, end)
        # a mapping or two a request (the text: 32,000 each)
        self.assertLessEqual(w["mappings_examined"], 3 * w["requests"], end)

    def test_shared_address_spaces_are_known_without_asking_every_process(self):
        # Found in review: once a vfork had been allowed, whether a
        # requester shared its address space was asked of every other
        # process (kcmp, 2 us each) at each request, and each exact re-read
        # asked it of every pair, under the one tracer lock: with 3,000
        # processes each mmap cost 55 ms, and one re-read held every
        # sandbox for about 8 s. Sharing is now known from birth (one kcmp
        # with the creator) and exec.
        d, _ = self.start_daemon()
        end = self.work_beside(d, ["--max-memory", "8G", "--max-procs", "3100"], ["vmforest", "3000"])
        w = end["memory_work"]
        self.assertGreaterEqual(end["forks_allowed"], 3000, end)
        self.assertGreater(w["requests"], 100, end)
        # at most one at each birth and each exec (before: one with every
        # process at each request, 3,000 a request)
        self.assertLessEqual(w["kcmp"], end["forks_allowed"] + end["execs"], end)

    def test_exact_reread_of_many_shared_objects(self):
        # Found in review: each shared object a re-read met was looked up
        # in a list of those seen before it, so one re-read of 60,000
        # one-page objects (met twice: a forked child maps them too) held
        # every sandbox for 5-11 s under the one tracer lock. The objects
        # are now in a hash table.
        d, _ = self.start_daemon()
        # a child killed: an exact re-read met the parent's 60,000 mappings
        # (a child's read at once after its fork, through PROCMAP_QUERY,
        # was seen to stop short of its 60,000 - 27,232 read: see the notes)
        end = self.work_beside(d, ["--max-memory", "1G", "--max-procs", "8"], ["sharedmany", "60000"],
                               until="killed")
        w = end["memory_work"]
        self.assertGreaterEqual(w["shared_objects"], 60000, end)
        # a few slots a lookup (a list: half the objects seen, 30,000 on average)
        self.assertLessEqual(w["shared_object_probes"], 4 * w["shared_objects"], end)

    def test_descriptor_looks_do_not_hold_other_sandboxes(self):
        # Found in review: an mmap(MAP_SHARED) of a file has its descriptor
        # looked at (is it /dev/zero?) through /proc fdinfo, which the
        # kernel renders whole - every POSIX lock on the file, every
        # inotify watch, every epoll target - under the one tracer lock:
        # with 20,000 locks, each of another user's runs took 1-20 s. The
        # look is now made on the sandbox's own receiver thread.
        d, _ = self.start_daemon()
        end = self.work_beside(d, ["--max-memory", "1G"], ["fdlocks", "20000"])
        w = end["memory_work"]
        self.assertGreater(w["fd_looks"], 0, end)
        self.assertEqual(w["fd_looks_on_main_loop"], 0, end)

if __name__ == "__main__":
    unittest.main()
