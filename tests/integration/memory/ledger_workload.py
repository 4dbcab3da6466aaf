"""Ledger-accuracy workload: run as the sandbox root by test_memory.py
(TestLedgerAccuracy), under /usr/bin/python3.

argv: HELPER LIMIT MODE SCENARIO

The workload grows and frees private memory (mmap objects, MAP_PRIVATE |
MAP_ANONYMOUS, every page touched) in fixed phases.  After each phase it
stops at a sample point, with every sandbox process quiescent:

  MODE sample: prints "point LABEL sum S", S = the sum of /proc/<pid>/statm
      field 6 over the live sandbox processes (itself and its children).
  MODE probe:  runs `HELPER probe ROOT LIMIT +` and `... -`: the probe
      measures the same sum S (itself included) and asks for
      LIMIT - S + T and LIMIT - S - T bytes (T = max(4 MiB, S/20)): with a
      ledger within T of S the first is killed and the second allowed.
      Prints "point LABEL SIGN rc RC <the probe's output>".

SCENARIO single: one process, grows 3 x 40 MiB, frees 2, grows 60, frees all.
SCENARIO forked: grows 40 MiB, forks a child that holds its inherited copy
    (no request of its own), then grows 30 MiB in the child, reaps it.
SCENARIO spawned: grows 100 MiB and frees it, then a new python (vfork+exec)
    grows 50 MiB while the root holds nothing.
"""
import mmap
import os
import subprocess
import sys

HELPER, LIMIT, MODE, SCENARIO = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ROOT = os.getpid()
MIB = 1 << 20
held = []
kids = []  # live children, for the statm sum


def statm_data(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[5]) * 4096
    except (OSError, IndexError):
        return 0


def grow(mib, into=None):
    m = mmap.mmap(-1, mib * MIB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for off in range(0, mib * MIB, 4096):
        m[off] = 1
    (held if into is None else into).append(m)


def point(label):
    if MODE == "sample":
        s = statm_data(ROOT) + sum(statm_data(p) for p in kids)
        print("point %s sum %d" % (label, s), flush=True)
        return
    for sign in "+-":
        p = subprocess.run([HELPER, "probe", str(ROOT), str(LIMIT), sign],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        print("point %s %s rc %d %s" % (label, sign, p.returncode,
                                        " | ".join(p.stdout.decode().splitlines())), flush=True)


def single():
    point("start")
    for i in range(3):
        grow(40)
        point("grown-%d" % (i + 1))
    held.pop().close()
    held.pop().close()
    point("freed-2")
    grow(60)
    point("grown-60")
    while held:
        held.pop().close()
    point("freed-all")


def forked():
    grow(40)
    point("grown")
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.close(r2)
            os.read(r, 1)  # hold the inherited copy
            mine = []
            grow(30, mine)  # then grow in the child
            os.write(w2, b"g")
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    os.close(w2)
    kids.append(pid)
    point("forked")
    os.write(w, b"1")
    if os.read(r2, 1) != b"g":
        raise SystemExit("child died before it grew")
    point("child-grew")
    os.write(w, b"2")
    os.waitpid(pid, 0)
    kids.remove(pid)
    point("child-reaped")
    while held:
        held.pop().close()
    point("freed-all")


WORKER = r"""
import mmap, sys
m = mmap.mmap(-1, 50 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for off in range(0, 50 << 20, 4096):
    m[off] = 1
print("grown", flush=True)
sys.stdin.read()
"""


def spawned():
    grow(100)
    point("grown-100")
    held.pop().close()
    point("freed-100")
    w = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    kids.append(w.pid)
    if w.stdout.readline() != b"grown\n":
        raise SystemExit("worker died before it grew")
    point("worker-grew")
    w.stdin.close()
    w.wait(timeout=60)
    kids.remove(w.pid)
    point("worker-done")


{"single": single, "forked": forked, "spawned": spawned}[SCENARIO]()
print("workload done", flush=True)
