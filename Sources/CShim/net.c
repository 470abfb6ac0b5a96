#include "agentpen_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/sched/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/netlink.h>

#define RET(x) do { long r_ = (long)(x); return r_ < 0 ? -errno : r_; } while (0)

static socklen_t fill(struct sockaddr_storage *ss, const uint8_t *addr, int addr_len, uint16_t port) {
    memset(ss, 0, sizeof *ss);
    if (addr_len == 4) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        memcpy(&s->sin_addr, addr, 4);
        return sizeof *s;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    memcpy(&s->sin6_addr, addr, 16);
    return sizeof *s;
}

static int unfill(const struct sockaddr_storage *ss, uint8_t *addr, uint16_t *port) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        memcpy(addr, &s->sin_addr, 4);
        *port = ntohs(s->sin_port);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        memcpy(addr, &s->sin6_addr, 16);
        *port = ntohs(s->sin6_port);
        return 16;
    }
    return -EAFNOSUPPORT;
}

int ap_socket(int addr_len, int datagram) {
    if (addr_len != 4 && addr_len != 16) return -EINVAL;
    RET(socket(addr_len == 4 ? AF_INET : AF_INET6,
               (datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}
int ap_socket_blocking(int addr_len, int datagram) {
    if (addr_len != 4 && addr_len != 16) return -EINVAL;
    RET(socket(addr_len == 4 ? AF_INET : AF_INET6, (datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
}
int ap_bind_ip(int fd, const uint8_t *addr, int addr_len, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t l = fill(&ss, addr, addr_len, port);
    RET(bind(fd, (struct sockaddr *)&ss, l));
}
int ap_connect_ip(int fd, const uint8_t *addr, int addr_len, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t l = fill(&ss, addr, addr_len, port);
    RET(connect(fd, (struct sockaddr *)&ss, l));
}
int ap_listen(int fd, int backlog) { RET(listen(fd, backlog)); }
int ap_sockname_ip(int fd, int peer, uint8_t *addr, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &l) : getsockname(fd, (struct sockaddr *)&ss, &l);
    if (r < 0) return -errno;
    return unfill(&ss, addr, port);
}
int ap_accept_ip(int fd, uint8_t *addr, int *addr_len, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    int c = accept4(fd, (struct sockaddr *)&ss, &l, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return -errno;
    int al = unfill(&ss, addr, port);
    *addr_len = al < 0 ? 0 : al;
    return c;
}
ssize_t ap_recvfrom_ip(int fd, void *buf, size_t len, uint8_t *addr, int *addr_len, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    ssize_t n = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&ss, &l);
    if (n < 0) return -errno;
    int al = unfill(&ss, addr, port);
    *addr_len = al < 0 ? 0 : al;
    return n;
}
ssize_t ap_sendto_ip(int fd, const void *buf, size_t len, const uint8_t *addr, int addr_len, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t l = fill(&ss, addr, addr_len, port);
    RET(sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&ss, l));
}
ssize_t ap_recv_peek(int fd, void *buf, size_t len) { RET(recv(fd, buf, len, MSG_PEEK | MSG_DONTWAIT)); }
ssize_t ap_send_nosignal(int fd, const void *buf, size_t len) { RET(send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT)); }
int ap_so_error(int fd) {
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) return -errno;
    return e;
}
int ap_set_reuseaddr(int fd) { int on = 1; RET(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on)); }
int ap_set_v6only(int fd) { int on = 1; RET(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on)); }
int ap_set_nodelay(int fd) { int on = 1; RET(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on)); }
int ap_set_rcvlowat(int fd, int bytes) { RET(setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes)); }
int ap_set_peek_off(int fd, int offset) { RET(setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof offset)); }
int ap_set_linger_reset(int fd) {
    struct linger l = { .l_onoff = 1, .l_linger = 0 };
    RET(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l));
}
int ap_shutdown_write(int fd) { RET(shutdown(fd, SHUT_WR)); }
int ap_set_pipe_size(int fd, int size) { RET(fcntl(fd, F_SETPIPE_SZ, size)); }
int ap_get_pipe_size(int fd) { RET(fcntl(fd, F_GETPIPE_SZ)); }
int ap_peer_closed(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    int r = poll(&p, 1, 0);
    if (r < 0) return -errno;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) ? 1 : 0;
}

