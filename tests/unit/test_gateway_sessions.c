/*
 * test_gateway_sessions.c - session affinity: a new session goes to the
 * least-loaded healthy driver and stays there; a session on a dead driver
 * is told so (and a new one lands elsewhere); pins end on release, on the
 * session timeout and when the endpoint leaves the cluster; one user's
 * session id does not steer another's.
 */
#include <stdio.h>
#include <string.h>

#include "../../core/gateway_route.h"
#include "../../core/gateway_sessions.h"
#include "unit_test.h"

static char message[512];
static char endpoint[256];
static int created;     /* the last route() made a new pin */

static cluster_registry *registry_with_two_drivers(void)
{
    char err[256];
    cluster_registry *registry = cluster_registry_new();
    cluster_endpoint drivers[] = {{.address = (char *)"d1:15002"},
                                  {.address = (char *)"d2:15002"}};
    cluster_entry entry = {.id = (char *)"fe-prod", .team = (char *)"fe",
                           .environment = (char *)"prod", .region = (char *)"local",
                           .endpoints = drivers, .endpoint_count = 2};
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &entry, err, sizeof(err)), 0);
    return registry;
}

static int route(gateway_sessions *sessions, cluster_registry *registry, const char *subject,
                 const char *session_id, uint64_t now)
{
    gateway_session_key key = {"fe-prod", subject, session_id};
    return gateway_sessions_route(sessions, registry, cluster_registry_find(registry, "fe-prod"),
                                  &key, now, endpoint, sizeof(endpoint), &created, message,
                                  sizeof(message));
}

static void end_stream(gateway_sessions *sessions, cluster_registry *registry,
                       const char *subject, const char *session_id, uint64_t now)
{
    gateway_session_key key = {"fe-prod", subject, session_id};
    gateway_sessions_stream_end(sessions, registry, &key, now);
}

static unsigned sessions_on(cluster_registry *registry, size_t index)
{
    return cluster_registry_find(registry, "fe-prod")->endpoints[index].sessions;
}

static void test_new_sessions_spread_and_stay(void)
{
    cluster_registry *registry = registry_with_two_drivers();
    gateway_sessions *sessions = gateway_sessions_new();
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s1", 1), GATEWAY_GRPC_OK);
    CU_ASSERT_STRING_EQUAL(endpoint, "d1:15002");
    CU_ASSERT_EQUAL(created, 1);
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s2", 2), GATEWAY_GRPC_OK);
    CU_ASSERT_STRING_EQUAL(endpoint, "d2:15002");
    for (int i = 0; i < 5; i++) {       /* later requests keep their driver */
        CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s1", 3), GATEWAY_GRPC_OK);
        CU_ASSERT_STRING_EQUAL(endpoint, "d1:15002");
        CU_ASSERT_EQUAL(created, 0);
        end_stream(sessions, registry, "alice", "s1", 3);
    }
    CU_ASSERT_EQUAL(sessions_on(registry, 0), 1);
    CU_ASSERT_EQUAL(sessions_on(registry, 1), 1);
    /* the same session id of another user is another session */
    CU_ASSERT_EQUAL(route(sessions, registry, "bob", "s1", 4), GATEWAY_GRPC_OK);
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 3);
    CU_ASSERT_EQUAL(gateway_sessions_count_cluster(sessions, "fe-prod"), 3);
    CU_ASSERT_EQUAL(gateway_sessions_count_cluster(sessions, "other"), 0);
    /* requests without a session id are spread but not pinned */
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "", 5), GATEWAY_GRPC_OK);
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 3);
    gateway_sessions_free(sessions, registry);
    CU_ASSERT_EQUAL(sessions_on(registry, 0), 0);
    CU_ASSERT_EQUAL(sessions_on(registry, 1), 0);
    cluster_registry_free(registry);
}

static void test_a_dead_driver_keeps_its_sessions_out(void)
{
    cluster_registry *registry = registry_with_two_drivers();
    gateway_sessions *sessions = gateway_sessions_new();
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s1", 1), GATEWAY_GRPC_OK);
    end_stream(sessions, registry, "alice", "s1", 1);
    CU_ASSERT_EQUAL(cluster_registry_set_healthy(registry, "fe-prod", "d1:15002", 0), 0);
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s1", 2), GATEWAY_GRPC_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "session s1 runs on Spark Connect server d1:15002"));
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "start a new session"));
    /* a new session lands on the surviving driver */
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s2", 3), GATEWAY_GRPC_OK);
    CU_ASSERT_STRING_EQUAL(endpoint, "d2:15002");
    /* the driver comes back: the old session continues there */
    CU_ASSERT_EQUAL(cluster_registry_set_healthy(registry, "fe-prod", "d1:15002", 1), 0);
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s1", 4), GATEWAY_GRPC_OK);
    CU_ASSERT_STRING_EQUAL(endpoint, "d1:15002");
    /* a new session whose first request found its driver dead is forgotten: the retry of
     * the same session id lands on a healthy driver */
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s9", 4), GATEWAY_GRPC_OK);
    CU_ASSERT_STRING_EQUAL(endpoint, "d1:15002");   /* a tie: the first endpoint */
    CU_ASSERT_EQUAL(created, 1);
    gateway_session_key s9 = {"fe-prod", "alice", "s9"};
    gateway_sessions_forget(sessions, registry, &s9);
    end_stream(sessions, registry, "alice", "s9", 4);   /* its stream ends after: harmless */
    CU_ASSERT_PTR_NULL(gateway_sessions_endpoint(sessions, &s9));
    CU_ASSERT_EQUAL(sessions_on(registry, 0), 1);   /* s1 only */
    /* no healthy driver at all */
    cluster_registry_set_healthy(registry, "fe-prod", "d1:15002", 0);
    cluster_registry_set_healthy(registry, "fe-prod", "d2:15002", 0);
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s3", 5), GATEWAY_GRPC_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "no healthy Spark Connect server"));
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "", 5), GATEWAY_GRPC_UNAVAILABLE);
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 2);
    gateway_sessions_free(sessions, registry);
    cluster_registry_free(registry);
}

