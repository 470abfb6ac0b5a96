#include "agentpen_session.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RET(x) do { long r_ = (long)(x); return r_ < 0 ? -errno : (int)r_; } while (0)

static int fill_un(struct sockaddr_un *a, const char *path) {
    size_t n = strlen(path);
    if (n >= sizeof a->sun_path) return -ENAMETOOLONG;
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, n);
    return 0;
}

int ap_unix_socket(int nonblocking) {
    RET(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
}

int ap_bind_unix(int fd, const char *path) {
    struct sockaddr_un a;
    int e = fill_un(&a, path);
    if (e < 0) return e;
    RET(bind(fd, (struct sockaddr *)&a, sizeof a));
}

int ap_connect_unix(int fd, const char *path) {
    struct sockaddr_un a;
    int e = fill_un(&a, path);
    if (e < 0) return e;
    RET(connect(fd, (struct sockaddr *)&a, sizeof a));
}

int ap_accept_unix(int fd) { RET(accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)); }

int ap_peer_uid(int fd, uint32_t *uid) {
    struct ucred c;
    socklen_t l = sizeof c;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l) < 0) return -errno;
    *uid = c.uid;
    return 0;
}

int ap_terminal_size(int fd, int *rows, int *cols) {
    struct winsize w;
    if (ioctl(fd, TIOCGWINSZ, &w) < 0) return -errno;
    *rows = w.ws_row;
    *cols = w.ws_col;
    return 0;
}
