/*
 * gateway.c - the Spark Connect gateway's listeners, client connections and clusters.
 *
 * Every accepted connection is an nghttp2 server session over a bufferevent: HTTP/2 with
 * prior knowledge on gateway.listen, TLS with ALPN h2 on gateway.tls.listen (gateway_tls.h;
 * our SETTINGS wait in the TLS bufferevent until the handshake is done).  Plain sockets are
 * read in large chunks straight into nghttp2 and written in the same loop pass (h2_io.h);
 * each request stream is gateway_stream.c's.
 *
 * Each connection has a guard (gateway_guard.h): budgets for resets, empty frames, pings and
 * other misbehaviour end an abusive connection with GOAWAY ENHANCE_YOUR_CALM, a connection
 * without streams for gateway.idle_timeout gets GOAWAY NO_ERROR, and one whose headers do not
 * complete within gateway.header_timeout is ended.  An ending connection sends its GOAWAY,
 * half-closes and lingers briefly for the client's FIN, so a reset does not destroy the
 * GOAWAY in flight.
 *
 * The gateway keeps the cluster registry (brought up to date on reload, keeping driver
 * health and session pins), the session pins, and the pool of upstream connections, whose
 * failures mark a driver unhealthy until a probe (every second) reaches it again.
 *
 * Sends and frees happen at the top of the loop (read/write/flush/timer event handlers),
 * never inside a session's own callbacks.
 */
#include "gateway_internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/util.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway_tls.h"
#include "h2_io.h"
#include "log.h"

/* A frame nghttp2 found invalid (it already answered with RST_STREAM or GOAWAY). */
static int gateway_on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame,
                                    int lib_error_code, void *user_data)
{
    (void)session;
    (void)frame;
    (void)lib_error_code;
    gateway_conn *conn = user_data;
    gateway_conn_judge(conn, gateway_guard_on_invalid(&conn->guard, gateway_now_ms()));
    return 0;
}

/* An invalid header field: counted, and the stream reset as without this callback. */
static int gateway_on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame,
                                     const uint8_t *name, size_t namelen, const uint8_t *value,
                                     size_t valuelen, uint8_t flags, void *user_data)
{
    (void)session;
    (void)frame;
    (void)name;
    (void)namelen;
    (void)value;
    (void)valuelen;
    (void)flags;
    gateway_conn *conn = user_data;
    gateway_conn_judge(conn, gateway_guard_on_invalid(&conn->guard, gateway_now_ms()));
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* HEADERS and DATA going out make the client's BDP pings legitimate. */
static int gateway_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                                 void *user_data)
{
    (void)session;
    gateway_conn *conn = user_data;
    gateway_guard_on_sent(&conn->guard, frame->hd.type);
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void gateway_conn_free(gateway_conn *conn)
{
    gateway *gw = conn->gw;
    while (conn->streams) {
        conn->streams->id = -1;
        gateway_count_stream(conn->streams, "1");
        gateway_stream_free(conn->streams);
    }
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        gw->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    metrics_add(gw->connections, -1);
    if (conn->timer)
        event_free(conn->timer);
    free(conn->auth_header);
    if (conn->read_event)
        event_free(conn->read_event);
    event_free(conn->flush_event);
    bufferevent_free(conn->bev);
    nghttp2_session_del(conn->session);
    free(conn);
}

/* ---- connection deadlines: idle connections and slow request headers ------------------ */

static void gateway_conn_settle(gateway_conn *conn);
static void gateway_conn_on_timer(evutil_socket_t fd, short what, void *arg);

static void gateway_count_closed(gateway *gw, const char *reason)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_gateway_connections_closed_total",
                                 "Client connections the gateway ended, by reason", labels),
                1);
}

/* Acts on a guard verdict: GOAWAY (ENHANCE_YOUR_CALM, or NO_ERROR when idle), after which
 * nghttp2 ignores the client and the connection closes once the GOAWAY is out (or at the
 * guard's linger deadline).  1 when the connection is ending.  Safe inside nghttp2 callbacks:
 * it only queues; sending and freeing happen at the top of the loop. */