static void test_pins_end(void)
{
    cluster_registry *registry = registry_with_two_drivers();
    gateway_sessions *sessions = gateway_sessions_new();
    gateway_session_key s1 = {"fe-prod", "alice", "s1"};
    route(sessions, registry, "alice", "s1", 1000);
    route(sessions, registry, "alice", "s2", 1000);
    end_stream(sessions, registry, "alice", "s2", 1000);
    /* s1 has a stream in flight: never expires; s2 is idle past the timeout */
    CU_ASSERT_EQUAL(gateway_sessions_expire(sessions, registry, 1000 + 500, 1000), 0);
    CU_ASSERT_EQUAL(gateway_sessions_expire(sessions, registry, 1000 + 5000, 1000), 1);
    CU_ASSERT_EQUAL(sessions_on(registry, 1), 0);
    CU_ASSERT_STRING_EQUAL(gateway_sessions_endpoint(sessions, &s1), "d1:15002");
    /* released while a stream runs: goes with that stream */
    gateway_sessions_release(sessions, registry, &s1);
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 1);
    end_stream(sessions, registry, "alice", "s1", 7000);
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 0);
    CU_ASSERT_EQUAL(sessions_on(registry, 0), 0);

    /* an endpoint that leaves the cluster takes its pins along */
    route(sessions, registry, "alice", "s3", 8000);     /* d1 */
    end_stream(sessions, registry, "alice", "s3", 8000);
    char err[256];
    cluster_endpoint only[] = {{.address = (char *)"d2:15002"}};
    cluster_entry entry = {.id = (char *)"fe-prod", .team = (char *)"fe",
                           .environment = (char *)"prod", .region = (char *)"local",
                           .endpoints = only, .endpoint_count = 1};
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &entry, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", "s3", 8001), GATEWAY_GRPC_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "no longer part of cluster 'fe-prod'"));
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 0);
    route(sessions, registry, "alice", "s4", 8002);
    end_stream(sessions, registry, "alice", "s4", 8002);
    cluster_registry_remove(registry, "fe-prod");
    CU_ASSERT_EQUAL(gateway_sessions_expire(sessions, registry, 8003, 1000000), 1);
    gateway_sessions_free(sessions, registry);
    cluster_registry_free(registry);
}

static void test_many_sessions_and_bad_ids(void)
{
    cluster_registry *registry = registry_with_two_drivers();
    gateway_sessions *sessions = gateway_sessions_new();
    char id[64];
    for (int i = 0; i < 1000; i++) {    /* several table growths */
        snprintf(id, sizeof(id), "session-%d", i);
        CU_ASSERT_EQUAL(route(sessions, registry, "alice", id, 1), GATEWAY_GRPC_OK);
    }
    CU_ASSERT_EQUAL(gateway_sessions_count(sessions), 1000);
    CU_ASSERT_EQUAL(sessions_on(registry, 0), 500);
    CU_ASSERT_EQUAL(sessions_on(registry, 1), 500);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "session-%d", i);
        gateway_session_key key = {"fe-prod", "alice", id};
        CU_ASSERT_STRING_EQUAL(gateway_sessions_endpoint(sessions, &key),
                               i % 2 ? "d2:15002" : "d1:15002");
    }
    char long_id[GATEWAY_SESSION_ID_MAX + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    CU_ASSERT_EQUAL(route(sessions, registry, "alice", long_id, 1),
                    GATEWAY_GRPC_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(message, "session_id is longer than"));
    gateway_sessions_free(sessions, registry);
    cluster_registry_free(registry);
}

static const unit_test_case cases[] = {
    {"new sessions spread over drivers and stay", test_new_sessions_spread_and_stay},
    {"a dead driver keeps its sessions out", test_a_dead_driver_keeps_its_sessions_out},
    {"pins end on release, timeout and removal", test_pins_end},
    {"many sessions, and ids that are too long", test_many_sessions_and_bad_ids},
    {NULL, NULL}};

UNIT_TEST_MAIN("gateway_sessions", cases)
