#include "exec_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"

#define PAGE 4096u

static ssize_t pvm_read(void *ctx, pid_t tid, uint64_t addr, void *buf, size_t len)
{
        (void)ctx;
        struct iovec local = { .iov_base = buf, .iov_len = len };
        struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
        ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
        return n < 0 ? -errno : n;
}

const struct target_mem target_mem_process_vm = { .read = pvm_read };

/* Read a NUL-terminated string of at most `max` bytes, page by page so a
 * string that ends just before an unmapped page is still read.
 * Returns the length (without NUL); sets *cut if more than `max` bytes
 * precede the NUL. Returns -EFAULT if the string cannot be read to its NUL
 * (the kernel would fail the exec with EFAULT), with what was read in buf
 * and its length in *partial. */
static ssize_t read_cstring(const struct target_mem *m, pid_t tid, uint64_t addr, char *buf, size_t max,
                            bool *cut, size_t *partial)
{
        size_t got = 0;
        *cut = false;
        *partial = 0;
        while (got < max) {
                size_t chunk = PAGE - ((addr + got) % PAGE);
                if (chunk > max - got)
                        chunk = max - got;
                ssize_t n = m->read(m->ctx, tid, addr + got, buf + got, chunk);
                if (n > 0) {
                        char *nul = memchr(buf + got, 0, n);
                        if (nul)
                                return nul - buf;
                        got += n;
                }
                if (n <= 0 || (size_t)n < chunk) {
                        *partial = got; /* unmapped before the NUL */
                        return -EFAULT;
                }
        }
        /* exactly `max` bytes: whole if the next byte is the NUL */
        char next;
        if (m->read(m->ctx, tid, addr + max, &next, 1) == 1 && next == 0)
                return got;
        *cut = true;
        return got;
}

char *utf8_sanitize(const char *s, size_t len)
{
        /* worst case: every byte becomes 3 bytes of U+FFFD */
        char *out = malloc(len * 3 + 1), *o = out;
        if (!out)
                return NULL;
        const unsigned char *p = (const unsigned char *)s, *end = p + len;
        while (p < end) {
                size_t n = 0;
                uint32_t cp = 0;
                if (*p < 0x80)
                        n = 1, cp = *p;
                else if ((*p & 0xe0) == 0xc0)
                        n = 2, cp = *p & 0x1f;
                else if ((*p & 0xf0) == 0xe0)
                        n = 3, cp = *p & 0x0f;
                else if ((*p & 0xf8) == 0xf0)
                        n = 4, cp = *p & 0x07;
                bool ok = n > 0 && (size_t)(end - p) >= n;
                for (size_t i = 1; ok && i < n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                ok = false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                /* no overlong forms, surrogates or values past U+10FFFF */
                if (ok && ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                           (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff))
                        ok = false;
                if (ok) {
                        memcpy(o, p, n);
                        o += n;
                        p += n;
                } else {
                        memcpy(o, "\xef\xbf\xbd", 3);
                        o += 3;
                        p++;
                }
        }
        *o = 0;
        return out;
}

int exec_read(const struct target_mem *m, pid_t tid, int nr, const uint64_t args[6], struct exec_record *rec)
{
        char *buf = malloc(EXEC_MAX_ARG > EXEC_MAX_PATH ? EXEC_MAX_ARG : EXEC_MAX_PATH);
        uint64_t path_ptr, argv_ptr;
        size_t total = 0;
        bool cut;

        memset(rec, 0, sizeof(*rec));
        if (!buf)
                return -ENOMEM;
        if (nr == SYS_execveat) {
                rec->dirfd = (int)args[0];
                path_ptr = args[1];
                argv_ptr = args[2];
        } else {
                rec->dirfd = AT_FDCWD;
                path_ptr = args[0];
                argv_ptr = args[1];
        }

        size_t partial;
        ssize_t n = read_cstring(m, tid, path_ptr, buf, EXEC_MAX_PATH, &cut, &partial);
        if (n < 0) {
                rec->unreadable = true;
                n = partial;
        }
        rec->truncated |= cut;
        rec->path = utf8_sanitize(buf, n);
        rec->argv = calloc(EXEC_MAX_ARGS, sizeof(char *));
        if (!rec->path || !rec->argv)
                goto nomem;

        /* argv pointers, read in runs up to the end of their page */
        uint64_t ptrs[64];
        size_t pbase = 0, pn = 0;
        for (size_t i = 0; argv_ptr; i++) {
                if (i >= pbase + pn) {
                        uint64_t at = argv_ptr + i * sizeof(uint64_t);
                        size_t want = (PAGE - at % PAGE) / sizeof(uint64_t);
                        if (want == 0)
                                want = 1; /* one pointer across the page end */
                        if (want > ARRAY_SIZE(ptrs))
                                want = ARRAY_SIZE(ptrs);
                        ssize_t got = m->read(m->ctx, tid, at, ptrs, want * sizeof(uint64_t));
                        pbase = i;
                        pn = got > 0 ? (size_t)got / sizeof(uint64_t) : 0;
                        if (pn == 0) {
                                rec->unreadable = true;
                                break;
                        }
                }
                uint64_t p = ptrs[i - pbase];
                if (!p)
                        break;
                if (i == EXEC_MAX_ARGS) {
                        rec->truncated = true; /* more arguments than kept */
                        break;
                }
                size_t room = EXEC_MAX_TOTAL - total;
                if (room == 0) {
                        rec->truncated = true;
                        break;
                }
                n = read_cstring(m, tid, p, buf, room < EXEC_MAX_ARG ? room : EXEC_MAX_ARG, &cut, &partial);
                bool fault = n < 0;
                if (fault) {
                        /* flagged; kept as far as it could be read */
                        rec->unreadable = true;
                        if (partial == 0)
                                break;
                        n = partial;
                }
                rec->truncated |= cut;
                total += n;
                rec->argv[i] = utf8_sanitize(buf, n);
                if (!rec->argv[i])
                        goto nomem;
                rec->argc = i + 1;
                if (fault)
                        break;
        }
        free(buf);
        return 0;
nomem:
        free(buf);
        exec_record_free(rec);
        return -ENOMEM;
}

void exec_record_free(struct exec_record *rec)
{
        free(rec->path);
        for (size_t i = 0; rec->argv && i < rec->argc; i++)
                free(rec->argv[i]);
        free(rec->argv);
        memset(rec, 0, sizeof(*rec));
}

json_object *exec_record_json(const struct exec_record *rec)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(rec->path ? rec->path : ""));
        json_object *a = json_object_new_array_ext((int)rec->argc);
        for (size_t i = 0; i < rec->argc; i++)
                json_object_array_add(a, json_object_new_string(rec->argv[i]));
        json_object_object_add(o, "argv", a);
        json_object_object_add(o, "truncated", json_object_new_boolean(rec->truncated || rec->unreadable));
        if (rec->dirfd != AT_FDCWD)
                json_object_object_add(o, "dirfd", json_object_new_int(rec->dirfd));
        return o;
}
