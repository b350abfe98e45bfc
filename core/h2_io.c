/*
 * h2_io.c - nghttp2 sessions driven from bufferevents and plain sockets.
 *
 * Received bytes are handed to nghttp2_session_mem_recv straight from the
 * input buffer's chunks (no copy) or, for plain sockets, from one large
 * static read buffer; frames to send come from nghttp2_session_mem_send
 * into the output buffer, bounded by a high-water mark so a peer that does
 * not read makes us stop framing, and plain sockets get them written in the
 * same loop pass.
 */
#include "h2_io.h"

#include <errno.h>
#include <sys/socket.h>

#define H2_IO_CHUNKS 16
#define H2_IO_READ_BYTES (256u * 1024u)   /* one recv() */
#define H2_IO_READS_PER_CALL 8
#define H2_IO_WRITE_PASSES 4                /* frame-and-write rounds per h2_io_send_now */

int h2_io_receive_socket(nghttp2_session *session, int fd)
{
    static uint8_t buffer[H2_IO_READ_BYTES];    /* single-threaded: one loop uses it */
    for (int reads = 0; reads < H2_IO_READS_PER_CALL; reads++) {
        ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        if (n == 0)
            return H2_IO_EOF;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : H2_IO_ERROR;
        }
        if (session != NULL) {
            ssize_t used = nghttp2_session_mem_recv(session, buffer, (size_t)n);
            if (used < 0)
                return (int)used;
        }
        if ((size_t)n < sizeof(buffer))
            return 0;       /* the socket is drained */
    }
    return 0;
}

int h2_io_receive(nghttp2_session *session, struct evbuffer *in)
{
    struct evbuffer_iovec chunks[H2_IO_CHUNKS];
    while (evbuffer_get_length(in) > 0) {
        int count = evbuffer_peek(in, -1, NULL, chunks, H2_IO_CHUNKS);
        size_t used = 0;
        for (int i = 0; i < count && i < H2_IO_CHUNKS; i++) {
            ssize_t n = nghttp2_session_mem_recv(session, chunks[i].iov_base, chunks[i].iov_len);
            if (n < 0)
                return (int)n;
            used += chunks[i].iov_len;
        }
        evbuffer_drain(in, used);
    }
    return 0;
}

int h2_io_send(nghttp2_session *session, struct evbuffer *out, size_t high_water)
{
    while (evbuffer_get_length(out) < high_water) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(session, &data);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0)
            return NGHTTP2_ERR_NOMEM;
    }
    if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session) &&
        evbuffer_get_length(out) == 0)
        return 1;
    return 0;
}

int h2_io_send_now(nghttp2_session *session, struct evbuffer *out, size_t high_water, int fd)
{
    for (int pass = 0;; pass++) {
        int rc = h2_io_send(session, out, high_water);
        if (rc != 0 || fd < 0 || pass == H2_IO_WRITE_PASSES || evbuffer_get_length(out) == 0)
            return rc;
        if (evbuffer_write(out, fd) <= 0 || evbuffer_get_length(out) > 0)
            return 0;       /* the socket is full (or failed): the bufferevent goes on */
    }
}

int h2_io_submit_settings(nghttp2_session *session, const nghttp2_settings_entry *extra,
                          uint32_t stream_window, uint32_t max_header_list,
                          int32_t connection_window)
{
    nghttp2_settings_entry settings[3] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list},
    };
    size_t count = 2;
    if (extra != NULL)
        settings[count++] = *extra;
    int rc = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, count);
    if (rc == 0)
        rc = nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                                   connection_window);
    return rc;
}
