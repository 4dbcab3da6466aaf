/* seccell: run a command in a sandbox with process and memory limits. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "client.h"
#include "embedded.h"
#include "log.h"
#include "msg.h"
#include "procfs.h"
#include "size.h"

#define EXIT_SECCELL 125
#define DEFAULT_DAEMON_DIR "/run/seccell"

static void usage(FILE *f)
{
        fputs("Usage: seccell run [OPTION]... [--] COMMAND [ARG]...\n"
              "Run COMMAND in a sandbox under process and memory limits.\n"
              "\n"
              "  -p, --max-procs N       at most N live processes, the command included\n"
              "  -m, --max-memory SIZE   at most SIZE bytes of private writable memory in\n"
              "                          the whole sandbox (suffixes K M G T P E, powers\n"
              "                          of 1024; KiB MiB ... accepted; e.g. 512M, 1.5G)\n"
              "  -t, --timeout DURATION  kill the sandbox after DURATION (seconds, or a\n"
              "                          number with s/m/h/d); exit status 124\n"
              "  -a, --audit FILE        append the audit record (JSON lines) to FILE\n"
              "      --summary           print peaks (processes, memory) and counts on stderr\n"
              "      --broker DIR        use the broker serving in DIR (default: the\n"
              "                          daemon in " DEFAULT_DAEMON_DIR " if it runs, else a\n"
              "                          private one for this run)\n"
              "  -h, --help              show this help\n"
              "  -V, --version           show the version\n"
              "\n"
              "Exit status: the command's own; 128+N if it died of signal N; 124 on\n"
              "timeout; 125 if seccell failed; 126 if COMMAND cannot run; 127 if it was\n"
              "not found.\n", f);
}

/* The least --max-memory taken, in bytes. */
#define MIN_MAX_MEMORY (1u << 20)

static int bad_value(const char *opt, const char *val, int r, const char *what)
{
        log_msg("invalid %s '%s': %s", opt, val,
                r == -ERANGE ? "out of range" : what);
        return EXIT_SECCELL;
}

/* Whether this process runs under a seccomp filter ("Seccomp: 2"). */
static bool under_seccomp_filter(void) { return procfs_status_field(getpid(), "Seccomp") == 2; }

/* Whether this process may create a seccomp listener, as a private
 * broker's sandboxes must: tried in a throw-away child (an allow-all
 * filter with SECCOMP_FILTER_FLAG_NEW_LISTENER). Inside a seccell sandbox
 * its filter refuses it (EPERM). */
