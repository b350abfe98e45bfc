/*
 * test_auth_token.c - the built auth_token.so, loaded into the mock host.
 *
 * Each test writes a tokens file in a temporary directory, loads the
 * plugin the way the daemon would (dlopen of .libs/auth_token.so, init
 * through the host API) and asks it to authenticate requests.  Reload is
 * driven by firing the mock host's timers by hand.  The hashes below are
 * `printf %s TOKEN | sha256sum` of the tokens named beside them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mock_host.h"
#include "unit_test.h"

#define PLUGIN_PATH TEST_BUILDDIR "/plugins/auth_token/.libs/auth_token.so"
#define METRIC "sparkplane_auth_token_decisions_total"

/* alice-token-1, bob-token-2, carol-token-3 */
#define HASH_ALICE "374f4c85576c23a1f3d9a99769f481944af78a415a995a6ad5ffd1e4b4ac76f1"
#define HASH_BOB "7e3ab9bb6e51ac82ae0047eb220e1f190e6c145e74ae5549e94ac85022bad723"
#define HASH_CAROL "d7b1a9eb204ddd6e635a136d709bd72bd7a9ca558446ee2a86ebeea10ad6d6a6"

#define GOOD_FILE                                                                             \
    "# tokens for the test\n"                                                                 \
    "\n" HASH_ALICE " alice member data-eng,ml\n"                                             \
    "   " HASH_BOB "\tbob admin *\n"

typedef struct fixture {
    char dir[64];
    char path[128];
    mock_host *host;
    const sp_auth_ops *ops;
    void *provider;
    char err[512];
} fixture;

static void fixture_write(fixture *f, const char *text)
{
    FILE *file = fopen(f->path, "w");
    CU_ASSERT_FATAL(file != NULL);
    fputs(text, file);
    fclose(file);
}

/* Moves the file's mtime forward so the reload check sees a new version. */
static void fixture_touch(fixture *f, int seconds)
{
    struct stat st;
    struct timespec times[2];
    CU_ASSERT_FATAL(stat(f->path, &st) == 0);
    times[0] = st.st_atim;
    times[1] = st.st_mtim;
    times[1].tv_sec += seconds;
    CU_ASSERT_FATAL(utimensat(AT_FDCWD, f->path, times, 0) == 0);
}

/* Temp dir + tokens file + loaded plugin; init is the caller's. */
static void fixture_open(fixture *f, const char *tokens)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_auth_token.XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(f->dir) != NULL);
    snprintf(f->path, sizeof(f->path), "%s/tokens", f->dir);
    fixture_write(f, tokens);
    f->host = mock_host_new();
    CU_ASSERT_FATAL(f->host != NULL);
    CU_ASSERT_FATAL(mock_host_load(f->host, PLUGIN_PATH, f->err, sizeof(f->err)) == 0);
    mock_host_set_option(f->host, "tokens_file", f->path);
}

static int fixture_init(fixture *f)
{
    int rc = mock_host_init(f->host, f->err, sizeof(f->err));
    if (rc == SP_OK)
        f->ops = mock_host_provider(f->host, SP_KIND_AUTH, "auth_token", &f->provider);
    return rc;
}

static void fixture_close(fixture *f)
{
    mock_host_free(f->host);
    unlink(f->path);
    rmdir(f->dir);
}

static int fixture_auth(fixture *f, const char *authorization, sp_principal *principal)
{
    sp_auth_request request = {.size = sizeof(request), .transport = SP_AUTH_REST,
                               .authorization = authorization, .peer_address = "127.0.0.1:1"};
    memset(principal, 0, sizeof(*principal));
    principal->size = sizeof(*principal);
    f->err[0] = '\0';
    return f->ops->authenticate(f->provider, &request, principal, f->err, sizeof(f->err));
}

static void test_descriptor(void)
{
    fixture f;
    fixture_open(&f, GOOD_FILE);
    const sp_plugin_descriptor *d = mock_host_descriptor(f.host);
    CU_ASSERT_EQUAL(d->kind, SP_KIND_AUTH);
    CU_ASSERT_STRING_EQUAL(d->name, "auth_token");
    CU_ASSERT_STRING_EQUAL(d->options[0].key, "tokens_file");
    CU_ASSERT_TRUE(d->options[0].required);
    CU_ASSERT_STRING_EQUAL(d->options[1].key, "reload_interval");
    CU_ASSERT_STRING_EQUAL(d->options[1].default_value, "5s");
    fixture_close(&f);
}

static void test_valid_token(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f, GOOD_FILE);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f.ops);

    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer alice-token-1", &p), SP_OK);
    CU_ASSERT_STRING_EQUAL(p.subject, "alice");
    CU_ASSERT_STRING_EQUAL(p.role, "member");
    CU_ASSERT_EQUAL(p.team_count, 2);
    CU_ASSERT_STRING_EQUAL(p.teams[0], "data-eng");
    CU_ASSERT_STRING_EQUAL(p.teams[1], "ml");

    /* The scheme is case-insensitive; blanks around the token are not part of it. */
    CU_ASSERT_EQUAL(fixture_auth(&f, "bEARER   bob-token-2  ", &p), SP_OK);
    CU_ASSERT_STRING_EQUAL(p.subject, "bob");
    CU_ASSERT_STRING_EQUAL(p.role, "admin");
    CU_ASSERT_EQUAL(p.team_count, 1);
    CU_ASSERT_STRING_EQUAL(p.teams[0], "*");

    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, METRIC, "result=\"ok\""), 2);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "loaded 2 tokens"));
    fixture_close(&f);
}

