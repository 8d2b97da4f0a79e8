/*
 * The socket benchmark's floor (benches/socket.rs): the least any server
 * in a process of its own could do for a `token` request.
 *
 *     socket_floor SOCKET_PATH ANSWER_LINE
 *
 * A blocking Unix-socket server with one thread per connection that answers
 * every line it reads with ANSWER_LINE (which ends in a newline): one read
 * and one write per request, no parsing, no lookup. It prints "ready" once
 * it listens and exits with its parent (PR_SET_PDEATHSIG), so a benchmark
 * that panics leaves no server behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *answer;
static size_t answer_len;

static int write_all(int fd, const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buffer[4096];
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buffer[i] == '\n' && write_all(fd, answer, answer_len) < 0)
                goto done;
        }
    }
done:
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET_PATH ANSWER_LINE\n", argv[0]);
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1; /* the parent is already gone */
    answer = argv[2];
    answer_len = strlen(answer);

    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof address.sun_path) {
        fprintf(stderr, "socket path too long: %s\n", argv[1]);
        return 2;
    }
    strcpy(address.sun_path, argv[1]);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 128) < 0) {
        perror("socket_floor: listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("socket_floor: accept");
            return 1;
        }
        pthread_t thread;
        if (pthread_create(&thread, &detached, serve, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}
