/* seccell-mem-bigbss: a program whose image holds 256 MiB of bss, which
 * exec maps by itself, and which makes no system call before it has
 * touched every page: nothing the tracer judges ever asks for that memory
 * (found in review). Then writes "touched 256 MiB" and exits 0.
 * seccell-mem-freebss (HOLD_MIB=40): 40 MiB, touched, then held (pause(2)
 * until killed), writing nothing.
 * Freestanding (no libc: its start-up would call brk), x86-64 only. */
#ifdef HOLD_MIB
#define BIG ((unsigned long)HOLD_MIB << 20)
#else
#define BIG (256ul << 20)
#endif

static volatile char big[BIG];

static long sys3(long nr, long a, long b, long c)
{
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
        return ret;
}

void _start(void)
{
        for (unsigned long i = 0; i < BIG; i += 4096)
                big[i] = 1;
#ifdef HOLD_MIB
        for (;;)
                sys3(34 /* pause */, 0, 0, 0);
#else
        static const char msg[] = "touched 256 MiB\n";
        sys3(1 /* write */, 1, (long)msg, sizeof(msg) - 1);
        for (;;)
                sys3(231 /* exit_group */, 0, 0, 0);
#endif
}
