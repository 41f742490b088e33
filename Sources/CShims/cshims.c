#define _GNU_SOURCE
#include "cshims.h"

#include <errno.h>
#include <grp.h>
#include <sys/socket.h>

int settled_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    if (length != sizeof(credentials)) { errno = EINVAL; return -1; }
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int settled_group_list(const char *user, uint32_t gid, uint32_t *groups, int *count) {
    return getgrouplist(user, (gid_t)gid, (gid_t *)groups, count) < 0 ? -1 : 0;
}
