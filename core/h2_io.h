/*
 * h2_io.h - moving bytes between an nghttp2 session and a bufferevent's
 * buffers or a plain socket, shared by the gateway's client side and its
 * upstream side.
 */
#ifndef SPARKPLANE_CORE_H2_IO_H
#define SPARKPLANE_CORE_H2_IO_H

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <stddef.h>

/* Feeds everything in `in` to the session.  0, or nghttp2's negative error. */
int h2_io_receive(nghttp2_session *session, struct evbuffer *in);

/*
 * Reads a plain socket straight into the session (session NULL: reads and discards), in
 * large chunks, until it would block or after a few chunks (so one busy peer cannot hold
 * the loop).  libevent 2.1's bufferevents read at most 4 KiB per wakeup, which costs a
 * read, an ioctl and an epoll_wait per 4 KiB of a large transfer.  Returns 0 (read what
 * there was; call again on the next EV_READ), H2_IO_EOF when the peer closed, H2_IO_ERROR
 * for a socket error (errno set), or nghttp2's negative error.
 */
#define H2_IO_EOF 1
#define H2_IO_ERROR (-1000)
int h2_io_receive_socket(nghttp2_session *session, int fd);

/*
 * Frames what the session wants to send into `out` while `out` holds less
 * than `high_water` bytes (so a slow socket stops framing, not memory).
 * Returns 0 while the connection is alive, 1 when the session is done
 * (nothing to read or write and `out` drained), or a negative error.
 */
int h2_io_send(nghttp2_session *session, struct evbuffer *out, size_t high_water);

/*
 * h2_io_send, then - for a connected plain socket `fd` (-1: none) - writes `out` to it at
 * once, framing more while the socket takes everything.  A bufferevent would write only on
 * the next loop pass, after an epoll round trip: one per hop of every request.  What the
 * socket does not take stays in `out` for the bufferevent.  Same results as h2_io_send.
 */
int h2_io_send_now(nghttp2_session *session, struct evbuffer *out, size_t high_water, int fd);

/*
 * Sends our SETTINGS (stream window and header list size, plus `extra`,
 * which may be NULL) and opens the connection window to
 * `connection_window`.  0, or nghttp2's negative error.
 */
int h2_io_submit_settings(nghttp2_session *session, const nghttp2_settings_entry *extra,
                          uint32_t stream_window, uint32_t max_header_list,
                          int32_t connection_window);

#endif