int gateway_conn_judge(gateway_conn *conn, gateway_guard_verdict verdict)
{
    if (verdict == GATEWAY_GUARD_FINE || verdict == GATEWAY_GUARD_HANG_UP)
        return verdict != GATEWAY_GUARD_FINE;
    const char *label = gateway_guard_verdict_label(verdict);
    log_msg(verdict == GATEWAY_GUARD_IDLE ? SP_LOG_DEBUG : SP_LOG_INFO, "gateway",
            "%s: GOAWAY (%s): %s", conn->peer, label, gateway_guard_reason(&conn->guard));
    gateway_count_closed(conn->gw, label);
    nghttp2_session_terminate_session(conn->session, gateway_guard_goaway_code(verdict));
    gateway_conn_rearm(conn);   /* now the linger deadline */
    gateway_schedule(conn);
    return 1;
}

/* Arms the connection's timer for the guard's next deadline. */
void gateway_conn_rearm(gateway_conn *conn)
{
    uint64_t now = gateway_now_ms();
    uint64_t due = gateway_guard_next_deadline(&conn->guard);
    if (conn->closing)
        return;     /* conn->timer is the linger's now */
    if (due == UINT64_MAX) {
        if (conn->timer)
            evtimer_del(conn->timer);
        return;
    }
    if (conn->timer == NULL &&
        (conn->timer = evtimer_new(conn->gw->daemon->base, gateway_conn_on_timer, conn)) == NULL)
        return;
    uint64_t wait = due > now ? due - now : 0;
    struct timeval after = {(time_t)(wait / 1000u), (suseconds_t)(wait % 1000u) * 1000};
    evtimer_add(conn->timer, &after);
}

static void gateway_conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway_conn *conn = arg;
    if (conn->closing) {
        gateway_conn_free(conn);    /* the client never closed its side */
        return;
    }
    gateway_guard_verdict verdict = gateway_guard_check_timeouts(&conn->guard, gateway_now_ms());
    if (verdict == GATEWAY_GUARD_HANG_UP) {
        log_msg(SP_LOG_INFO, "gateway", "%s: %s: connection closed", conn->peer,
                gateway_guard_reason(&conn->guard));
        gateway_conn_free(conn);
    } else if (!gateway_conn_judge(conn, verdict)) {
        gateway_conn_rearm(conn);   /* woke early: the deadline moved */
    }
}

/*
 * The session is over and its last frames (GOAWAY) have left our buffers.  Closing now
 * could turn into a TCP reset (when client bytes are still unread) that destroys those
 * frames in flight, so: half-close, discard what the client still sends, and free the
 * connection on its FIN or after GATEWAY_LINGER_MS.
 */
static void gateway_conn_linger(gateway_conn *conn)
{
    struct timeval wait = {GATEWAY_LINGER_MS / 1000u, (GATEWAY_LINGER_MS % 1000u) * 1000};
    conn->closing = 1;
    if (conn->timer == NULL)
        conn->timer = evtimer_new(conn->gw->daemon->base, gateway_conn_on_timer, conn);
    if (conn->timer == NULL || shutdown(bufferevent_getfd(conn->bev), SHUT_WR) != 0) {
        gateway_conn_free(conn);
        return;
    }
    evtimer_add(conn->timer, &wait);
}

/* Frames what the session has to send; once it is over, the connection lingers and goes. */
static void gateway_conn_settle(gateway_conn *conn)
{
    if (conn->closing)
        return;
    int rc = h2_io_send_now(conn->session, bufferevent_get_output(conn->bev), GATEWAY_OUTPUT_HIGH,
                            conn->read_event ? (int)bufferevent_getfd(conn->bev) : -1);
    if (rc < 0) {
        log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer, nghttp2_strerror(rc));
        gateway_conn_free(conn);
    } else if (rc == 1) {
        gateway_conn_linger(conn);
    }
}