static void test_wrong_token(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f, GOOD_FILE);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer alice-token-2", &p), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(f.err, "unknown or revoked token");
    CU_ASSERT_STRING_EQUAL(p.subject, "");
    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer ", &p), SP_INVALID);
    /* The token is the hash's preimage, not the hash itself. */
    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer " HASH_ALICE, &p), SP_INVALID);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, METRIC, "result=\"invalid\""), 3);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, METRIC, "result=\"ok\""), 0);
    fixture_close(&f);
}

static void test_defers_other_schemes(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f, GOOD_FILE);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    CU_ASSERT_EQUAL(fixture_auth(&f, NULL, &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth(&f, "Basic YWxpY2U6cHc=", &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearerish alice-token-1", &p), SP_DEFER);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, METRIC, "result=\"defer\""), 3);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, METRIC, "result=\"ok\""), 0);
    fixture_close(&f);
}

/* A file whose only entry is `line` must be refused with `message`. */
static void check_bad_line(const char *line, const char *message)
{
    fixture f;
    char text[1024];
    snprintf(text, sizeof(text), "# header\n%s\n", line);
    fixture_open(&f, text);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(f.err, message);
    CU_ASSERT_PTR_NULL(mock_host_provider(f.host, SP_KIND_AUTH, "auth_token", NULL));
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 0);
    fixture_close(&f);
}

static void test_bad_lines(void)
{
    check_bad_line(HASH_ALICE " alice member",
                   "tokens_file:2: want 4 fields (<sha256-hex> <principal> <role> <teams>), "
                   "got 3");
    check_bad_line(HASH_ALICE " alice member ml extra",
                   "tokens_file:2: want 4 fields (<sha256-hex> <principal> <role> <teams>), "
                   "got more than 4");
    check_bad_line("374f4c85576c23a1 alice member ml",
                   "tokens_file:2: token hash \"374f4c...\" is not 64 hex digits (sha256)");
    check_bad_line("zz4f4c85576c23a1f3d9a99769f481944af78a415a995a6ad5ffd1e4b4ac76f1 a member ml",
                   "tokens_file:2: token hash \"zz4f4c...\" is not 64 hex digits (sha256)");
    check_bad_line(HASH_ALICE " alice boss ml",
                   "tokens_file:2: unknown role \"boss\" (admin, member or viewer)");
    check_bad_line(HASH_ALICE " alice member *",
                   "tokens_file:2: team \"*\" is allowed for admin only");
    check_bad_line(HASH_ALICE " alice viewer ml,Data_Eng",
                   "tokens_file:2: bad team \"Data_Eng\" (want [a-z0-9-]{1,63})");
    check_bad_line(HASH_ALICE " alice viewer ml,,x",
                   "tokens_file:2: bad team \"\" (want [a-z0-9-]{1,63})");
    check_bad_line(HASH_ALICE " alice viewer ml\n" HASH_ALICE " eve admin *",
                   "tokens_file:3: duplicate token (same hash as principal \"alice\")");
}

static void test_missing_file(void)
{
    fixture f;
    fixture_open(&f, GOOD_FILE);
    mock_host_set_option(f.host, "tokens_file", "/nonexistent/tokens");
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(
        f.err, "tokens_file: cannot open /nonexistent/tokens: No such file or directory");
    fixture_close(&f);
}

static void test_reload(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f, GOOD_FILE);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL_FATAL(mock_host_timer_count(f.host), 1);
    CU_ASSERT_EQUAL(mock_host_timer_delay(f.host, 0), 5000); /* the default "5s" */

    /* Unchanged file: nothing happens. */
    CU_ASSERT_EQUAL(mock_host_fire_timers(f.host), 1);
    CU_ASSERT_FALSE(mock_host_logged(f.host, SP_LOG_INFO, "reloaded"));

    /* Bob revoked, carol added. */
    fixture_write(&f, HASH_ALICE " alice member ml\n" HASH_CAROL " carol viewer web\n");
    fixture_touch(&f, 10);
    mock_host_fire_timers(f.host);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "reloaded"));
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, ": 2 tokens"));
    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer bob-token-2", &p), SP_INVALID);
    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer carol-token-3", &p), SP_OK);
    CU_ASSERT_STRING_EQUAL(p.subject, "carol");

    /* A bad new file is logged once; the tokens in force stay. */
    fixture_write(&f, HASH_ALICE " alice member ml\nnot-a-hash carol viewer web\n");
    fixture_touch(&f, 20);
    mock_host_fire_timers(f.host);
    mock_host_fire_timers(f.host);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_ERROR,
                                    "keeping 2 tokens: tokens_file:2: token hash \"not-a-...\""));
    size_t errors = 0;
    for (size_t i = 0; i < mock_host_log_count(f.host); i++)
        errors += strncmp(mock_host_log_line(f.host, i), "error ", 6) == 0;
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_EQUAL(fixture_auth(&f, "Bearer carol-token-3", &p), SP_OK);

    /* fini cancels the timer. */
    mock_host_fini(f.host);
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 0);
    fixture_close(&f);
}

static void test_reload_disabled(void)
{
    fixture f;
    fixture_open(&f, GOOD_FILE);
    mock_host_set_option(f.host, "reload_interval", "0s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 0);
    fixture_close(&f);
}

static const unit_test_case cases[] = {
    {"descriptor declares kind, name and options", test_descriptor},
    {"a listed token authenticates with its principal", test_valid_token},
    {"an unknown token is refused without detail", test_wrong_token},
    {"no header or another scheme defers", test_defers_other_schemes},
    {"bad lines are refused with their line number", test_bad_lines},
    {"a missing tokens file fails init", test_missing_file},
    {"a changed file is reloaded; a bad one keeps the old tokens", test_reload},
    {"reload_interval 0 starts no timer", test_reload_disabled},
    {NULL, NULL}};

UNIT_TEST_MAIN("auth_token", cases)
