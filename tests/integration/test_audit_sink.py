"""--audit sinks that do not take their writes: a pipe nobody reads, a file
on a stalled file system.

Found in review: the tracer wrote each audit line with a blocking write(2)
under its one lock, so `seccell run --audit /dev/stdout ... | sleep 25` as
one user held every other user's runs ("no answer from the tracer: Timed
out") and froze the running sandboxes until `sleep` exited. Each sink now
has a writer thread of its own and a bounded queue: a stuck sink holds only
its own record; the end of its run waits for it a bounded time; whatever it
did not take is reported ("N audit events could not be written to FILE:
the file did not keep up") and shows as a seq gap, never silently."""

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import termios
import threading
import time

from harness import (SECCELL, SeccellTestCase, binaries_for_anyone, errtext, load_json_lines, proc_stat, descendants,
                     read_line, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
SYS_PYTHON = "/usr/bin/python3"
PIPE_CAPACITY = 65536     # a FIFO's default, in bytes (16 pages)


def as_nobody():
    """preexec_fn: become nobody (uid and gid 65534, no groups)."""
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)


def fionread(fd):
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, "little")


def try_open_writer(path):
    """A write descriptor of FIFO `path` if a reader has it open, else None."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


class Reader(threading.Thread):
    """Reads a descriptor to EOF (at most `timeout` seconds)."""

    def __init__(self, fd, timeout=120):
        super().__init__(daemon=True)
        self.fd, self.timeout, self.data, self.eof = fd, timeout, bytearray(), False

    def run(self):
        import select
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                continue
            try:
                b = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            if not b:
                self.eof = True
                return
            self.data += b

    def lines(self):
        text = bytes(self.data).decode()
        assert text.endswith("\n") or not text, "the record ends in a fragment: %r" % text[-200:]
        return [json.loads(line) for line in text.splitlines()]


class AuditSink(SeccellTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="seccell-sink-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start_daemon(self):
        d = tempfile.mkdtemp(prefix="seccell-daemon-")
        self.addCleanup(shutil.rmtree, d, True)
        r, w = os.pipe()
        broker = os.path.join(os.path.dirname(SECCELL), "seccell-broker")
        p = self.popen([broker, "--dir", d, "--ready-fd", str(w)], pass_fds=(w,), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        os.close(w)
        with os.fdopen(r, "rb", buffering=0) as ready:
            self.assertEqual(read_line(ready, 30), b"r", "the daemon did not get ready: %s" % errtext(p))
        self.daemon = p
        return d

    def tracer_tasks(self):
        # one read per process: a sandbox's process can exit between two
        # (found by CI: the second read gave None)
        tracer = [p for p, st in ((p, proc_stat(p)) for p in descendants(self.daemon.pid))
                  if st and st[0] == "seccell-tracer"]
        self.assertEqual(len(tracer), 1)
        return ["/proc/%d/task/%s" % (tracer[0], t) for t in os.listdir("/proc/%d/task" % tracer[0])]

    def tracer_threads(self):
        return len(self.tracer_tasks())

    def tracer_waits_in_pipe_write(self):
        """Whether a thread of the tracer sleeps in a write to a full pipe."""
        for task in self.tracer_tasks():
            try:
                with open(task + "/wchan") as f:
                    if "pipe_write" in f.read():
                        return True
            except FileNotFoundError:
                pass
        return False

    def fifo(self, name):
        path = os.path.join(self.dir, name)
        os.mkfifo(path)
        os.chmod(path, 0o666)
        return path

    def stuck_fifo(self):
        """A FIFO for --audit, and its read end, open and never read (until
        the test reads it)."""
        path = self.fifo("audit")
        rd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.addCleanup(os.close, rd)
        return path, rd

    def nobody_client(self):
        """The seccell client, copied where nobody can reach it (the build
        tree may sit in a directory only root may enter)."""
        if not getattr(self, "nobody_bin", None):
            self.nobody_bin = binaries_for_anyone(("seccell",))
            self.addCleanup(shutil.rmtree, self.nobody_bin, True)
        return os.path.join(self.nobody_bin, "seccell")

    def nobody_run(self, d, audit, script):
        """`seccell run --broker d --audit audit -- /bin/sh -c script` as
        nobody, not waited for."""
        return self.popen([self.nobody_client(), "run", "--broker", d, "--audit", audit, "--", "/bin/sh", "-c", script],
                          cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, preexec_fn=as_nobody)

    def assert_other_runs_served(self, d):
        """Root's run through the same daemon, with an audit file of its own,
        succeeds and its record is whole: the stuck sink holds nothing else
        (a generous bound: before the fix it failed after 10 s)."""
        own = os.path.join(self.dir, "root.jsonl")
        r = self.seccell(["run", "--broker", d, "--audit", own, "--", "/bin/echo", "ok"], timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, b"ok\n"), r.stderr)
        ev = load_json_lines(own)
        self.assertEqual([e["seq"] for e in ev], list(range(1, len(ev) + 1)))
        self.assertEqual(ev[-1]["event"], "sandbox_end")

    def finished(self, p, what, timeout=90):
        """(exit status, stderr) of `p`, which must exit within timeout."""
        rc = self.wait_exit(p, timeout, what)
        return rc, errtext(p)

    def lost_count(self, err, sink):
        m = re.search(rb"(\d+) audit events? could not be written to (\S+): the file did not keep up", err)
        self.assertIsNotNone(m, err)
        self.assertEqual(m.group(2), sink.encode())
        return int(m.group(1))

    def test_stuck_pipe_does_not_hold_other_runs_and_its_record_is_complete(self):
        d = self.start_daemon()
        sink, rd = self.stuck_fifo()
        go = self.fifo("go")
        # 3,005 events: sandbox_start, exec sh, exec seq, 3,000 exec true,
        # exit, sandbox_end; the run ends only once the test says so
        a = self.nobody_run(d, sink, "for i in $(/usr/bin/seq 3000); do /bin/true; done; read x < %s" % go)
        # its sink is full: the next line waits for a reader that does not read
        wait_for(self.tracer_waits_in_pipe_write, 60, "a write to the full audit FIFO waiting")
        self.assertGreater(fionread(rd), PIPE_CAPACITY - 4096)
        self.assert_other_runs_served(d)
        self.assertIsNone(a.poll(), errtext(a))
        # the reader comes back; then the run ends
        reader = Reader(rd)
        reader.start()
        w = wait_for(lambda: try_open_writer(go), 60, "the first run's loop over (a reader of 'go')")
        os.write(w, b"go\n")
        os.close(w)
        rc, err = self.finished(a, "the first run")
        self.assertEqual(rc, 0, err)
        self.assertNotIn(b"could not be written", err)
        reader.join(120)
        self.assertTrue(reader.eof, "no EOF on the audit FIFO")
        ev = reader.lines()
        self.assertEqual([e["seq"] for e in ev], list(range(1, 3006)), "seq must be 1..3005 with no gap")
        self.assertEqual(sum(e["event"] == "exec" for e in ev), 3002)
        self.assertEqual(ev[-1]["event"], "sandbox_end")
        self.assertEqual(ev[-1]["status"], {"code": 0})

    def test_sink_never_read_is_reported_at_the_end(self):
        # the run ends while its sink takes nothing: the end waits a bounded
        # time, then reports what was not written; the record written is
        # a prefix with no gap, and the writer thread is gone
        d = self.start_daemon()
        sink, rd = self.stuck_fifo()
        threads = self.tracer_threads()
        a = self.nobody_run(d, sink, "for i in $(/usr/bin/seq 2000); do /bin/true; done")
        rc, err = self.finished(a, "a run whose audit FIFO is never read")
        self.assertEqual(rc, 0, err)
        lost = self.lost_count(err, sink)
        wait_for(lambda: self.tracer_threads() == threads, 60, "the run's writer thread gone")
        reader = Reader(rd, 60)
        reader.run()
        self.assertTrue(reader.eof, "no EOF on the audit FIFO")
        ev = reader.lines()
        self.assertGreater(lost, 0)
        # 2,005 events: start, exec sh, exec seq, 2,000 exec true, exit, end
        self.assertEqual(len(ev) + lost, 2005)
        self.assertEqual([e["seq"] for e in ev], list(range(1, len(ev) + 1)))
        self.assert_other_runs_served(d)

    def test_fifo_without_a_reader_is_waited_for_with_a_word(self):
        # Found in review: --audit to a FIFO nobody had open blocked in
        # open(2) before anything ran, with nothing on stderr
        sink = self.fifo("audit")
        p = self.popen([SECCELL, "run", "--audit", sink, "--", "/bin/echo", "ran"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = read_line(p.stderr, 60)
        self.assertEqual(line, b"seccell: waiting for a reader of the FIFO %s (--audit)\n" % sink.encode())
        self.assertIsNone(p.poll())
        rd = os.open(sink, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.addCleanup(os.close, rd)
        rc, err = self.finished(p, "the run once its FIFO has a reader")
        self.assertEqual((rc, p.stdout.read()), (0, b"ran\n"), err)
        # read once every writer is gone (its few lines fit the FIFO): an
        # empty read before the run's open would look like the end
        reader = Reader(rd, 60)
        reader.run()
        self.assertTrue(reader.eof, "no EOF on the audit FIFO")
        ev = reader.lines()
        self.assertEqual([e["event"] for e in ev][0], "sandbox_start")
        self.assertEqual(ev[-1]["event"], "sandbox_end")

    def test_full_queue_drops_with_a_visible_gap(self):
        # 100 exec events of 64 KB each while the sink takes nothing: its
        # queue holds 4 MiB; the rest are dropped, counted, and show as a
        # gap in seq once the reader is back
        d = self.start_daemon()
        sink, rd = self.stuck_fifo()
        go = self.fifo("go")
        args = " ".join(["$big"] * 16)
        script = ("big=$(printf '%%04000d' 0); i=0; while [ $i -lt 100 ]; do /bin/true %s; i=$((i+1)); done; "
                  "read x < %s" % (args, go))
        a = self.nobody_run(d, sink, script)
        w = wait_for(lambda: try_open_writer(go), 60, "the run's loop over (a reader of 'go')")
        self.assert_other_runs_served(d)
        reader = Reader(rd)
        reader.start()
        os.write(w, b"go\n")
        os.close(w)
        rc, err = self.finished(a, "the run")
        self.assertEqual(rc, 0, err)
        lost = self.lost_count(err, sink)
        reader.join(120)
        self.assertTrue(reader.eof, "no EOF on the audit FIFO")
        ev = reader.lines()
        seqs = [e["seq"] for e in ev]
        # 104 events: start, exec sh, 100 exec true, exit, end
        self.assertGreater(lost, 0)
        self.assertEqual(len(ev) + lost, 104)
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertEqual((seqs[0], ev[0]["event"]), (1, "sandbox_start"))
        self.assertEqual((seqs[-1], ev[-1]["event"]), (104, "sandbox_end"))
        for e in ev:
            if e["event"] == "exec" and e["path"] == "/bin/true":
                self.assertEqual(e["argv"][1:], ["0" * 4000] * 16)

    # -- a sink on a stalled file system: its writer is held in a write no
    # signal ends. The run still ends (its events reported as not
    # written); the writer stays until the file system answers, and 4 such
    # writers of one user refuse that user's next runs with an audit file.
    # (A FUSE write holds its file's inode lock, which a close of the same
    # file waits for (FLUSH): the files are armed only once the broker has
    # let go of its copies, and each run has its own; the CLI, which closes
    # its copy as it exits, waits for the release.)

    def stall_fs(self):
        """A mounted stallfs; returns (its process, its mount point)."""
        return self.mount_stallfs()

    def fs_say(self, fs, word):
        fs.stdin.write(word.encode() + b"\n")
        fs.stdin.flush()

    def test_writers_stuck_in_a_stalled_file_system_are_capped_per_user(self):
        d = self.start_daemon()
        threads = self.tracer_threads()
        fs, mnt = self.stall_fs()
        runs = []
        for i in range(4):
            go = self.fifo("go%d" % i)
            sink = os.path.join(mnt, "sink%d" % i)
            runs.append((self.nobody_run(d, sink, "read x < %s; /bin/true" % go), go, sink))
        # every run started: its sandbox_start written, the broker's copy of
        # its file closed
        writers = [wait_for(lambda: try_open_writer(go), 60, "run %s started" % go) for _, go, _ in runs]
        self.fs_say(fs, "arm")
        self.assertEqual(read_line(fs.stdout, 60), b"armed\n", errtext(fs))
        for w in writers:
            os.write(w, b"go\n")
            os.close(w)
        for a, _, sink in runs:
            # reported at the end of the run (the CLI then waits in its own
            # close of the file)
            err = read_line(a.stderr, 90)
            self.assertGreater(self.lost_count(err, sink), 0)
        wait_for(lambda: self.tracer_threads() == threads + 4, 60, "four writers left stuck")
        # that user's next run with an audit file is refused; without one,
        # or another user's, it is served
        refused = self.nobody_run(d, os.path.join(mnt, "sink4"), "/bin/true")
        rc, err = self.finished(refused, "the refused run")
        self.assertEqual(rc, 125, err)
        self.assertIn(b"audit file does not take their last events", err)
        plain = self.popen([self.nobody_client(), "run", "--broker", d, "--", "/bin/true"], cwd=self.dir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           preexec_fn=as_nobody)
        rc, err = self.finished(plain, "a run without --audit")
        self.assertEqual(rc, 0, err)
        self.assert_other_runs_served(d)
        self.fs_say(fs, "release")
        for a, _, _ in runs:
            rc, err = self.finished(a, "a run after the release")
            self.assertEqual(rc, 0, err)
        wait_for(lambda: self.tracer_threads() == threads, 60, "the stuck writers gone")
        own = os.path.join(self.dir, "nobody.jsonl")
        with open(own, "w"):
            pass
        os.chmod(own, 0o666)
        served = self.nobody_run(d, own, "/bin/true")
        rc, err = self.finished(served, "a run after the release")
        self.assertEqual(rc, 0, err)
        self.assertEqual(load_json_lines(own)[-1]["event"], "sandbox_end")