static void gateway_conn_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway_conn_settle(arg);
}

static void gateway_conn_on_read(struct bufferevent *bev, void *arg)
{
    gateway_conn *conn = arg;
    if (conn->closing) {
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return;
    }
    int rc = h2_io_receive(conn->session, bufferevent_get_input(bev));
    if (rc < 0) {
        log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer, nghttp2_strerror(rc));
        gateway_conn_free(conn);
        return;
    }
    gateway_conn_settle(conn);
}

/* An h2c socket is readable (TLS connections read through their bufferevent). */
static void gateway_conn_on_socket_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    gateway_conn *conn = arg;
    int rc = h2_io_receive_socket(conn->closing ? NULL : conn->session, fd);
    if (rc == 0 && !conn->closing) {
        gateway_conn_settle(conn);
    } else if (rc != 0) {
        if (rc != H2_IO_EOF)
            log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer,
                    rc == H2_IO_ERROR ? strerror(errno) : nghttp2_strerror(rc));
        gateway_conn_free(conn);    /* EOF, error, or a fatal protocol error */
    }
}

static void gateway_conn_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    gateway_conn_settle(arg);
}

static void gateway_conn_on_event(struct bufferevent *bev, short events, void *arg)
{
    gateway_conn *conn = arg;
    char why[256];
    if (events & BEV_EVENT_CONNECTED) {
        /* TLS handshake done; a client that sent no ALPN at all got here without h2. */
        if (gateway_tls_negotiated_h2(bev))
            return;     /* libevent now sends our SETTINGS, held during the handshake */
        log_msg(SP_LOG_INFO, "gateway", "%s: TLS client negotiated no ALPN h2: closed",
                conn->peer);
    } else if ((events & BEV_EVENT_ERROR) && gateway_tls_is_tls(bev)) {
        tls_server_describe_error(bev, why, sizeof(why));
        log_msg(SP_LOG_DEBUG, "gateway", "%s: TLS: %s", conn->peer, why);
    }
    gateway_conn_free(conn);    /* EOF, error or no h2: the client is gone */
}

static nghttp2_session *gateway_session_new(gateway_conn *conn, uint32_t max_streams)
{
    nghttp2_session_callbacks *callbacks = NULL;
    nghttp2_option *option = NULL;
    nghttp2_session *session = NULL;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&option) != 0)
        goto done;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, gateway_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, gateway_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, gateway_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, gateway_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, gateway_on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks,
                                                                 gateway_on_invalid_frame);
    nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, gateway_on_invalid_header);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, gateway_on_frame_send);
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_option_set_max_settings(option, 32);
    if (nghttp2_session_server_new2(&session, callbacks, conn, option) != 0) {
        session = NULL;
        goto done;
    }
    nghttp2_settings_entry streams = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams};
    if (h2_io_submit_settings(session, &streams, GATEWAY_STREAM_WINDOW, GATEWAY_MAX_HEADER_BYTES,
                              GATEWAY_CONNECTION_WINDOW) != 0) {
        nghttp2_session_del(session);
        session = NULL;
    }
done:
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    return session;
}

static void gateway_format_peer(const struct sockaddr *address, char *out, size_t out_size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)address;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)address;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, out_size, "%s:%d", host, port);
}

/* A plain bufferevent, or a TLS one (accepting) when `listener` is on gateway.tls.listen. */
static struct bufferevent *gateway_conn_bufferevent(gateway *gw, struct evconnlistener *listener,
                                                    evutil_socket_t fd, const char *peer)
{
    for (size_t i = 0; i < gw->listener_count; i++) {
        if (gw->listeners[i].listener != listener || !gw->listeners[i].tls)
            continue;
        if (gw->tls_context == NULL)
            return NULL;
        return gateway_tls_accept(gw->tls_context, gw->daemon->base, fd, peer);
    }
    return bufferevent_socket_new(gw->daemon->base, fd, BEV_OPT_CLOSE_ON_FREE);
}

