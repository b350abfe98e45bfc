/*
 * notify.c - sd_notify(3) in a few lines, so the daemon does not link
 * libsystemd: one datagram on the AF_UNIX socket named by $NOTIFY_SOCKET
 * (a path, or an abstract name starting with '@').
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || *path == '\0')
        return 0;

    struct sockaddr_un addr;
    size_t path_len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || path_len >= sizeof(addr.sun_path))
        return -1;

    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, path_len);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0';

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr,
                          addr_len);
    int saved = errno;
    close(fd);
    errno = saved;
    return sent < 0 ? -1 : 0;
}

int notify_status(const char *fmt, ...)
{
    char text[512];
    int n = snprintf(text, sizeof(text), "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    va_end(ap);
    return notify_send(text);
}

int notify_reloading(void)
{
    struct timespec now;
    char text[96];
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(text, sizeof(text), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)now.tv_sec * 1000000ULL +
                 (unsigned long long)now.tv_nsec / 1000ULL);
    return notify_send(text);
}
