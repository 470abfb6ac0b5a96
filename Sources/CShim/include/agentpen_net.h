// Socket wrappers for the proxy, forwarder and DNS responder. Addresses cross
// the boundary as raw bytes (4 for IPv4, 16 for IPv6) plus a host-order port, so
// Swift never builds a sockaddr. Each wrapper does one call and returns -errno
// on failure.
#ifndef AGENTPEN_NET_H
#define AGENTPEN_NET_H

#include <stdint.h>
#include <sys/types.h>

/// socket(AF_INET or AF_INET6 by addr_len, SOCK_STREAM or SOCK_DGRAM, nonblocking, close-on-exec).
int ap_socket(int addr_len, int datagram);
/// The same, blocking (close-on-exec only): for --check's probe, which waits on connect.
int ap_socket_blocking(int addr_len, int datagram);
int ap_bind_ip(int fd, const uint8_t *addr, int addr_len, uint16_t port);
int ap_connect_ip(int fd, const uint8_t *addr, int addr_len, uint16_t port);
int ap_listen(int fd, int backlog);
/// Writes the local (peer = 0) or peer (peer = 1) address into addr[16]; returns its length (4 or 16).
int ap_sockname_ip(int fd, int peer, uint8_t *addr, uint16_t *port);
/// accept4(nonblocking, close-on-exec), also returning the peer address like ap_sockname_ip.
int ap_accept_ip(int fd, uint8_t *addr, int *addr_len, uint16_t *port);
ssize_t ap_recvfrom_ip(int fd, void *buf, size_t len, uint8_t *addr, int *addr_len, uint16_t *port);
ssize_t ap_sendto_ip(int fd, const void *buf, size_t len, const uint8_t *addr, int addr_len, uint16_t port);
/// recv(MSG_PEEK | MSG_DONTWAIT): look without consuming.
ssize_t ap_recv_peek(int fd, void *buf, size_t len);
ssize_t ap_send_nosignal(int fd, const void *buf, size_t len);
/// Pending error of a nonblocking connect: 0, a positive errno value, or -errno of getsockopt.
int ap_so_error(int fd);
int ap_set_reuseaddr(int fd);
int ap_set_v6only(int fd);
int ap_set_nodelay(int fd);
/// SO_RCVLOWAT: poll reports readable only once this many bytes are queued (or at EOF).
int ap_set_rcvlowat(int fd, int bytes);
/// SO_PEEK_OFF: with offset >= 0 each MSG_PEEK starts there and moves it on, so a
/// peek returns only bytes not peeked before; -1 turns it off. TCP from Linux 6.9
/// (older kernels: -EOPNOTSUPP).
int ap_set_peek_off(int fd, int offset);
/// SO_LINGER {1, 0}: the next close sends a reset instead of a FIN.
int ap_set_linger_reset(int fd);
int ap_shutdown_write(int fd);
/// F_SETPIPE_SZ; returns the size the kernel chose.
int ap_set_pipe_size(int fd, int size);
int ap_get_pipe_size(int fd);
/// 1 if the peer has shut down its sending side (POLLRDHUP/POLLHUP), 0 if not.
int ap_peer_closed(int fd);

/// socketpair(AF_UNIX, SOCK_SEQPACKET, close-on-exec): fds[0], fds[1].
int ap_socketpair_seqpacket(int fds[2]);
/// sendmsg of one byte `tag` with `n` descriptors (SCM_RIGHTS); returns bytes sent.
ssize_t ap_send_fds(int sock, uint8_t tag, const int *fds, int n);
/// recvmsg of one message: its first byte into *tag, up to `max` descriptors into
/// fds (received close-on-exec), their count into *n. Returns bytes received (0 at
/// end); -EMSGSIZE when descriptors were cut off (those that came are closed).
ssize_t ap_recv_fds(int sock, uint8_t *tag, int *fds, int max, int *n);
/// getsockopt SO_TYPE (SOCK_STREAM 1, SOCK_DGRAM 2) and SO_ACCEPTCONN (1 listening).
int ap_socket_kind(int fd, int *type, int *listening);
/// F_GETFL & O_NONBLOCK set: fcntl(F_SETFL).
int ap_set_nonblocking(int fd);
/// Where a connection the firewall redirected was meant to go (SO_ORIGINAL_DST,
/// or IP6T_SO_ORIGINAL_DST when v6): the address into addr[16], its length returned.
int ap_original_dst(int fd, int v6, uint8_t *addr, uint16_t *port);
/// socket(AF_NETLINK, SOCK_RAW, nonblocking, close-on-exec) of `protocol` (e.g. 12, NETLINK_NETFILTER).
int ap_netlink_socket(int protocol);
/// bind to a kernel-chosen port id, no multicast groups.
int ap_netlink_bind(int fd);
/// sendto the kernel (port id 0).
ssize_t ap_netlink_send(int fd, const void *buf, size_t len);
/// recvfrom(MSG_DONTWAIT); the sender's port id (0: the kernel) into *sender.
ssize_t ap_netlink_recv(int fd, void *buf, size_t len, uint32_t *sender);

// ---- readiness (the proxy's own event loop; see EventLoop.swift) ------------

enum {
    AP_READY_READ = 1 << 0,   // readable, at end of stream, hung up or in error
    AP_READY_WRITE = 1 << 1,  // writable, hung up or in error
};
/// epoll_create1(EPOLL_CLOEXEC).
int ap_epoll_create(void);
/// Adds (add = 1) or changes (add = 0) fd's one-shot interest in `want`
/// (AP_READY_* bits), tagged with `token`: after one report the descriptor
/// is silent, hang-up included, until it is changed again.
int ap_epoll_arm(int ep, int fd, int add, uint32_t want, uint64_t token);
/// Removes fd from the set.
int ap_epoll_remove(int ep, int fd);
/// epoll_pwait2: up to `max` reports into ready[] (AP_READY_* bits; a hang-up
/// or error sets both) and tokens[], waiting at most timeout_ns (< 0: no
/// limit); the count (0: the time ran out) or -errno.
int ap_epoll_wait(int ep, uint32_t *ready, uint64_t *tokens, int max, int64_t timeout_ns);
/// sched_setattr(0, SCHED_OTHER at `nice`, sched_runtime = ns) for the calling
/// thread: asks the fair scheduler (EEVDF, Linux 6.12+) for a slice of `ns`
/// (clamped to 0.1-100 ms), so that the thread preempts on wake-up; older
/// kernels ignore sched_runtime for SCHED_OTHER. 0 or -errno.
int ap_sched_slice(int nice, uint64_t ns);
/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): the descriptor or -errno.
int ap_eventfd(void);
/// Adds 1 to the eventfd's counter (makes it readable); 0 or -errno.
int ap_eventfd_signal(int fd);
/// Reads (resets) the eventfd's counter; 0 or -errno (-EAGAIN: it was 0).
int ap_eventfd_drain(int fd);

#endif
