#define _GNU_SOURCE
#include "cshims.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

_Static_assert(SETTLED_EPOLL_IN == EPOLLIN && SETTLED_EPOLL_OUT == EPOLLOUT, "epoll masks");
_Static_assert(SETTLED_EPOLL_ERR == EPOLLERR && SETTLED_EPOLL_HUP == EPOLLHUP, "epoll masks");
_Static_assert(SETTLED_EPOLL_ADD == EPOLL_CTL_ADD && SETTLED_EPOLL_DEL == EPOLL_CTL_DEL
               && SETTLED_EPOLL_MOD == EPOLL_CTL_MOD, "epoll operations");

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

int settled_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int settled_epoll_control(int epoll_fd, int operation, int fd, uint32_t events, uint64_t identifier) {
    struct epoll_event event = { .events = events, .data = { .u64 = identifier } };
    return epoll_ctl(epoll_fd, operation, fd, &event);
}

int settled_epoll_wait(int epoll_fd, uint64_t *identifiers, uint32_t *events, int count, int timeout_milliseconds) {
    struct epoll_event ready[SETTLED_EPOLL_EVENTS_MAX];
    if (count > SETTLED_EPOLL_EVENTS_MAX) count = SETTLED_EPOLL_EVENTS_MAX;
    int found = epoll_wait(epoll_fd, ready, count, timeout_milliseconds);
    for (int i = 0; i < found; i++) {
        identifiers[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return found;
}

int settled_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int settled_thread_set_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

int settled_processors_available(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0) return count;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

extern char **environ;

int settled_spawn(const char *path, char *const argv[], const char *directory, const char *output_path, int32_t *pid) {
    posix_spawn_file_actions_t actions;
    int result = posix_spawn_file_actions_init(&actions);
    if (result != 0) return result;
    if ((result = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
        (result = posix_spawn_file_actions_addopen(&actions, 1, output_path, O_WRONLY | O_CREAT | O_APPEND, 0644)) == 0 &&
        (result = posix_spawn_file_actions_adddup2(&actions, 1, 2)) == 0 &&
        (result = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) == 0 &&
        (result = posix_spawn_file_actions_addchdir_np(&actions, directory)) == 0) {
        pid_t child = 0;
        result = posix_spawn(&child, path, &actions, NULL, argv, environ);
        if (result == 0) *pid = child;
    }
    posix_spawn_file_actions_destroy(&actions);
    return result;
}

int settled_start_writeback(int fd, int64_t offset, int64_t bytes) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)bytes, SYNC_FILE_RANGE_WRITE);
}