static bool listener_allowed(void)
{
        pid_t pid = fork();
        if (pid < 0)
                return true; /* cannot tell: let the broker find out */
        if (pid == 0) {
                struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
                struct sock_fprog prog = { .len = 1, .filter = &allow };
                prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                long fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
                _exit(fd < 0 && errno == EPERM ? 1 : 0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return true;
        return !(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}

/* Whether a daemon serves `sock`: a socket file nobody listens on (left by
 * a daemon that crashed) refuses the connection, and then a private broker
 * runs the job. Any other failure (no permission, say) is the daemon's to
 * report. */
static bool daemon_present(const char *sock)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        if (stat(sock, &st) < 0 || strlen(sock) >= sizeof(sa.sun_path))
                return false;
        strcpy(sa.sun_path, sock);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED) {
                log_msg("no daemon answers at %s (a stale socket); running with a private broker", sock);
                return false;
        }
        return true;
}

static int cmd_run(int argc, char **argv)
{
        static const struct option opts[] = {
                { "max-procs", required_argument, NULL, 'p' },
                { "max-memory", required_argument, NULL, 'm' },
                { "timeout", required_argument, NULL, 't' },
                { "audit", required_argument, NULL, 'a' },
                { "broker", required_argument, NULL, 'b' },
                { "summary", no_argument, NULL, 's' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct run_options o = { .audit_fd = -1 };
        const char *broker_dir = getenv("SECCELL_BROKER_DIR");
        const char *audit = NULL;
        uint64_t v;
        int c, r;

        optind = 1;
        /* '+': options end at the command */
        while ((c = getopt_long(argc, argv, "+p:m:t:a:hV", opts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        r = parse_uint_range(optarg, 1, MSG_MAX_PROCS, &v);
                        if (r < 0)
                                return bad_value("--max-procs", optarg, r, "expected a whole number from 1");
                        o.max_procs = (uint32_t)v;
                        break;
                case 'm':
                        r = parse_size(optarg, &o.max_memory);
                        if (r == -EDOM)
                                return bad_value("--max-memory", optarg, r,
                                                 "not a whole number of bytes (1.5G is; 0.1G is not)");
                        if (r < 0)
                                return bad_value("--max-memory", optarg, r,
                                                 "expected bytes with an optional binary suffix: 512K, 64M, 1.5G, 2GiB");
                        /* below it the kernel cannot set up an image (the
                         * hard RLIMIT_DATA is never set lower): every
                         * command would die, and a bare number is bytes
                         * (found in review: "64" meant 64 bytes) */
                        if (o.max_memory < MIN_MAX_MEMORY)
                                return bad_value("--max-memory", optarg, r,
                                                 "less than 1 MiB, in which no program can run (a bare number is "
                                                 "bytes: 64M is 64 MiB)");
                        break;
                case 't':
                        r = parse_duration_ms(optarg, &o.timeout_ms);
                        if (r < 0)
                                return bad_value("--timeout", optarg, r,
                                                 "expected seconds, or a number with s/m/h/d");
                        break;
                case 'a': audit = optarg; break;
                case 'b': broker_dir = optarg; break;
                case 's': o.summary = true; break;
                case 'h': usage(stdout); return 0;
                case 'V': printf("seccell %s\n", SECCELL_VERSION); return 0;
                default:
                        fputs("Try 'seccell run --help'.\n", stderr);
                        return EXIT_SECCELL;
                }
        }
        if (optind >= argc) {
                log_msg("no command given");
                fputs("Try 'seccell run --help'.\n", stderr);
                return EXIT_SECCELL;
        }
        o.argv = argv + optind;
        if (!*o.argv[0]) {
                /* as env(1) and execvp(3): no such file (the broker would
                 * only call the request malformed) */
                log_msg("cannot run '': %s", strerror(ENOENT));
                return 127;
        }

        if (audit) {
                o.audit_path = audit;
                const int how = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY;
                /* a FIFO with no reader yet: said, then waited for (a
                 * blocking open would wait without a word) */
                o.audit_fd = open(audit, how | O_NONBLOCK, 0644);
                if (o.audit_fd < 0 && errno == ENXIO) {
                        log_msg("waiting for a reader of the FIFO %s (--audit)", audit);
                        o.audit_fd = open(audit, how, 0644);
                } else if (o.audit_fd >= 0 && fcntl(o.audit_fd, F_SETFL, how & O_APPEND) < 0) {
                        closep(&o.audit_fd);
                        o.audit_fd = -1;
                }
                if (o.audit_fd < 0) {
                        log_errno(-errno, "cannot open audit file %s", audit);
                        return EXIT_SECCELL;
                }
        }

        int status;
        if (!broker_dir && daemon_present(DEFAULT_DAEMON_DIR "/broker.ipc"))
                broker_dir = DEFAULT_DAEMON_DIR;
        struct client cl;
        if (broker_dir) {
                status = client_open(&cl) < 0 ? EXIT_SECCELL : client_run(&cl, broker_dir, &o, -1);
        } else {
                /* A sandbox's processes cannot start a tracer (no privilege,
                 * no supervisor filter): said in one line, before a private
                 * broker and its tracer fail with lines of their own. */
                if (under_seccomp_filter() && !listener_allowed()) {
                        log_msg("seccell run cannot be used inside a seccell sandbox (this process may not create "
                                "a seccomp listener)");
                        return EXIT_SECCELL;
                }
                /* the private broker starts while this process sets up */
                struct embedded e;
                if (embedded_start(&e) < 0)
                        return EXIT_SECCELL;
                if (client_open(&cl) < 0 || embedded_wait_ready(&e) < 0) {
                        status = EXIT_SECCELL;
                        /* a sandbox's processes cannot start a tracer (no
                         * privilege, no supervisor filter): most likely a
                         * nested run */
                        if (under_seccomp_filter())
                                log_msg("this process runs under a seccomp filter: seccell run cannot be used "
                                        "inside a seccell sandbox");
                }
                else
                        status = client_run(&cl, e.dir, &o, e.pidfd);
                client_close(&cl);
                embedded_stop(&e);
                log_debug("private broker stopped");
        }
        client_close(&cl);
        if (o.audit_fd >= 0)
                close(o.audit_fd);
        return status;
}

int main(int argc, char **argv)
{
        log_set_prog("seccell");
        log_debug("start");
        /* Why: the sandbox runs with our uid; were we dumpable, it could
         * write into our memory through /proc/<pid>/mem - and we run
         * outside the filter. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        signal(SIGPIPE, SIG_IGN);
        /* A closed standard stream would take the number of our next
         * descriptor (the signalfd, a socket), and the sandbox would be
         * handed that: /dev/null takes the slot first (open(2) returns the
         * lowest free number). */
        for (int i = 0; i < 3; i++)
                if (fcntl(i, F_GETFD) < 0 && open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY) != i) {
                        log_errno(-errno, "cannot open /dev/null for closed descriptor %d", i);
                        return EXIT_SECCELL;
                }
        if (argc < 2) {
                usage(stderr);
                return EXIT_SECCELL;
        }
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
                usage(stdout);
                return 0;
        }
        if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
                printf("seccell %s\n", SECCELL_VERSION);
                return 0;
        }
        if (!strcmp(argv[1], "run")) {
                argv[1] = "seccell"; /* getopt's messages name argv[0] */
                return cmd_run(argc - 1, argv + 1);
        }
        log_msg("unknown command '%s'", argv[1]);
        fputs("Try 'seccell --help'.\n", stderr);
        return EXIT_SECCELL;
}
