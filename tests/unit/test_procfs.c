/* common/procfs.h: /proc readers, on this very process and its children.
 *
 * procfs_stat must take its fields after the last ')' (a comm may hold
 * spaces and parentheses), and report start_brk (field 47); procfs_tgid
 * answers a leader with pidfd_open and a non-leader thread from
 * /proc/<tid>/status; both say -ENOENT for a task that is gone. A maps
 * reader yields one mapping per whole line, however long its path, and
 * stops with an error at a line that does not start with a mapping. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procfs.h"
#include "unit.h"

/* A child that has renamed itself `comm` and waits to be killed; its pid. */
static pid_t child_named(const char *comm)
{
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                prctl(PR_SET_NAME, comm, 0, 0, 0);
                (void)!write(p[1], "r", 1);
                for (;;)
                        pause();
        }
        char c;
        close(p[1]);
        assert_int_equal(read(p[0], &c, 1), 1); /* renamed */
        close(p[0]);
        return pid;
}

static void kill_and_reap(pid_t pid)
{
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static void stat_of_self(void **state)
{
        (void)state;
        struct proc_stat st;
        assert_int_equal(procfs_stat(getpid(), &st), 0);
        assert_int_equal(st.state, 'R');
        assert_int_equal(st.ppid, getppid());
        assert_int_equal(st.pgrp, getpgrp());
        assert_int_equal(st.num_threads, 1);
        assert_true(st.starttime > 0);
        /* the heap starts at start_brk and ends at the current break */
        void *brk_now = sbrk(0);
        assert_true(st.start_brk > 0);
        assert_true(st.start_brk <= (uintptr_t)brk_now);
        /* kept open, re-read: rendered afresh */
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)getpid());
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        struct proc_stat a, b;
        assert_int_equal(procfs_stat_pread(fd, &a), 0);
        assert_int_equal(a.num_threads, 1);
        char *p = mmap(NULL, 32 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        for (size_t i = 0; i < 32 * 4096; i += 4096)
                ((volatile char *)p)[i] = 1; /* first touch: a fault each */
        assert_int_equal(procfs_stat_pread(fd, &b), 0);
        assert_true(b.faults >= a.faults + 32);
        munmap(p, 32 * 4096);
        close(fd);
}

static void stat_comm_with_parentheses(void **state)
{
        (void)state;
        pid_t pid = child_named("a) (b c) 9 9");
        struct proc_stat st;
        assert_int_equal(procfs_stat(pid, &st), 0);
        assert_int_equal(st.ppid, getpid());
        assert_true(st.state == 'S' || st.state == 'R');
        assert_true(st.start_brk > 0);
        struct proc_stat me;
        assert_int_equal(procfs_stat(getpid(), &me), 0);
        assert_true(st.starttime >= me.starttime);
        kill_and_reap(pid);
}

static void stat_of_gone_is_enoent(void **state)
{
        (void)state;
        pid_t pid = child_named("gone");
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        kill_and_reap(pid);
        struct proc_stat kept;
        assert_int_equal(procfs_stat_pread(fd, &kept), -ENOENT);
        close(fd);
        struct proc_stat st;
        assert_int_equal(procfs_stat(pid, &st), -ENOENT);
        assert_int_equal(procfs_tgid(pid), -ENOENT);
        assert_int_equal(procfs_task_stat(pid, pid, &st), -ENOENT);
}

static atomic_int thread_tid;
static atomic_bool thread_stop;

static void *thread_main(void *arg)
{
        (void)arg;
        atomic_store(&thread_tid, (int)syscall(SYS_gettid));
        while (!atomic_load(&thread_stop))
                usleep(1000);
        return NULL;
}

static void tgid_of_leader_and_thread(void **state)
{
        (void)state;
        assert_int_equal(procfs_tgid(getpid()), getpid());
        pthread_t t;
        atomic_store(&thread_stop, false);
        atomic_store(&thread_tid, 0);
        assert_int_equal(pthread_create(&t, NULL, thread_main, NULL), 0);
        while (!atomic_load(&thread_tid))
                usleep(1000);
        pid_t tid = atomic_load(&thread_tid);
        assert_int_not_equal(tid, getpid());
        /* not a leader: pidfd_open refuses it, /proc/<tid>/status answers */
        assert_int_equal(procfs_tgid(tid), getpid());
        struct proc_stat st;
        assert_int_equal(procfs_stat(getpid(), &st), 0);
        assert_int_equal(st.num_threads, 2);
        /* a thread's own stat: the process's thread count, its faults */
        struct proc_stat ts;
        assert_int_equal(procfs_task_stat(getpid(), tid, &ts), 0);
        assert_int_equal(ts.num_threads, 2);
        assert_int_equal(procfs_task_stat(getpid(), getpid(), &ts), 0);
        uint64_t before = ts.faults;
        char *p = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        for (size_t i = 0; i < 64 * 4096; i += 4096)
                ((volatile char *)p)[i] = 1; /* first touch: a fault each */
        assert_int_equal(procfs_task_stat(getpid(), getpid(), &ts), 0);
        assert_true(ts.faults >= before + 64);
        munmap(p, 64 * 4096);
        atomic_store(&thread_stop, true);
        assert_int_equal(pthread_join(t, NULL), 0);
}

static void tgid_of_child(void **state)
{
        (void)state;
        pid_t pid = child_named("child");
        assert_int_equal(procfs_tgid(pid), pid);
        kill_and_reap(pid);
}


