// Thin wrappers for Linux calls that Swift's Glibc module does not expose.
// Each wrapper does one call and returns -errno on failure (never sets errno for
// the caller to read), so Swift sees one convention everywhere.
#ifndef AGENTPEN_SHIM_H
#define AGENTPEN_SHIM_H

#include <stdint.h>
#include <sys/types.h>

// ---- spawning -------------------------------------------------------------

/// One descriptor to hand to the child: `src` in the parent becomes `dst` in the child.
typedef struct {
    int src;
    int dst;
} ap_fd_map;

enum {
    AP_SPAWN_PDEATHSIG = 1 << 0,    // child gets SIGKILL when the spawning thread dies
    AP_SPAWN_IGNORE_INTERACTIVE = 1 << 1, // SIGINT and SIGQUIT ignored (Ctrl-C is for the agent)
};

/// fork + execve. In the child: every signal reset to default, empty mask, the
/// listed descriptors moved into place, every other descriptor closed. Exec
/// failures are reported back: returns the pid (> 0) or -errno of the failed
/// fork/exec. `envp` may be NULL for the caller's environment.
pid_t ap_spawn(const char *path, char *const argv[], char *const envp[],
               const ap_fd_map *fds, int nfds, int flags);

// ---- descriptors and processes --------------------------------------------
int ap_memfd_create(const char *name, unsigned int flags);
int ap_pipe2(int fds[2], int flags);
int ap_unshare(int flags);
/// pidfd_open(pid, 0): a descriptor that polls readable once the process has exited.
int ap_pidfd_open(pid_t pid);

/// SIGTERM and SIGHUP to agentpen are passed on (as SIGTERM) to `pid`, and
/// remembered; SIGINT and SIGQUIT are ignored (the terminal sends them to the
/// agent too). Async-signal-safe: the handler only calls kill().
void ap_forward_termination_to(pid_t pid);
/// The terminating signal received since ap_forward_termination_to, or 0.
int ap_received_signal(void);

extern const int AP_CLONE_NEWUSER, AP_CLONE_NEWNET;
extern const int AP_MFD_CLOEXEC, AP_O_CLOEXEC, AP_O_NONBLOCK, AP_O_PATH;

// ---- the persistence audit's walk ----------------------------------------
/// getdents64(2): fills `buf` with struct linux_dirent64 records; bytes or -errno.
long ap_getdents64(int fd, void *buf, size_t len);
/// renameat2(2) with RENAME_NOREPLACE: never replaces an existing name.
int ap_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname);
/// CLOCK_REALTIME_COARSE, the clock file timestamps are taken from.
int ap_realtime_coarse(int64_t *sec, int64_t *nsec);
extern const int AP_O_NOFOLLOW, AP_O_DIRECTORY;

// ---- splicing ----------------------------------------------------------------
ssize_t ap_splice(int fd_in, int fd_out, size_t len, unsigned int flags);
extern const unsigned int AP_SPLICE_F_MOVE, AP_SPLICE_F_NONBLOCK;

// ---- Landlock (raw syscalls; our own struct definitions) ------------------
struct ap_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};
/// Returns the best ABI version (>= 1) or -errno (-ENOSYS, -EOPNOTSUPP when disabled).
int ap_landlock_abi(void);
/// Creates a ruleset; `attr_size` lets the caller pass a size matching the ABI.
int ap_landlock_create_ruleset(const struct ap_landlock_ruleset_attr *attr, size_t attr_size);
/// Allows `access` beneath the directory or file opened at `parent_fd`.
int ap_landlock_add_path_rule(int ruleset_fd, uint64_t access, int parent_fd);
int ap_landlock_restrict_self(int ruleset_fd);

