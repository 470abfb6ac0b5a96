#include "agentpen_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#define RET(x) do { long r_ = (long)(x); return r_ < 0 ? -errno : r_; } while (0)

const int AP_CLONE_NEWUSER = CLONE_NEWUSER, AP_CLONE_NEWNET = CLONE_NEWNET;
const int AP_MFD_CLOEXEC = MFD_CLOEXEC, AP_O_CLOEXEC = O_CLOEXEC,
          AP_O_NONBLOCK = O_NONBLOCK, AP_O_PATH = O_PATH;
const unsigned int AP_SPLICE_F_MOVE = SPLICE_F_MOVE, AP_SPLICE_F_NONBLOCK = SPLICE_F_NONBLOCK;

// Only async-signal-safe calls between fork and exec.
static void child_fail(int report_fd) {
    int e = errno;
    while (write(report_fd, &e, sizeof e) < 0 && errno == EINTR) {}
    _exit(127);
}

pid_t ap_spawn(const char *path, char *const argv[], char *const envp[],
               const ap_fd_map *fds, int nfds, int flags) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) return -errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   // no handler may run in the child
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
        if (flags & AP_SPAWN_IGNORE_INTERACTIVE) { signal(SIGINT, SIG_IGN); signal(SIGQUIT, SIG_IGN); }
        if ((flags & AP_SPAWN_PDEATHSIG) && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(report[1]);
        // Move the report pipe and every source above all targets first, so a
        // dup2 into place can never clobber a source still needed.
        int high = 3;
        for (int i = 0; i < nfds; i++) if (fds[i].dst >= high) high = fds[i].dst + 1;
        int rep = fcntl(report[1], F_DUPFD_CLOEXEC, high + nfds + 1);
        if (rep < 0) child_fail(report[1]);
        int tmp[nfds > 0 ? nfds : 1];
        for (int i = 0; i < nfds; i++) {
            tmp[i] = fcntl(fds[i].src, F_DUPFD, high);
            if (tmp[i] < 0) child_fail(rep);
        }
        for (int i = 0; i < nfds; i++) {
            if (dup2(tmp[i], fds[i].dst) < 0) child_fail(rep);   // dup2 clears FD_CLOEXEC
        }
        // Close everything that is not a target and not the report pipe.
        int keep_max = 2;
        for (int i = 0; i < nfds; i++) if (fds[i].dst > keep_max) keep_max = fds[i].dst;
        for (int fd = 3; fd <= keep_max; fd++) {
            int wanted = 0;
            for (int i = 0; i < nfds; i++) if (fds[i].dst == fd) wanted = 1;
            if (!wanted) close(fd);
        }
        if (keep_max + 1 < rep) syscall(SYS_close_range, keep_max + 1, rep - 1, 0);
        syscall(SYS_close_range, rep + 1, ~0U, 0);
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (envp) execve(path, argv, envp);
        else execv(path, argv);
        child_fail(rep);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (pid < 0) { close(report[0]); return -fork_errno; }
    int child_errno = 0;
    ssize_t n;
    do { n = read(report[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -child_errno;
    }
    return pid;
}

int ap_memfd_create(const char *name, unsigned int flags) { RET(memfd_create(name, flags)); }
int ap_pipe2(int fds[2], int flags) { RET(pipe2(fds, flags)); }

const int AP_O_NOFOLLOW = O_NOFOLLOW, AP_O_DIRECTORY = O_DIRECTORY;
long ap_getdents64(int fd, void *buf, size_t len) { RET(getdents64(fd, buf, len)); }
int ap_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname) {
    RET(renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE));
}
int ap_realtime_coarse(int64_t *sec, int64_t *nsec) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) < 0) return -errno;
    *sec = ts.tv_sec;
    *nsec = ts.tv_nsec;
    return 0;
}
int ap_unshare(int flags) { RET(unshare(flags)); }


ssize_t ap_splice(int fd_in, int fd_out, size_t len, unsigned int flags) {
    RET(splice(fd_in, NULL, fd_out, NULL, len, flags));
}

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define AP_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#define AP_LANDLOCK_RULE_PATH_BENEATH 1

struct ap_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int ap_landlock_abi(void) {
    RET(syscall(SYS_landlock_create_ruleset, NULL, 0, AP_LANDLOCK_CREATE_RULESET_VERSION));
}
int ap_landlock_create_ruleset(const struct ap_landlock_ruleset_attr *attr, size_t attr_size) {
    RET(syscall(SYS_landlock_create_ruleset, attr, attr_size, 0));
}
int ap_landlock_add_path_rule(int ruleset_fd, uint64_t access, int parent_fd) {
    struct ap_landlock_path_beneath_attr pb = { .allowed_access = access, .parent_fd = parent_fd };
    RET(syscall(SYS_landlock_add_rule, ruleset_fd, AP_LANDLOCK_RULE_PATH_BENEATH, &pb, 0));
}
int ap_landlock_restrict_self(int ruleset_fd) {
    RET(syscall(SYS_landlock_restrict_self, ruleset_fd, 0));
}

static volatile sig_atomic_t forward_pid = 0;
static volatile sig_atomic_t received = 0;

static void forward_handler(int sig) {
    received = sig;
    if (forward_pid > 0) kill((pid_t)forward_pid, SIGTERM);
}

void ap_forward_termination_to(pid_t pid) {
    forward_pid = pid;
    struct sigaction sa = { .sa_handler = forward_handler };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
}

int ap_received_signal(void) { return received; }
