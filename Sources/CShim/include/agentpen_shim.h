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

#endif
