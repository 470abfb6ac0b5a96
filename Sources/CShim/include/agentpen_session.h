// Unix sockets (a session's control socket) and the terminal's size, for
// sessions and `agentpen watch`. Each wrapper does one call and returns -errno
// on failure. Paths may be /proc/self/fd/N/NAME, so a socket in a directory
// opened without following symlinks is reached whatever the directory's path length.
#ifndef AGENTPEN_SESSION_H
#define AGENTPEN_SESSION_H

#include <stdint.h>
#include <sys/types.h>

/// socket(AF_UNIX, SOCK_STREAM, close-on-exec; nonblocking when asked).
int ap_unix_socket(int nonblocking);
/// bind to a path (at most 107 bytes).
int ap_bind_unix(int fd, const char *path);
/// connect to a path (at most 107 bytes).
int ap_connect_unix(int fd, const char *path);
/// accept4(nonblocking, close-on-exec), no address.
int ap_accept_unix(int fd);
/// The connected peer's uid (SO_PEERCRED).
int ap_peer_uid(int fd, uint32_t *uid);
/// TIOCGWINSZ: the terminal's rows and columns.
int ap_terminal_size(int fd, int *rows, int *cols);

#endif