/// ioctl(dst_fd, FICLONE, src_fd): `dst` shares `src`'s blocks (a reflink),
/// where the filesystem can (btrfs, XFS); -EOPNOTSUPP, -EXDEV, -EINVAL otherwise.
int ap_ficlone(int dst_fd, int src_fd);
// ---- selftest probes (what the sandbox must refuse; each is tried once) ------
/// ptrace(PTRACE_PEEKDATA, pid, 0, 0) as a raw syscall: -ESRCH for a process we
/// do not trace, -EPERM where a filter refuses ptrace.
long ap_ptrace_peek(int pid);
/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) as a raw syscall.
long ap_keyctl_session_keyring(void);
/// ioctl(fd, TIOCSTI, &c): pushes one byte into a terminal's input.
int ap_ioctl_tiocsti(int fd, char c);
/// process_vm_readv of `len` bytes from our own memory.
long ap_process_vm_readv_self(void *dst, const void *src, size_t len);
/// mount("none", target, "tmpfs", 0, NULL).
int ap_mount_tmpfs(const char *target);
/// socket(family, SOCK_STREAM, 0) for an arbitrary family (AF_VSOCK = 40).
int ap_socket_family(int family);

/// setns(fd, nstype).
int ap_setns(int fd, int nstype);
/// mount --make-rprivate /: nothing mounted here propagates anywhere.
int ap_mount_private_root(void);
/// mount --bind src dst.
int ap_mount_bind(const char *src, const char *dst);
extern const int AP_CLONE_NEWNS;

#endif

// seccomp user notification (the refused-syscall listener; it travels with
// ap_send_fds/ap_recv_fds over an ap_socketpair_seqpacket pair).
/// One pending notification, flattened: the caller's pid (in the reader's pid
/// namespace, 0 if not visible), the syscall number, its architecture, its arguments.
struct ap_notification {
    uint64_t id;
    uint32_t pid;
    int32_t nr;
    uint32_t arch;
    uint64_t args[6];
};
/// SECCOMP_IOCTL_NOTIF_RECV (blocks until a notification is pending).
int ap_notif_recv(int listener, struct ap_notification *out);
/// SECCOMP_IOCTL_NOTIF_SEND: the call fails with `error` (never continues).
int ap_notif_refuse(int listener, uint64_t id, int error);
/// poll(2) on the listener: 1 readable (a notification), 0 hung up (no process uses the filter),
/// 2 `stop_fd` readable, -errno (-EIO: the listener is in error).
int ap_notif_wait(int listener, int stop_fd);
/// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER) of the classic BPF
/// program `program` (`bytes` long: whole instructions, at most BPF_MAXINSNS, else -EINVAL)
/// on the calling thread: the listener's descriptor, or -errno.
int ap_seccomp_load_listener(const void *program, unsigned int bytes);
/// prctl(PR_SET_NO_NEW_PRIVS, 1): what an unprivileged seccomp filter needs.
int ap_set_no_new_privs(void);
/// fcntl(F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE) of a memfd made
/// with AP_MFD_ALLOW_SEALING: its content cannot change any more, through any descriptor.
int ap_memfd_seal_all(int fd);
/// fcntl(F_GET_SEALS): 1 when all four seals above are on, 0 when one is missing, -errno.
int ap_memfd_sealed(int fd);
extern const unsigned int AP_MFD_ALLOW_SEALING;

// ---- fanotify (which run wrote a file: the persistence audit's attribution) ----
/// fanotify_init(FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_NONBLOCK, O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_CLOEXEC):
/// a group whose events carry an open descriptor (O_NONBLOCK: a FIFO cannot block its opening).
int ap_fanotify_init_fd(void);
/// fanotify_init(FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_REPORT_FID, O_RDONLY): the only kind of
/// group a process without CAP_SYS_ADMIN in the initial user namespace may create.
int ap_fanotify_init_fid(void);
/// fanotify_mark(group, FAN_MARK_ADD|FAN_MARK_MOUNT, FAN_CLOSE_WRITE, dirfd, NULL):
/// the mount `dirfd` was opened on (the descriptor's own mount, in whatever namespace).
int ap_fanotify_mark_mount(int group, int dirfd);
/// sizeof(struct fanotify_event_metadata), FANOTIFY_METADATA_VERSION, FAN_Q_OVERFLOW, FAN_NOFD.
extern const int AP_FAN_METADATA_LEN, AP_FAN_METADATA_VERSION, AP_FAN_NOFD;
extern const unsigned long long AP_FAN_Q_OVERFLOW;
/// memmem(3) (a GNU extension Swift's Glibc module hides): 1 if `needle` occurs in `hay`, else 0.
int ap_memmem(const void *hay, size_t hay_len, const void *needle, size_t needle_len);
