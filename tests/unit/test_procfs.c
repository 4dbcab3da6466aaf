/* common/procfs.h: /proc readers, on this very process and its children.
 *
 * procfs_stat must take its fields after the last ')' (a comm may hold
 * spaces and parentheses), and report start_brk (field 47); procfs_tgid
 * answers a leader with pidfd_open and a non-leader thread from
 * /proc/<tid>/status; both say -ENOENT for a task that is gone. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(stat_of_self),
        cmocka_unit_test(stat_comm_with_parentheses),
        cmocka_unit_test(stat_of_gone_is_enoent),
        cmocka_unit_test(tgid_of_leader_and_thread),
        cmocka_unit_test(tgid_of_child),
};

UNIT_MAIN_NO_BUGS(tests)