/* A maps text as the kernel would write it, its first mapping a file
 * whose path is long enough to split a 512-byte line, and whose tail
 * poses as a writable mapping of its own. */
static FILE *maps_text(char *buf, size_t len, const char *tail)
{
        char name[700];
        memset(name, 'a', sizeof(name));
        name[0] = '/';
        snprintf(name + 600, sizeof(name) - 600, "%s", tail);
        int n = snprintf(buf, len,
                         "00400000-00401000 r--p 00000000 fe:00 12                         %s\n"
                         "7ffd0000-7ffd2000 rw-p 00000000 00:00 0                          [stack]\n",
                         name);
        assert_true(n > 0 && (size_t)n < len);
        FILE *f = fmemopen(buf, (size_t)n, "r");
        assert_non_null(f);
        return f;
}

static void maps_long_path_is_one_mapping(void **state)
{
        (void)state;
        static const char fake[] = "100000000000-200000000000 rw-p 00000000 00:00 0 [heap]";
        char buf[2048];
        struct procfs_maps m;
        struct proc_vma v;
        procfs_maps_from(&m, maps_text(buf, sizeof(buf), fake));
        assert_true(procfs_maps_next(&m, &v));
        assert_int_equal(v.start, 0x400000);
        assert_int_equal(v.end, 0x401000);
        assert_string_equal(v.perms, "r--p");
        assert_int_equal(v.inode, 12);
        assert_int_equal(strlen(v.name), 600 + strlen(fake));
        assert_true(procfs_maps_next(&m, &v));
        assert_int_equal(v.start, 0x7ffd0000);
        assert_string_equal(v.name, "[stack]");
        assert_false(procfs_maps_next(&m, &v));
        assert_int_equal(procfs_maps_close(&m), 0);
}

static void maps_malformed_line_fails(void **state)
{
        (void)state;
        static const char text[] = "00400000-00401000 r--p 00000000 fe:00 12 /bin/x\n"
                                   "x00000-200000 rw-p 00000000 00:00 0\n"
                                   "7ffd0000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n";
        struct procfs_maps m;
        struct proc_vma v;
        procfs_maps_from(&m, fmemopen((void *)text, sizeof(text) - 1, "r"));
        assert_true(procfs_maps_next(&m, &v));
        assert_false(procfs_maps_next(&m, &v));
        assert_false(procfs_maps_next(&m, &v)); /* not past the error */
        assert_int_equal(procfs_maps_close(&m), -EIO);
        /* a last line without its '\n' is cut short */
        static const char cut[] = "00400000-00401000 r--p 00000000 fe:00 12 /bin/x";
        procfs_maps_from(&m, fmemopen((void *)cut, sizeof(cut) - 1, "r"));
        assert_false(procfs_maps_next(&m, &v));
        assert_int_equal(procfs_maps_close(&m), -EIO);
        /* an unnamed mapping */
        static const char anon[] = "7f0000000000-7f0000001000 rw-s 00001000 00:01 77 \n";
        procfs_maps_from(&m, fmemopen((void *)anon, sizeof(anon) - 1, "r"));
        assert_true(procfs_maps_next(&m, &v));
        assert_string_equal(v.name, "");
        assert_string_equal(v.perms, "rw-s");
        assert_int_equal(v.offset, 0x1000);
        assert_int_equal(v.inode, 77);
        assert_false(procfs_maps_next(&m, &v));
        assert_int_equal(procfs_maps_close(&m), 0);
}

/* The kernel's side of it: a file of this process with a path longer than
 * any line buffer and a newline in its name is one line of its maps. */
static void maps_of_self_long_and_newline_path(void **state)
{
        (void)state;
        char dir[] = "/tmp/seccell-unit-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[1024];
        int n = snprintf(path, sizeof(path), "%s/", dir);
        memset(path + n, 'b', 200);
        snprintf(path + n + 200, sizeof(path) - (size_t)n - 200,
                 "\n00001000-00002000 rw-p 00000000 00:00 0 x");
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 4096), 0);
        char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        assert_true(p != MAP_FAILED);
        close(fd);
        struct procfs_maps m;
        struct proc_vma v;
        int mine = 0, total = 0;
        assert_int_equal(procfs_maps_open(&m, getpid(), 0), 0);
        while (procfs_maps_next(&m, &v)) {
                total++;
                assert_true(v.start != 0x1000);
                if (v.start == (uintptr_t)p) {
                        mine++;
                        /* the newline is escaped: "\012" */
                        assert_non_null(strstr(v.name, "bbbb\\012" "00001000-00002000"));
                }
        }
        assert_int_equal(procfs_maps_close(&m), 0);
        assert_int_equal(mine, 1);
        assert_true(total > 3);
        munmap(p, 4096);
        unlink(path);
        rmdir(dir);
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(stat_of_self),
        cmocka_unit_test(stat_comm_with_parentheses),
        cmocka_unit_test(stat_of_gone_is_enoent),
        cmocka_unit_test(tgid_of_leader_and_thread),
        cmocka_unit_test(tgid_of_child),
        cmocka_unit_test(maps_long_path_is_one_mapping),
        cmocka_unit_test(maps_malformed_line_fails),
        cmocka_unit_test(maps_of_self_long_and_newline_path),
};

UNIT_MAIN_NO_BUGS(tests)
