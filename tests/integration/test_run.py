"""seccell run: the command behaves exactly as bare — exit status, stdio,
environment, working directory, large data, real programs."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
import unittest

from harness import SECCELL, PYTHON, SeccellTestCase, drain, py


class ExitStatus(SeccellTestCase):

    def test_true_exits_0(self):
        r = self.run_cmd(["/bin/true"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr, b"")

    def test_false_exits_1(self):
        self.assertEqual(self.run_cmd(["/bin/false"]).returncode, 1)

    def test_exit_code_7(self):
        r = self.run_cmd(["sh", "-c", "exit 7"])
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertEqual(r.stderr, b"")

    def test_exit_code_255(self):
        self.assertEqual(self.run_cmd(["sh", "-c", "exit 255"]).returncode, 255)

    def test_killed_by_sigterm_143(self):
        r = self.run_cmd(["sh", "-c", "kill -TERM $$"])
        self.assertEqual(r.returncode, 143, r.stderr)

    def test_killed_by_sigkill_137(self):
        r = self.run_cmd(["sh", "-c", "kill -KILL $$"])
        self.assertEqual(r.returncode, 137, r.stderr)

    def test_killed_by_sigsegv_139(self):
        r = self.run_cmd(py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"))
        self.assertEqual(r.returncode, 139, r.stderr)

    def test_missing_command_127(self):
        name = "seccell-no-such-command-%d" % os.getpid()
        r = self.run_cmd([name, "arg"])
        self.assertEqual(r.returncode, 127)
        self.assertOneLine(r.stderr, name)

    def test_empty_command_name_127(self):
        # as env(1): found in review, a malformed-request 125 in two lines
        r = self.seccell(["run", "--", ""])
        self.assertEqual(r.returncode, 127, r.stderr)
        self.assertEqual(r.stderr, b"seccell: cannot run '': No such file or directory\n")

    def test_missing_absolute_path_127(self):
        path = "/nonexistent-%d/prog" % os.getpid()
        r = self.run_cmd([path])
        self.assertEqual(r.returncode, 127)
        self.assertOneLine(r.stderr, path)

    def test_not_executable_126(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "script")
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho should-not-run\n")
            os.chmod(path, 0o644)
            r = self.run_cmd([path])
        self.assertEqual(r.returncode, 126)
        self.assertEqual(r.stdout, b"")
        self.assertOneLine(r.stderr, path)

    def test_directory_126(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.run_cmd([d])
        self.assertEqual(r.returncode, 126)
        self.assertOneLine(r.stderr, d)


class Stdio(SeccellTestCase):

    def test_echo_hello_through_cat(self):
        r = self.run_cmd(["cat"], input=b"hello\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"hello\n")
        self.assertEqual(r.stderr, b"")

    def test_shell_pipe_into_seccell(self):
        # literally `echo hello | seccell run -- cat`
        r = self.bare(["sh", "-c", 'echo hello | "$0" run -- cat', SECCELL])
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"hello\n", b""))

    def test_binary_stdin_passthrough(self):
        data = bytes(range(256)) * 4096 + os.urandom(1 << 20) + b"\0\r\n\xff"
        r = self.run_cmd(["cat"], input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout), len(data))
        self.assertTrue(r.stdout == data, "binary data changed on its way through")

    def test_stdin_devnull(self):
        r = self.run_cmd(["cat"], stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stdout), (0, b""))

    def test_stderr_passthrough(self):
        r = self.run_cmd(["sh", "-c", "echo out; echo err >&2; echo out2; printf 'e\\0rr2' >&2"])
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"out\nout2\n")
        self.assertEqual(r.stderr, b"err\ne\0rr2")

    def test_stdout_to_regular_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "out")
            with open(path, "wb") as f:
                r = self.run_cmd(["sh", "-c", "echo a; echo b"], stdout=f)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"a\nb\n")

    def test_100MB_through_stdin_and_stdout(self):
        total = 100_000_000
        chunk = 1_000_000
        base = os.urandom(chunk)
        p = self.popen([SECCELL, "run", "--", "cat"], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        h_in = hashlib.sha256()
        errors = []

        def writer():
            try:
                for i in range(total // chunk):
                    block = i.to_bytes(8, "little") + base[8:]
                    h_in.update(block)
                    p.stdin.write(block)
                p.stdin.close()
            except Exception as e:  # reported below
                errors.append(e)

        def drain_stderr():
            errors.append(("stderr", p.stderr.read()))

        t = threading.Thread(target=writer, daemon=True)
        te = threading.Thread(target=drain_stderr, daemon=True)
        t.start()
        te.start()
        h_out = hashlib.sha256()
        n = drain(p.stdout, 120, h_out.update)
        t.join(60)
        te.join(60)
        rc = self.wait_exit(p, 60, "seccell run -- cat")
        self.assertEqual([e for e in errors if not isinstance(e, tuple)], [])
        self.assertEqual(rc, 0, errors)
        self.assertEqual(n, total)
        self.assertEqual(h_out.hexdigest(), h_in.hexdigest())

    def test_100MB_generated_inside(self):
        p = self.popen([SECCELL, "run", "--", "head", "-c", "100000000", "/dev/zero"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        h = hashlib.sha256()
        n = drain(p.stdout, 120, h.update)
        self.assertEqual(self.wait_exit(p, 60, "seccell run -- head"), 0)
        self.assertEqual(n, 100_000_000)
        self.assertEqual(h.hexdigest(), hashlib.sha256(bytes(100_000_000)).hexdigest())


class Environment(SeccellTestCase):

    ENV = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SECCELL_IT_VAR": "value with  spaces",
        "SECCELL_IT_EMPTY": "",
        "SECCELL_IT_EQ": "a=b=c",
        "SECCELL_IT_NL": "line1\nline2",
        "SECCELL_IT_UTF8": "caf\u00e9",
        "LANG": "C",
    }

    def test_custom_var_visible(self):
        r = self.run_cmd(["printenv", "SECCELL_IT_VAR"], env=self.ENV)
        self.assertEqual((r.returncode, r.stdout), (0, b"value with  spaces\n"), r.stderr)

    def test_env_exactly_as_bare(self):
        bare = self.bare(["env", "-0"], env=self.ENV)
        boxed = self.run_cmd(["env", "-0"], env=self.ENV)
        self.assertEqual(bare.returncode, 0)
        self.assertEqual(boxed.returncode, 0, boxed.stderr)
        b = bare.stdout.split(b"\0")
        s = boxed.stdout.split(b"\0")
        self.assertEqual(sorted(s), sorted(b), "environment differs from a bare run")

    def test_empty_env(self):
        r = self.run_cmd(["/usr/bin/env"], env={})
        self.assertEqual((r.returncode, r.stdout), (0, b""), r.stderr)

    def test_unset_var_absent(self):
        env = dict(self.ENV)
        r = self.run_cmd(["printenv", "SECCELL"], env=env)
        self.assertEqual((r.returncode, r.stdout), (1, b""))


class WorkingDirectory(SeccellTestCase):

    def test_cwd_passthrough(self):
        with tempfile.TemporaryDirectory() as d:
            d = os.path.join(d, "dir with space")
            os.mkdir(d)
            with open(os.path.join(d, "f"), "w") as f:
                f.write("here\n")
            r = self.run_cmd(["sh", "-c", "pwd -P; cat f"], cwd=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), os.path.realpath(d) + "\nhere\n")

    def test_cwd_python_getcwd(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.run_cmd(py("import os; print(os.getcwd())"), cwd=d)
            expected = os.path.realpath(d)
        self.assertEqual((r.returncode, r.stdout.decode()), (0, expected + "\n"), r.stderr)


class RealPrograms(SeccellTestCase):

    SCRIPT = textwrap.dedent(r"""
        import hashlib, json, os, sys
        data = sys.stdin.buffer.read()
        words = data.split()
        print(json.dumps({
            "argv": sys.argv[1:],
            "n_bytes": len(data),
            "n_words": len(words),
            "sha": hashlib.sha256(data).hexdigest(),
            "primes": [n for n in range(2, 200) if all(n % d for d in range(2, n))],
            "env": os.environ.get("SECCELL_IT_VAR"),
            "cwd": os.getcwd(),
        }, sort_keys=True))
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """)

    def test_python_script_as_bare(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "prog.py")
            with open(path, "w") as f:
                f.write(self.SCRIPT)
            env = dict(os.environ, SECCELL_IT_VAR="xyz")
            data = b"the quick brown fox\njumps over\n" * 1000
            argv = [PYTHON, path, "a b", "", "--x"]
            bare = self.bare(argv, input=data, cwd=d, env=env)
            boxed = self.run_cmd(argv, input=data, cwd=d, env=env)
        self.assertEqual(bare.returncode, 3)
        self.assertEqual((boxed.returncode, boxed.stdout, boxed.stderr),
                         (bare.returncode, bare.stdout, bare.stderr))

    def test_shell_pipeline_as_bare(self):
        cmd = ["sh", "-c", "seq 1 1000 | sort -rn | head -3"]
        bare = self.bare(cmd)
        boxed = self.run_cmd(cmd)
        self.assertEqual(bare.stdout, b"1000\n999\n998\n")
        self.assertEqual((boxed.returncode, boxed.stdout, boxed.stderr), (0, bare.stdout, bare.stderr))

    def test_make_small_c_project(self):
        if not shutil.which("make") or not shutil.which("cc"):
            self.skipTest("make or cc missing")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "main.c"), "w") as f:
                f.write('#include <stdio.h>\nint add(int, int);\n'
                        'int main(void) { printf("sum=%d\\n", add(40, 2)); return 0; }\n')
            with open(os.path.join(d, "add.c"), "w") as f:
                f.write("int add(int a, int b) { return a + b; }\n")
            with open(os.path.join(d, "Makefile"), "w") as f:
                f.write("prog: main.o add.o\n\tcc -o $@ main.o add.o\n"
                        "%.o: %.c\n\tcc -O2 -Wall -Werror -c -o $@ $<\n"
                        "clean:\n\trm -f prog *.o\n")
            r = self.run_cmd(["make", "-j2"], cwd=d)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = self.run_cmd(["./prog"], cwd=d)
            self.assertEqual((r.returncode, r.stdout), (0, b"sum=42\n"), r.stderr)
            # and the result is the same binary behaviour bare
            self.assertEqual(self.bare(["./prog"], cwd=d).stdout, b"sum=42\n")


class Summary(SeccellTestCase):
    """--summary: one line on stderr, each count with its noun in the right
    number, after the command's own output."""

    def summary(self, opts, cmd):
        r = self.run_cmd(cmd, opts=["--summary"] + opts)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [l for l in r.stderr.decode().splitlines() if l.startswith("seccell:")]

    def test_no_limit_one_exec(self):
        self.assertEqual(self.summary([], ["/bin/true"]),
                         ["seccell: summary: 1 exec, 0 namespace requests denied "
                         "(forks are counted under a limit)"])

    def test_process_limit_one_fork_two_execs(self):
        # sh forks once, for /bin/true (an absolute path: no PATH search)
        self.assertEqual(self.summary(["--max-procs", "4"], ["/bin/sh", "-c", "/bin/true; exit 0"]),
                         ["seccell: summary: peak 2 of 4 processes, 1 fork allowed, 0 denied, "
                         "2 execs, 0 namespace requests denied"])

    def test_memory_limit_one_kill(self):
        # the child over the limit is killed; the shell reports and goes on
        lines = self.summary(["--max-memory", "64M"],
                             ["/bin/sh", "-c", "%s -c 'bytearray(200 << 20)'; exit 0" % PYTHON])
        self.assertEqual(lines[:-1], ["seccell: 1 process killed by the memory limit (--max-memory 64 MiB)"])
        self.assertRegex(lines[-1], r"^seccell: summary: peak \S+ \S+ of 64 MiB, 1 memory kill, 1 fork allowed, "
                               r"0 denied, 2 execs, 0 namespace requests denied$")


if __name__ == "__main__":
    unittest.main()