/* Graceful GOAWAY: streams already open finish, new ones are refused. */
static void gateway_conn_goaway(gateway_conn *conn)
{
    conn->listener = NULL;
    nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(conn->session),
                          NGHTTP2_NO_ERROR, NULL, 0);
    gateway_schedule(conn);
}

static void gateway_on_accept(struct evconnlistener *listener, evutil_socket_t fd,
                              struct sockaddr *address, int socklen, void *arg)
{
    (void)socklen;
    gateway *gw = arg;
    int one = 1;
    gateway_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->gw = gw;
    conn->listener = listener;
    gateway_format_peer(address, conn->peer, sizeof(conn->peer));
    conn->bev = gateway_conn_bufferevent(gw, listener, fd, conn->peer);
    if (conn->bev) {
        bufferevent_set_max_single_read(conn->bev, GATEWAY_IO_CHUNK);
        bufferevent_set_max_single_write(conn->bev, GATEWAY_IO_CHUNK);
    }
    conn->flush_event = event_new(gw->daemon->base, -1, 0, gateway_conn_on_flush, conn);
    conn->session = gateway_session_new(conn, gw->max_concurrent_streams);
    if (conn->bev == NULL || conn->flush_event == NULL || conn->session == NULL) {
        if (conn->bev)
            bufferevent_free(conn->bev);
        else
            evutil_closesocket(fd);
        if (conn->flush_event)
            event_free(conn->flush_event);
        nghttp2_session_del(conn->session);
        free(conn);
        return;
    }
    conn->next = gw->conns;
    if (gw->conns)
        gw->conns->prev = conn;
    gw->conns = conn;
    metrics_add(gw->connections, 1);
    gateway_guard_init(&conn->guard, &gw->guard_limits, gateway_now_ms());
    gateway_conn_rearm(conn);       /* the header deadline runs until the client's SETTINGS */
    bufferevent_setcb(conn->bev, gateway_conn_on_read, gateway_conn_on_write,
                      gateway_conn_on_event, conn);
    if (gateway_tls_is_tls(conn->bev)) {
        bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    } else {
        conn->read_event = event_new(gw->daemon->base, fd, EV_READ | EV_PERSIST,
                                     gateway_conn_on_socket_read, conn);
        bufferevent_enable(conn->bev, EV_WRITE);
        if (conn->read_event == NULL || event_add(conn->read_event, NULL) != 0) {
            gateway_conn_free(conn);
            return;
        }
    }
    gateway_conn_settle(conn);      /* our SETTINGS go out first (on TLS: after the handshake) */
}

/* ---- drivers: health, session expiry, gauges ------------------------------------------ */

/* The upstream pool connected to, or lost, a Spark Connect server. */
static void gateway_on_upstream_health(void *arg, const char *endpoint, int healthy,
                                       double connect_seconds, const char *why)
{
    gateway *gw = arg;
    if (healthy)
        metrics_observe(gw->upstream_connect_seconds, connect_seconds);
    if (gw->registry == NULL ||
        cluster_registry_set_healthy_address(gw->registry, endpoint, healthy) == 0)
        return;
    if (healthy)
        log_msg(SP_LOG_INFO, "gateway", "Spark Connect server %s is reachable again", endpoint);
    else
        log_msg(SP_LOG_WARN, "gateway",
                "Spark Connect server %s marked unhealthy (%s): its sessions get UNAVAILABLE, "
                "new sessions go to other drivers; probing every %us",
                endpoint, why ? why : "?", GATEWAY_HOUSEKEEPING_MS / 1000u);
}

