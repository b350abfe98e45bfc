/*
 * gateway_internal.h - what gateway.c (listeners, connections, configuration) and
 * gateway_stream.c (one request's life) share: the structures, the limits, and the few
 * functions each calls in the other.  Not for use outside the gateway.
 */
#ifndef SPARKPLANE_CORE_GATEWAY_INTERNAL_H
#define SPARKPLANE_CORE_GATEWAY_INTERNAL_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <time.h>

#include "cluster_registry.h"
#include "daemon.h"
#include "gateway.h"
#include "gateway_guard.h"
#include "gateway_metrics.h"
#include "gateway_sessions.h"
#include "gateway_upstream.h"
#include "metrics.h"
#include "spark_connect_prefix.h"

#define GATEWAY_OUTPUT_HIGH (256u * 1024u)
#define GATEWAY_IO_CHUNK (128u * 1024u)         /* per read()/write() (libevent: 16 KiB) */
#define GATEWAY_STREAM_WINDOW (1u * 1024u * 1024u)
#define GATEWAY_CONNECTION_WINDOW (16u * 1024u * 1024u)
#define GATEWAY_MAX_HEADER_BYTES (64u * 1024u)
#define GATEWAY_DEFAULT_MAX_STREAMS 100u
#define GATEWAY_SERVICE_PREFIX "/spark.connect.SparkConnectService/"
#define GATEWAY_RELEASE_SESSION_PATH GATEWAY_SERVICE_PREFIX "ReleaseSession"
#define GATEWAY_HOUSEKEEPING_MS 1000u   /* session expiry, driver probes, gauges */
#define GATEWAY_LINGER_MS 2000u         /* how long a closing connection waits for the FIN */
#define GATEWAY_AUTH_REUSE_MS 1000u
#define GATEWAY_ENDED_KEEP_MS (3600u * 1000u)  /* a terminated cluster's reason stays this long */
#define GATEWAY_PREFLIGHT_MS 30000u    /* a new session's catalog settings must be set within */     /* a connection's last good credentials, reused this long */

typedef struct gateway_conn gateway_conn;
typedef struct gateway_stream gateway_stream;

typedef struct gateway_listener {
    char *address;
    struct evconnlistener *listener;
    int tls;                            /* gateway.tls.listen: TLS with ALPN h2, else h2c */
} gateway_listener;

struct gateway_stream {
    gateway_conn *conn;
    int32_t id;                         /* client stream id; -1 once closed there */
    gateway_stream *prev;
    gateway_stream *next;
    gateway_headers request_headers;
    gateway_upstream_stream *up;        /* NULL before routing and after it closed */
    struct sc_call *preflight;          /* setting a new session's catalogs; `up` opens after */
    struct evbuffer *request_body;      /* client -> upstream, within our window */
    int request_ended;
    struct evbuffer *response_body;     /* upstream -> client, within its window */
    int response_started;               /* response HEADERS submitted to the client */
    int response_ended;                 /* upstream end of stream seen */
    gateway_headers trailers;
    char cluster[CLUSTER_ID_MAX + 1];   /* routed to; "" before */
    char team[CLUSTER_ID_MAX + 1];      /* the cluster's team, for metrics */
    char endpoint[256];                 /* the driver chosen for the session */
    char session_id[GATEWAY_SESSION_ID_MAX + 1];
    int pinned;                         /* counted in gw->sessions: end it once */
    int fresh_pin;                      /* this request made its session's pin */
    int releases_session;               /* a ReleaseSession call */
    struct timespec opened;             /* upstream stream opened, for first-byte latency */
    int first_byte_seen;
    gateway_cluster_stats *stats;       /* its cluster's series, once routed */
    int counted;                        /* streams_total incremented */
    sp_principal principal;             /* the authenticated caller */
    sc_prefix_reader *prefix;           /* reading the first message; NULL once released */
    size_t prefix_taken;                /* client bytes the reader holds */
    size_t front_left;                  /* rewritten prefix bytes still in request_body */
    size_t front_credit;                /* client bytes they stand for, credited once sent */
    gateway_grpc_meter framing;         /* request messages, for gateway.max_message_size */
    struct event *deadline;             /* the client's grpc-timeout, when it sent one */
};

struct gateway_conn {
    gateway *gw;
    gateway_conn *prev;
    gateway_conn *next;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *flush_event;
    char peer[INET6_ADDRSTRLEN + 8];
    struct evconnlistener *listener;    /* accepted on; NULL once that listener closed */
    gateway_stream *streams;
    struct event *timer;                /* the guard's next deadline, then the linger */
    gateway_guard guard;                /* abuse budgets, idle and header timeouts */
    int closing;                        /* session over, half-closed, waiting for the FIN */
    struct event *read_event;           /* h2c: our own large reads (h2_io_receive_socket) */
    char *auth_header;                  /* the last authorization that passed the auth chain, */
    sp_principal auth_principal;        /* whom it named, */
    uint64_t auth_until_ms;             /* until when it is reused, */
    unsigned auth_generation;           /* and under which configuration */
};

struct gateway {
    daemon_state *daemon;
    gateway_listener *listeners;
    size_t listener_count;
    SSL_CTX *tls_context;               /* for new TLS connections; NULL without TLS listeners */
    uint32_t max_concurrent_streams;
    gateway_conn *conns;
    size_t in_flight;
    gateway_upstream_pool *pool;
    cluster_registry *registry;         /* the clusters requests are routed to */
    gateway_router *router;
    gateway_sessions *sessions;         /* session -> driver pins over registry */
    struct event *housekeeping;
    uint64_t session_timeout_ms;
    uint64_t max_message_bytes;         /* per request message */
    gateway_guard_limits guard_limits;  /* every connection's guard reads these */
    config_user_id_policy user_id_policy;
    sp_metric *connections;
    sp_metric *upstream_connect_seconds;
    gateway_metrics *metrics;           /* per-cluster series */
    unsigned auth_generation;           /* bumped by every configure: cached credentials go */
};

static inline uint64_t gateway_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static inline void gateway_schedule(gateway_conn *conn)
{
    event_active(conn->flush_event, EV_WRITE, 0);
}

/* ---- gateway_stream.c: the nghttp2 callbacks of request streams ---- */

int gateway_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                             void *user_data);
int gateway_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                      size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                      void *user_data);
int gateway_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data);
int gateway_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                          const uint8_t *data, size_t len, void *user_data);
int gateway_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                            void *user_data);

/* Counts the stream in sparkplane_gateway_streams_total once, with its final status. */
void gateway_count_stream(gateway_stream *stream, const char *grpc_status);
/* Unlinks and frees a stream, cancelling its upstream stream and ending its session use. */
void gateway_stream_free(gateway_stream *stream);

/* ---- gateway.c: the connection a stream belongs to ---- */

/* Arms the connection's timer for the guard's next deadline. */
void gateway_conn_rearm(gateway_conn *conn);
/* Acts on a guard verdict; 1 when the connection is ending (GOAWAY queued). */
int gateway_conn_judge(gateway_conn *conn, gateway_guard_verdict verdict);

#endif
