/* A program whose 40 MiB bss is mapped by exec itself: with glibc (dynamic
 * or static) its first judged request (the loader's mmap, or the static
 * start-up's brk) comes before main, and the kernel's measure it is judged
 * on already holds the whole bss. */
#include <stdio.h>
#include <string.h>

static char big[40 << 20];

int main(void)
{
        memset(big, 1, sizeof(big));
        puts("bss ran");
        return 0;
}