/* Pinned sessions per cluster (the registry's per-driver counts), as gauges. */
static void gateway_publish_sessions(gateway *gw)
{
    char labels[256];
    for (size_t i = 0; i < cluster_registry_count(gw->registry); i++) {
        const cluster_entry *cluster = cluster_registry_at(gw->registry, i);
        unsigned sessions = 0;
        for (size_t e = 0; e < cluster->endpoint_count; e++)
            sessions += cluster->endpoints[e].sessions;
        snprintf(labels, sizeof(labels), "cluster=\"%s\",team=\"%s\"", cluster->id,
                 cluster->team);
        metrics_set(metrics_register(SP_METRIC_GAUGE, "sparkplane_gateway_sessions",
                                     "Spark sessions pinned to a driver, by cluster and team",
                                     labels),
                    sessions);
    }
}

static void gateway_on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway *gw = arg;
    if (gw->registry == NULL)
        return;
    size_t ended = gateway_sessions_expire(gw->sessions, gw->registry, gateway_now_ms(),
                                           gw->session_timeout_ms);
    if (ended > 0)
        log_msg(SP_LOG_DEBUG, "gateway", "%zu idle or released sessions unpinned", ended);
    uint64_t now = gateway_now_ms();
    for (size_t i = cluster_registry_count(gw->registry); i-- > 0;) {
        const cluster_entry *cluster = cluster_registry_at(gw->registry, i);
        if (cluster->ended != NULL) {
            if (now - cluster->ended_at_ms >= GATEWAY_ENDED_KEEP_MS)
                cluster_registry_remove(gw->registry, cluster->id);
            continue;
        }
        for (size_t e = 0; e < cluster->endpoint_count; e++) {
            if (!cluster->endpoints[e].healthy)
                gateway_upstream_probe(gw->pool, cluster->endpoints[e].address);
        }
    }
    gateway_publish_sessions(gw);
}

/* ---- provisioned clusters ------------------------------------------------------------- */

