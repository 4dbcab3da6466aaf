/* common/procfs.h: /proc readers, on this very process and its children.
 *
 * procfs_stat must take its fields after the last ')' (a comm may hold
 * spaces and parentheses), and report start_brk (field 47); procfs_tgid
 * answers a leader with pidfd_open and a non-leader thread from
 * /proc/<tid>/status; both say -ENOENT for a task that is gone. A maps
 * reader yields one mapping per whole line, however long its path, and
 * stops with an error at a line that does not start with a mapping; read
 * by PROCMAP_QUERY it yields what the text does. */
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
#include <sys/utsname.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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
 * any line buffer and a newline in its name is one mapping of its maps,
 * read as text (the newline escaped, "\012") or by PROCMAP_QUERY (the
 * name as it is). */
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
        for (int text = 0; text < 2; text++) {
                struct procfs_maps m;
                struct proc_vma v;
                int mine = 0, total = 0;
                assert_int_equal(procfs_maps_open(&m, getpid(), 0, 0, text ? PROCFS_MAPS_TEXT : 0), 0);
                while (procfs_maps_next(&m, &v)) {
                        total++;
                        assert_true(v.start != 0x1000);
                        if (v.start == (uintptr_t)p) {
                                mine++;
                                assert_non_null(strstr(v.name, text ? "bbbb\\012" "00001000-00002000"
                                                                    : "bbbb\n" "00001000-00002000"));
                        }
                }
                assert_int_equal(procfs_maps_close(&m), 0);
                assert_int_equal(mine, 1);
                assert_true(total > 3);
        }
        munmap(p, 4096);
        unlink(path);
        rmdir(dir);
}

/* What one reading of this process's maps saw (no allocation while it
 * reads, so that the two readings compared see one address space). */
#define SEEN_MAX 512
struct seen {
        struct { uint64_t start, end, offset; unsigned long inode; char perms[5]; char name[128]; } v[SEEN_MAX];
        int n;
};

static void maps_read(struct seen *s, uint64_t from, unsigned flags)
{
        struct procfs_maps m;
        struct proc_vma v;
        s->n = 0;
        assert_int_equal(procfs_maps_open(&m, getpid(), 0, from, flags), 0);
        while (procfs_maps_next(&m, &v)) {
                /* the text ends with the gate page, no mapping of the
                 * address space (get_gate_vma()): the ioctl never sees it */
                if (!strcmp(v.name, "[vsyscall]"))
                        continue;
                assert_true(s->n < SEEN_MAX);
                s->v[s->n].start = v.start;
                s->v[s->n].end = v.end;
                s->v[s->n].offset = v.offset;
                s->v[s->n].inode = v.inode;
                memcpy(s->v[s->n].perms, v.perms, 5);
                snprintf(s->v[s->n].name, sizeof(s->v[s->n].name), "%s", v.name);
                s->n++;
        }
        assert_int_equal(procfs_maps_close(&m), 0);
}

static void seen_equal(const struct seen *a, const struct seen *b);

/* Whether two readings saw the same mappings. */
static bool seen_same(const struct seen *a, const struct seen *b)
{
        if (a->n != b->n)
                return false;
        for (int i = 0; i < a->n; i++)
                if (a->v[i].start != b->v[i].start || a->v[i].end != b->v[i].end ||
                    a->v[i].offset != b->v[i].offset || a->v[i].inode != b->v[i].inode ||
                    strcmp(a->v[i].perms, b->v[i].perms) || strcmp(a->v[i].name, b->v[i].name))
                        return false;
        return true;
}

/* Read by the ioctl into `q` and as text into `t`, from `from` with
 * `flags`, until a reading of each in a row agree (the readers' own
 * allocations - a sanitizer's above all - may map memory between them),
 * a few times at most; then the two must agree. */
static void maps_read_both(struct seen *q, struct seen *t, uint64_t from, unsigned flags)
{
        for (int i = 0; i < 20; i++) {
                maps_read(q, from, flags);
                maps_read(t, from, flags | PROCFS_MAPS_TEXT);
                if (seen_same(q, t))
                        return;
        }
        seen_equal(q, t);
}

static void seen_equal(const struct seen *a, const struct seen *b)
{
        assert_int_equal(a->n, b->n);
        for (int i = 0; i < a->n; i++) {
                assert_int_equal(a->v[i].start, b->v[i].start);
                assert_int_equal(a->v[i].end, b->v[i].end);
                assert_int_equal(a->v[i].offset, b->v[i].offset);
                assert_int_equal(a->v[i].inode, b->v[i].inode);
                assert_string_equal(a->v[i].perms, b->v[i].perms);
                assert_string_equal(a->v[i].name, b->v[i].name);
        }
}

static int seen_find(const struct seen *s, const void *addr)
{
        for (int i = 0; i < s->n; i++)
                if (s->v[i].start == (uintptr_t)addr)
                        return i;
        return -1;
}

/* PROCMAP_QUERY and the text agree mapping by mapping - ranges, the
 * permissions (shared: VM_MAYSHARE, as the text's "s"), offsets, inodes
 * and the names looked for ("[heap]", "[stack]", "/dev/zero (deleted)") -
 * whole, from an address, and with the shared filter. */
