#include "agentpen_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <termios.h>
#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)   /* linux/fs.h, which clashes with sys/mount.h on glibc 2.36 */
#endif
#include <sys/prctl.h>
#include <sys/resource.h>
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

struct ap_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// Closes every open descriptor in [lo, hi]. close_range first; where it fails
// (kernels before 5.9, a seccomp policy around agentpen) one by one: the open
// ones from /proc/self/fd, read with getdents64 into a stack buffer (passes
// repeat until one closes nothing, as closing changes the listing), else every
// number up to the hard RLIMIT_NOFILE. Async-signal-safe: runs between fork and exec.
static void close_all_in(unsigned int lo, unsigned int hi) {
    if (lo > hi) return;
    if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        char buf[4096] __attribute__((aligned(8)));
        int listed = 0;
        for (int pass = 0; pass < 64; pass++) {
            int closed = 0;
            long n;
            if (lseek(dir, 0, SEEK_SET) < 0) break;
            while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
                for (long off = 0; off < n;) {
                    struct ap_dirent64 *d = (struct ap_dirent64 *)(buf + off);
                    off += d->d_reclen;
                    unsigned long fd = 0;
                    const char *c = d->d_name;
                    if (*c < '0' || *c > '9') continue;   // "." and ".."
                    for (; *c >= '0' && *c <= '9'; c++) fd = fd * 10 + (unsigned long)(*c - '0');
                    if (fd >= lo && fd <= hi && (int)fd != dir) { close((int)fd); closed++; }
                }
            }
            if (n < 0) break;
            if (closed == 0) { listed = 1; break; }
        }
        close(dir);
        if (listed) return;
    }
    struct rlimit rl;
    unsigned long max = 1UL << 20;   // the kernel's default nr_open
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < max) max = rl.rlim_max;
    for (unsigned long fd = lo; fd <= hi && fd < max; fd++) close((int)fd);
}

pid_t ap_spawn(const char *path, char *const argv[], char *const envp[],
               const ap_fd_map *fds, int nfds, int flags) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) return -errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   // no handler may run in the child
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
        if (flags & AP_SPAWN_IGNORE_INTERACTIVE) { signal(SIGINT, SIG_IGN); signal(SIGQUIT, SIG_IGN); }
        if (flags & AP_SPAWN_PDEATHSIG) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(report[1]);
            // The parent may have died before the signal was armed: then nobody
            // would ever kill this child. Nobody reads the report pipe either.
            if (getppid() != parent) _exit(127);
        }
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
        if (keep_max + 1 < rep) close_all_in((unsigned int)keep_max + 1, (unsigned int)rep - 1);
        close_all_in((unsigned int)rep + 1, ~0U);
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
int ap_pidfd_open(pid_t pid) { RET(syscall(SYS_pidfd_open, pid, 0)); }


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

#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>

int ap_notif_recv(int listener, struct ap_notification *out) {
    struct seccomp_notif req;
    memset(&req, 0, sizeof req);   // the kernel refuses a request buffer that is not zeroed
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) return -errno;
    out->id = req.id;
    out->pid = req.pid;
    out->nr = req.data.nr;
    out->arch = req.data.arch;
    for (int i = 0; i < 6; i++) out->args[i] = req.data.args[i];
    return 0;
}

int ap_notif_refuse(int listener, uint64_t id, int error) {
    struct seccomp_notif_resp resp = { .id = id, .val = 0, .error = -error, .flags = 0 };
    RET(ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp));
}

#include <linux/filter.h>

int ap_seccomp_load_listener(const void *program, unsigned int bytes) {
    if (bytes == 0 || bytes % sizeof(struct sock_filter) != 0 || bytes / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return -EINVAL;
    struct sock_fprog prog = { .len = (unsigned short)(bytes / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)program };
    RET(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
}

int ap_set_no_new_privs(void) { RET(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)); }

#define AP_ALL_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
const unsigned int AP_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;
int ap_memfd_seal_all(int fd) { RET(fcntl(fd, F_ADD_SEALS, AP_ALL_SEALS)); }
int ap_memfd_sealed(int fd) {
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) return -errno;
    return (seals & AP_ALL_SEALS) == AP_ALL_SEALS;
}

int ap_notif_wait(int listener, int stop_fd) {
    struct pollfd p[2] = { { .fd = listener, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
    for (;;) {
        int n = poll(p, stop_fd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (p[0].revents & POLLIN) return 1;
        if (p[0].revents & (POLLERR | POLLNVAL)) return -EIO;
        if (p[0].revents & POLLHUP) return 0;
        return 2;   // told to stop
    }
}

int ap_ficlone(int dst_fd, int src_fd) {
    return ioctl(dst_fd, FICLONE, src_fd) == 0 ? 0 : -errno;
}
// ---- selftest probes ---------------------------------------------------------
long ap_ptrace_peek(int pid) { RET(syscall(SYS_ptrace, (long)PTRACE_PEEKDATA, (long)pid, 0L, 0L)); }
long ap_keyctl_session_keyring(void) { RET(syscall(SYS_keyctl, 0L /* KEYCTL_GET_KEYRING_ID */, -3L /* KEY_SPEC_SESSION_KEYRING */, 0L)); }
int ap_ioctl_tiocsti(int fd, char c) { RET(ioctl(fd, TIOCSTI, &c)); }
long ap_process_vm_readv_self(void *dst, const void *src, size_t len) {
    struct iovec local = { dst, len }, remote = { (void *)src, len };
    RET(process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
}
int ap_mount_tmpfs(const char *target) { RET(mount("none", target, "tmpfs", 0, NULL)); }
int ap_socket_family(int family) { RET(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)); }
int ap_setns(int fd, int nstype) { RET(setns(fd, nstype)); }
int ap_mount_private_root(void) { RET(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL)); }
int ap_mount_bind(const char *src, const char *dst) { RET(mount(src, dst, NULL, MS_BIND, NULL)); }
const int AP_CLONE_NEWNS = CLONE_NEWNS;

#include <sys/fanotify.h>
const int AP_FAN_METADATA_LEN = FAN_EVENT_METADATA_LEN, AP_FAN_METADATA_VERSION = FANOTIFY_METADATA_VERSION,
          AP_FAN_NOFD = FAN_NOFD;
const unsigned long long AP_FAN_Q_OVERFLOW = FAN_Q_OVERFLOW;
int ap_fanotify_init_fd(void) {
    RET(fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_NONBLOCK | O_LARGEFILE | O_CLOEXEC));
}
int ap_fanotify_init_fid(void) { RET(fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_REPORT_FID, O_RDONLY)); }
int ap_fanotify_mark_mount(int group, int dirfd) {
    RET(fanotify_mark(group, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, dirfd, NULL));
}
int ap_memmem(const void *hay, size_t hay_len, const void *needle, size_t needle_len) {
    return memmem(hay, hay_len, needle, needle_len) != NULL;
}