int ap_socketpair_seqpacket(int fds[2]) { RET(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds)); }
ssize_t ap_send_fds(int sock, uint8_t tag, const int *fds, int n) {
    if (n < 0 || n > 64) return -EINVAL;
    char control[CMSG_SPACE(sizeof(int) * 64)];
    memset(control, 0, sizeof control);
    struct iovec iov = { .iov_base = &tag, .iov_len = 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        m.msg_control = control;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    RET(sendmsg(sock, &m, MSG_NOSIGNAL));
}
ssize_t ap_recv_fds(int sock, uint8_t *tag, int *fds, int max, int *n) {
    if (max < 0 || max > 64) return -EINVAL;
    char control[CMSG_SPACE(sizeof(int) * 64)];
    struct iovec iov = { .iov_base = tag, .iov_len = 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    *n = 0;
    ssize_t r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (r < 0) return -errno;
    int cut = (m.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *got = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*n < max) fds[(*n)++] = got[i]; else { close(got[i]); cut = 1; }
        }
    }
    if (cut) { for (int i = 0; i < *n; i++) close(fds[i]); *n = 0; return -EMSGSIZE; }
    return r;
}
int ap_socket_kind(int fd, int *type, int *listening) {
    socklen_t l = sizeof *type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &l) < 0) return -errno;
    l = sizeof *listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, listening, &l) < 0) return -errno;
    return 0;
}
int ap_set_nonblocking(int fd) {
    int f = fcntl(fd, F_GETFL);
    if (f < 0) return -errno;
    RET(fcntl(fd, F_SETFL, f | O_NONBLOCK));
}

int ap_original_dst(int fd, int v6, uint8_t *addr, uint16_t *port) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    /* SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST are both 80. */
    if (getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, 80, &ss, &len) < 0) return -errno;
    int n = unfill(&ss, addr, port);
    return n > 0 ? n : -EAFNOSUPPORT;
}

int ap_netlink_socket(int protocol) {
    RET(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
}

int ap_netlink_bind(int fd) {
    struct sockaddr_nl a;
    memset(&a, 0, sizeof a);
    a.nl_family = AF_NETLINK;
    RET(bind(fd, (struct sockaddr *)&a, sizeof a));
}

ssize_t ap_netlink_send(int fd, const void *buf, size_t len) {
    struct sockaddr_nl a;
    memset(&a, 0, sizeof a);
    a.nl_family = AF_NETLINK;
    RET(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof a));
}

ssize_t ap_netlink_recv(int fd, void *buf, size_t len, uint32_t *sender) {
    struct sockaddr_nl a;
    socklen_t alen = sizeof a;
    memset(&a, 0, sizeof a);
    ssize_t n = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&a, &alen);
    if (n < 0) return -errno;
    *sender = a.nl_pid;
    return n;
}

int ap_epoll_create(void) { RET(epoll_create1(EPOLL_CLOEXEC)); }
int ap_epoll_arm(int ep, int fd, int add, uint32_t want, uint64_t token) {
    struct epoll_event e = { .events = EPOLLONESHOT, .data.u64 = token };
    if (want & AP_READY_READ) e.events |= EPOLLIN | EPOLLRDHUP;
    if (want & AP_READY_WRITE) e.events |= EPOLLOUT;
    RET(epoll_ctl(ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e));
}
int ap_epoll_remove(int ep, int fd) { RET(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL)); }
int ap_sched_slice(int nice, uint64_t ns) {
    struct sched_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.sched_policy = 0;   /* SCHED_OTHER */
    a.sched_nice = nice;
    a.sched_runtime = ns;
    RET(syscall(SYS_sched_setattr, 0, &a, 0));
}
int ap_eventfd(void) { RET(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }
int ap_eventfd_signal(int fd) { uint64_t one = 1; RET(write(fd, &one, sizeof one) == sizeof one ? 0 : -1); }
int ap_eventfd_drain(int fd) { uint64_t n; RET(read(fd, &n, sizeof n) == sizeof n ? 0 : -1); }
int ap_epoll_wait(int ep, uint32_t *ready, uint64_t *tokens, int max, int64_t timeout_ns) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    struct timespec t = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    // epoll_pwait2 (Linux 5.11) for a timeout finer than a millisecond; where it is
    // missing (an older kernel, valgrind) epoll_wait, the timeout rounded up so a
    // deadline is never woken for early in a busy loop.
    static _Atomic int no_pwait2 = 0;
    int n = -1;
    if (!no_pwait2) {
        n = epoll_pwait2(ep, evs, max, timeout_ns < 0 ? NULL : &t, NULL);
        if (n < 0 && errno == ENOSYS) no_pwait2 = 1;
    }
    if (no_pwait2) {
        int ms = timeout_ns < 0 ? -1 : timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
        if (timeout_ns > (int64_t)2147483647 * 1000000) ms = 2147483647;
        n = epoll_wait(ep, evs, max, ms);
    }
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t r = 0, e = evs[i].events;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) r |= AP_READY_READ;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) r |= AP_READY_WRITE;
        ready[i] = r;
        tokens[i] = evs[i].data.u64;
    }
    return n;
}
