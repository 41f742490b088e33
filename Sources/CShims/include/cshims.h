#ifndef SETTLED_CSHIMS_H
#define SETTLED_CSHIMS_H

#include <stdint.h>
#include <sys/types.h>

// The credentials of the process at the other end of a connected Unix domain socket,
// read with getsockopt(SO_PEERCRED). Swift does not see glibc's `struct ucred` (it hides
// behind _GNU_SOURCE), so this shim reads it. Returns 0 on success, -1 with errno set.
int settled_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);

// Supplementary groups of a user name and primary gid (getgrouplist). Writes at most
// *count gids; on return *count holds the number the user has. Returns 0, or -1 when
// the buffer was too small (then *count is the size needed).
int settled_group_list(const char *user, uint32_t gid, uint32_t *groups, int *count);

// epoll and eventfd for the HTTP server's event loops (Swift's Glibc module does not carry
// <sys/epoll.h>, and struct epoll_event is packed on x86_64). Each returns what the call it
// wraps returns, -1 with errno set on failure.
enum {
    SETTLED_EPOLL_IN = 0x001,
    SETTLED_EPOLL_OUT = 0x004,
    SETTLED_EPOLL_ERR = 0x008,
    SETTLED_EPOLL_HUP = 0x010,
};
enum { SETTLED_EPOLL_ADD = 1, SETTLED_EPOLL_DEL = 2, SETTLED_EPOLL_MOD = 3 };
enum { SETTLED_EPOLL_EVENTS_MAX = 64 };

// epoll_create1(EPOLL_CLOEXEC).
int settled_epoll_create(void);
// epoll_ctl with the event mask and a 64-bit identifier as the event's data.
int settled_epoll_control(int epoll_fd, int operation, int fd, uint32_t events, uint64_t identifier);
// epoll_wait for at most `count` (<= SETTLED_EPOLL_EVENTS_MAX) events; writes each one's
// identifier and mask.
int settled_epoll_wait(int epoll_fd, uint64_t *identifiers, uint32_t *events, int count, int timeout_milliseconds);
// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
int settled_eventfd(void);

// The processors this process may run on (sched_getaffinity: a cpuset or CPUAffinity= counts),
// or the processors online when that fails.
int settled_processors_available(void);

// Names the calling thread (at most 15 bytes are kept), as ps and perf show it.
int settled_thread_set_name(const char *name);

// Spawns `path` with `argv` and the environment, in `directory`, its input /dev/null, its
// output and errors appended to the file `output_path`, and no other descriptor of this
// process open (glibc's posix_spawn with closefrom and chdir, which Swift does not see).
// Returns 0 and sets `pid`, or an errno value.
int settled_spawn(const char *path, char *const argv[], const char *directory, const char *output_path, int32_t *pid);

// SHA-256's compression of `blocks` whole 64-byte blocks at `data` into the eight words of
// `state`, with the processor's SHA extensions (x86-64 SHA-NI). Returns 1, or 0 (nothing
// done) where the processor has none: the caller compresses them itself.
int settled_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

// Starts the writeback of `bytes` of `fd` from `offset` to the disk without waiting for it
// (sync_file_range with SYNC_FILE_RANGE_WRITE, which Swift does not see): a later fsync then
// waits for less. Returns 0, or -1 with errno set.
int settled_start_writeback(int fd, int64_t offset, int64_t bytes);

#endif