int gateway_cluster_put(gateway *gw, const cluster_entry *entry, char *err, size_t err_size)
{
    if (gw->registry == NULL && (gw->registry = cluster_registry_new()) == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    const cluster_entry *holder = cluster_registry_find_placement(
        gw->registry, entry->team, entry->environment, entry->region);
    if (holder != NULL && holder->ended != NULL && strcmp(holder->id, entry->id) != 0)
        cluster_registry_remove(gw->registry, holder->id);
    cluster_entry copy = *entry;
    copy.provisioned = 1;
    return cluster_registry_put(gw->registry, &copy, err, err_size);
}

void gateway_cluster_end(gateway *gw, const char *id, const char *reason)
{
    char err[256];
    const cluster_entry *cluster = gw->registry ? cluster_registry_find(gw->registry, id) : NULL;
    if (cluster == NULL || cluster->ended != NULL)
        return;
    cluster_entry copy = *cluster;
    copy.ended = (char *)reason;
    copy.ended_at_ms = gateway_now_ms();
    if (cluster_registry_put(gw->registry, &copy, err, sizeof(err)) != 0) {
        log_msg(SP_LOG_WARN, "gateway", "cluster '%s' removed without its reason: %s", id, err);
        cluster_registry_remove(gw->registry, id);
    }
}

const cluster_registry *gateway_registry(const gateway *gw)
{
    return gw->registry;
}

gateway_upstream_pool *gateway_pool(gateway *gw)
{
    return gw->pool;
}

/*
 * Brings the live registry to the configured clusters without losing what it knows:
 * removed clusters go first (their placements may be reused), then every cluster is put,
 * which keeps the health and session counts of endpoints that stay.  Pins of clusters or
 * endpoints that went away end at the next housekeeping pass.
 */
static void gateway_apply_routes(gateway *gw, cluster_registry *registry,
                                 gateway_router *router)
{
    char err[512];
    gateway_router_free(gw->router);
    gw->router = router;
    if (gw->registry == NULL || registry == NULL) {
        gateway_sessions_free(gw->sessions, gw->registry);
        gw->sessions = gateway_sessions_new();
        cluster_registry_free(gw->registry);
        gw->registry = registry;
        return;
    }
    for (size_t i = cluster_registry_count(gw->registry); i-- > 0;) {
        const cluster_entry *entry = cluster_registry_at(gw->registry, i);
        if (!entry->provisioned && cluster_registry_find(registry, entry->id) == NULL)
            cluster_registry_remove(gw->registry, entry->id);
    }
    for (size_t i = 0; i < cluster_registry_count(registry); i++) {
        const cluster_entry *entry = cluster_registry_at(registry, i);
        if (cluster_registry_put(gw->registry, entry, err, sizeof(err)) != 0)
            log_msg(SP_LOG_ERROR, "gateway", "cluster '%s' not updated: %s", entry->id, err);
    }
    cluster_registry_free(registry);
}

/* ---- listeners and configuration -------------------------------------------------------- */

/* Builds the routing state for cfg: both or neither. */
static int gateway_load_routes(const config *cfg, cluster_registry **registry,
                               gateway_router **router, diag_list *problems)
{
    char err[512];
    *registry = cluster_registry_new();
    *router = NULL;
    if (*registry == NULL || cluster_registry_load_config(*registry, cfg, err, sizeof(err)))
        goto fail;
    if (gateway_router_from_config(cfg, router, err, sizeof(err)) != 0)
        goto fail;
    return 0;
fail:
    diag_add(problems, "gateway: %s", *registry ? err : "out of memory");
    cluster_registry_free(*registry);
    *registry = NULL;
    *router = NULL;
    return -1;
}

static int gateway_listener_open(gateway *gw, const char *text, int tls, gateway_listener *out,
                                 diag_list *problems)
{
    const char *key = tls ? "gateway.tls.listen" : "gateway.listen";
    struct sockaddr_storage address;
    int length = sizeof(address);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&address, &length) != 0) {
        diag_add(problems, "%s: '%s' is not a numeric \"address:port\"", key, text);
        return -1;
    }
    out->listener = evconnlistener_new_bind(gw->daemon->base, gateway_on_accept, gw,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                            (struct sockaddr *)&address, length);
    if (out->listener == NULL) {
        diag_add(problems, "%s: cannot listen on %s: %s", key, text,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    out->address = strdup(text);
    out->tls = tls;
    if (out->address == NULL) {
        evconnlistener_free(out->listener);
        return -1;
    }
    return 0;
}

static const gateway_listener *gateway_find_listener(const gateway *gw, const char *address)
{
    for (size_t i = 0; i < gw->listener_count; i++) {
        if (strcmp(gw->listeners[i].address, address) == 0)
            return &gw->listeners[i];
    }
    return NULL;
}

/* 1 when cfg lists address, with *tls saying in which list; 0 when it is gone. */
static int gateway_listed(const config *cfg, const char *address, int *tls)
{
    for (size_t i = 0; i < cfg->gateway_listen_count; i++) {
        if (strcmp(cfg->gateway_listen[i], address) == 0) {
            *tls = 0;
            return 1;
        }
    }
    for (size_t i = 0; i < cfg->gateway_tls_listen_count; i++) {
        if (strcmp(cfg->gateway_tls_listen[i], address) == 0) {
            *tls = 1;
            return 1;
        }
    }
    return 0;
}

/* Opens the addresses of one configured list that no listener serves yet, into next. */
static int gateway_open_listeners(gateway *gw, char **addresses, size_t address_count, int tls,
                                  gateway_listener *next, size_t *count, diag_list *problems)
{
    for (size_t i = 0; i < address_count; i++) {
        if (gateway_find_listener(gw, addresses[i]))
            continue;
        if (gateway_listener_open(gw, addresses[i], tls, &next[*count], problems) != 0)
            return -1;
        log_msg(SP_LOG_INFO, "gateway", "listening on %s (%s)", next[*count].address,
                tls ? "TLS, h2" : "h2c");
        (*count)++;
    }
    return 0;
}

/*
 * Swaps in the listener set for cfg (opened first, so a failure changes
 * nothing).  A kept address that moved between gateway.listen and
 * gateway.tls.listen keeps its socket and serves the new protocol to new
 * connections.
 */
static int gateway_apply_listeners(gateway *gw, const config *cfg, diag_list *problems)
{
    gateway_listener *next = calloc(
        cfg->gateway_listen_count + cfg->gateway_tls_listen_count + gw->listener_count + 1,
        sizeof(*next));
    size_t count = 0;
    int tls = 0;
    if (next == NULL)
        return -1;
    if (gateway_open_listeners(gw, cfg->gateway_listen, cfg->gateway_listen_count, 0, next,
                               &count, problems) != 0 ||
        gateway_open_listeners(gw, cfg->gateway_tls_listen, cfg->gateway_tls_listen_count, 1,
                               next, &count, problems) != 0)
        goto fail;
    for (size_t i = 0; i < gw->listener_count; i++) {
        gateway_listener *old = &gw->listeners[i];
        if (gateway_listed(cfg, old->address, &tls)) {
            if (old->tls != tls)
                log_msg(SP_LOG_INFO, "gateway", "listener %s now serves %s", old->address,
                        tls ? "TLS, h2" : "h2c");
            old->tls = tls;
            next[count++] = *old;
            continue;
        }
        log_msg(SP_LOG_INFO, "gateway", "closing listener %s", old->address);
        for (gateway_conn *conn = gw->conns; conn; conn = conn->next) {
            if (conn->listener == old->listener)
                gateway_conn_goaway(conn);      /* its clients move on as they finish */
        }
        evconnlistener_free(old->listener);
        free(old->address);
    }
    free(gw->listeners);
    gw->listeners = next;
    gw->listener_count = count;
    return 0;
fail:
    for (size_t i = 0; i < count; i++) {
        evconnlistener_free(next[i].listener);
        free(next[i].address);
    }
    free(next);
    return -1;
}

/* A new TLS context from the configured files (read again on every reload: rotation). */
static int gateway_load_tls(const config *cfg, SSL_CTX **context, diag_list *problems)
{
    char message[1024];
    tls_server_fault fault;
    *context = NULL;
    if (cfg->gateway_tls_listen_count == 0)
        return 0;
    *context = gateway_tls_context_new(
        cfg->gateway_tls_certificate, cfg->gateway_tls_key,
        cfg->gateway_tls_client_certificates == CONFIG_CLIENT_CERTIFICATES_REQUEST, &fault,
        message, sizeof(message));
    if (*context == NULL) {
        diag_add(problems, "%s: %s",
                 fault == TLS_SERVER_FAULT_KEY ? "gateway.tls.key" : "gateway.tls.certificate",
                 message);
        return -1;
    }
    tls_server_context_describe(*context, message, sizeof(message));
    log_msg(SP_LOG_INFO, "gateway", "TLS certificate: %s", message);
    return 0;
}

int gateway_configure(gateway *gw, const config *cfg, diag_list *problems)
{
    cluster_registry *registry = NULL;
    gateway_router *router = NULL;
    SSL_CTX *tls_context = NULL;
    if (cfg->gateway_max_concurrent_streams < 1 ||
        cfg->gateway_max_concurrent_streams > UINT32_MAX) {
        diag_add(problems, "gateway.max_concurrent_streams: %llu is out of range",
                 (unsigned long long)cfg->gateway_max_concurrent_streams);
        return -1;
    }
    if (gateway_load_tls(cfg, &tls_context, problems) != 0)
        return -1;
    if ((cfg->gateway_listen_count > 0 || cfg->gateway_tls_listen_count > 0) &&
        gateway_load_routes(cfg, &registry, &router, problems) != 0) {
        tls_server_context_free(tls_context);
        return -1;
    }
    if (gateway_apply_listeners(gw, cfg, problems) != 0) {
        gateway_router_free(router);
        cluster_registry_free(registry);
        tls_server_context_free(tls_context);
        return -1;
    }
    gateway_apply_routes(gw, registry, router);
    tls_server_context_free(gw->tls_context);  /* open TLS connections hold their own ref */
    gw->session_timeout_ms = cfg->gateway_session_timeout_ms;
    gw->max_message_bytes = cfg->gateway_max_message_bytes;
    gw->auth_generation++;
    gw->guard_limits.idle_timeout_ms = cfg->gateway_idle_timeout_ms;
    gw->guard_limits.header_timeout_ms = cfg->gateway_header_timeout_ms;
    /* a client may cancel every open stream at once, twice a second */
    gw->guard_limits.rst_stream = cfg->gateway_max_concurrent_streams > 100
                                      ? (uint32_t)cfg->gateway_max_concurrent_streams * 2
                                      : 200;
    gw->tls_context = tls_context;
    gw->max_concurrent_streams = (uint32_t)cfg->gateway_max_concurrent_streams;
    gw->user_id_policy = cfg->gateway_user_id_policy;
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

gateway *gateway_new(struct daemon_state *daemon)
{
    gateway *gw = calloc(1, sizeof(*gw));
    if (gw == NULL)
        return NULL;
    gw->daemon = daemon;
    gw->max_concurrent_streams = GATEWAY_DEFAULT_MAX_STREAMS;
    gw->pool = gateway_upstream_pool_new(daemon->base);
    gw->sessions = gateway_sessions_new();
    gw->metrics = gateway_metrics_new();
    gw->housekeeping = event_new(daemon->base, -1, EV_PERSIST, gateway_on_housekeeping, gw);
    gw->session_timeout_ms = UINT64_C(60) * 60u * 1000u;
    gw->max_message_bytes = UINT64_C(128) * 1024u * 1024u;
    gateway_guard_limits_default(&gw->guard_limits);
    gw->connections = metrics_register(SP_METRIC_GAUGE, "sparkplane_gateway_connections",
                                       "Open client connections to the gateway", "");
    gw->upstream_connect_seconds = metrics_register(
        SP_METRIC_HISTOGRAM, "sparkplane_gateway_upstream_connect_seconds",
        "TCP connect time to Spark Connect servers", "");
    if (gw->pool == NULL || gw->sessions == NULL || gw->metrics == NULL ||
        gw->housekeeping == NULL) {
        gateway_upstream_pool_free(gw->pool);
        gateway_metrics_free(gw->metrics);
        gateway_sessions_free(gw->sessions, NULL);
        if (gw->housekeeping)
            event_free(gw->housekeeping);
        free(gw);
        return NULL;
    }
    struct timeval every = {GATEWAY_HOUSEKEEPING_MS / 1000u, 0};
    event_add(gw->housekeeping, &every);
    gateway_upstream_pool_set_health(gw->pool, gateway_on_upstream_health, gw);
    return gw;
}

void gateway_close_listeners(gateway *gw)
{
    if (gw == NULL)
        return;
    for (size_t i = 0; i < gw->listener_count; i++) {
        evconnlistener_free(gw->listeners[i].listener);
        free(gw->listeners[i].address);
    }
    gw->listener_count = 0;
    for (gateway_conn *conn = gw->conns; conn; conn = conn->next)
        gateway_conn_goaway(conn);
}

size_t gateway_in_flight(const gateway *gw)
{
    return gw ? gw->in_flight : 0;
}

void gateway_free(gateway *gw)
{
    if (gw == NULL)
        return;
    gateway_close_listeners(gw);
    while (gw->conns)
        gateway_conn_free(gw->conns);
    gateway_upstream_pool_free(gw->pool);
    event_free(gw->housekeeping);
    gateway_sessions_free(gw->sessions, gw->registry);
    gateway_metrics_free(gw->metrics);
    gateway_router_free(gw->router);
    cluster_registry_free(gw->registry);
    tls_server_context_free(gw->tls_context);
    free(gw->listeners);
    free(gw);
}
