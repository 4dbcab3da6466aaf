/* seccell-mem-bigbss: a program whose image holds 256 MiB of bss, which
 * exec maps by itself, and which makes no system call before it has
 * touched every page: nothing the tracer judges ever asks for that memory
 * (found in review). Then writes "touched 256 MiB" and exits 0.
 * Freestanding (no libc: its start-up would call brk), x86-64 only. */
#define BIG (256ul << 20)

static volatile char big[BIG];

static long sys3(long nr, long a, long b, long c)
{
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
        return ret;
}

void _start(void)
{
        static const char msg[] = "touched 256 MiB\n";
        for (unsigned long i = 0; i < BIG; i += 4096)
                big[i] = 1;
        sys3(1 /* write */, 1, (long)msg, sizeof(msg) - 1);
        for (;;)
                sys3(231 /* exit_group */, 0, 0, 0);
}