static void maps_query_matches_text(void **state)
{
        (void)state;
        static struct seen q, t;
        long page = sysconf(_SC_PAGESIZE);
        char *anon = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        int zfd = open("/dev/zero", O_RDWR | O_CLOEXEC);
        assert_true(zfd >= 0);
        char *zero = mmap(NULL, 2 * page, PROT_READ, MAP_SHARED, zfd, page);
        close(zfd);
        char *priv = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(anon != MAP_FAILED && zero != MAP_FAILED && priv != MAP_FAILED);
        assert_int_equal(mprotect(priv + 2 * page, page, PROT_NONE), 0); /* three mappings */
        assert_true(sbrk(page) != (void *)-1);                            /* a heap */
        maps_read_both(&q, &t, 0, 0);
        int i = seen_find(&q, anon), z = seen_find(&q, zero), p = seen_find(&q, priv);
        assert_true(i >= 0 && z >= 0 && p >= 0);
        assert_string_equal(q.v[i].perms, "rw-s");
        assert_string_equal(q.v[i].name, "/dev/zero (deleted)");
        assert_string_equal(q.v[z].perms, "r--s");
        assert_int_equal(q.v[z].offset, page);
        assert_string_equal(q.v[p].perms, "rw-p");
        assert_int_equal(q.v[p].end, (uintptr_t)(priv + 2 * page));
        assert_string_equal(q.v[p + 1].perms, "---p");
        bool heap = false, stack = false;
        for (int k = 0; k < q.n; k++) {
                heap |= !strcmp(q.v[k].name, "[heap]");
                stack |= !strcmp(q.v[k].name, "[stack]");
        }
        assert_true(heap && stack);

        /* from inside a mapping: that mapping first */
        maps_read_both(&q, &t, (uintptr_t)(priv + 4 * page), 0);
        assert_true(q.n > 0);
        assert_int_equal(q.v[0].start, (uintptr_t)(priv + 3 * page));

        /* only the shared ones */
        maps_read_both(&q, &t, 0, PROCFS_MAPS_SHARED);
        assert_true(seen_find(&q, anon) >= 0 && seen_find(&q, zero) >= 0 && seen_find(&q, priv) < 0);
        for (int k = 0; k < q.n; k++)
                assert_int_equal(q.v[k].perms[3], 's');

        munmap(anon, 3 * page);
        munmap(zero, 2 * page);
        munmap(priv, 8 * page);
}

/* PROCMAP_QUERY came with Linux 6.11. */
static bool kernel_has_procmap_query(void)
{
        struct utsname u;
        int major = 0, minor = 0;
        if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
                return false;
        return major > 6 || (major == 6 && minor >= 11);
}

/* m.examined counts what was asked of the kernel: one PROCMAP_QUERY for
 * one mapping looked up by address, however many lie below it; the text
 * reads every line up to it (memory_work's mappings_examined). */
static void maps_examined_counts_the_reading(void **state)
{
        (void)state;
        long page = sysconf(_SC_PAGESIZE);
        char *base = mmap(NULL, 64 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(base != MAP_FAILED);
        for (int k = 0; k < 64; k += 2) /* 64 mappings */
                assert_int_equal(mprotect(base + k * page, page, PROT_NONE), 0);
        char *last = base + 63 * page;
        struct procfs_maps m;
        struct proc_vma v;
        unsigned long lines = 0;
        for (int text = 0; text < 2; text++) {
                assert_int_equal(procfs_maps_open(&m, getpid(), 0, (uintptr_t)last, text ? PROCFS_MAPS_TEXT : 0), 0);
                assert_true(procfs_maps_next(&m, &v));
                assert_int_equal(v.start, (uintptr_t)last);
                assert_int_equal(procfs_maps_close(&m), 0);
                if (!text && m.examined != 1 && !kernel_has_procmap_query()) {
                        munmap(base, 64 * page);
                        skip(); /* the text is read instead */
                }
                if (!text)
                        assert_int_equal(m.examined, 1);
                else
                        lines = m.examined;
        }
        assert_true(lines > 64); /* every mapping below it, and it */
        munmap(base, 64 * page);
}

/* A path past PATH_MAX, which d_path() cannot give the ioctl: the mapping
 * is still read, named "(long)" - and the text still has the path. */
static void maps_path_past_path_max(void **state)
{
        (void)state;
        char dir[] = "/tmp/seccell-unit-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char comp[256];
        memset(comp, 'c', 250);
        comp[250] = 0;
        int d = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(d >= 0);
        for (int k = 0; k < 20; k++) { /* 20 x 251 bytes: past 4096 */
                assert_int_equal(mkdirat(d, comp, 0700), 0);
                int nd = openat(d, comp, O_PATH | O_DIRECTORY | O_CLOEXEC);
                assert_true(nd >= 0);
                close(d);
                d = nd;
        }
        int fd = openat(d, "f", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 4096), 0);
        char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        assert_true(p != MAP_FAILED);
        close(fd);
        static struct seen q;
        struct procfs_maps m;
        struct proc_vma v;
        bool found = false;
        maps_read(&q, 0, 0);
        int i = seen_find(&q, p);
        assert_true(i >= 0);
        assert_string_equal(q.v[i].name, "(long)");
        assert_int_equal(procfs_maps_open(&m, getpid(), 0, (uintptr_t)p, PROCFS_MAPS_TEXT), 0);
        assert_true(procfs_maps_next(&m, &v));
        found = v.start == (uintptr_t)p && strlen(v.name) > 5000 && strstr(v.name, "/ccccc") != NULL;
        assert_int_equal(procfs_maps_close(&m), 0);
        assert_true(found);
        munmap(p, 4096);
        /* clean up from the innermost directory out */
        assert_int_equal(unlinkat(d, "f", 0), 0);
        for (int k = 0; k < 20; k++) {
                int up = openat(d, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                assert_true(up >= 0);
                close(d);
                d = up;
                assert_int_equal(unlinkat(d, comp, AT_REMOVEDIR), 0);
        }
        close(d);
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
        cmocka_unit_test(maps_query_matches_text),
        cmocka_unit_test(maps_path_past_path_max),
        cmocka_unit_test(maps_examined_counts_the_reading),
};

UNIT_MAIN_NO_BUGS(tests)
