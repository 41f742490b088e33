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

#endif
