/*
 * test_dir.h - a private temporary directory with a database path in it,
 * for the store's tests: made with mkdtemp under $TMPDIR, emptied and
 * removed afterwards (a test that stops on a fatal assertion leaves it for
 * inspection) - and raw SQL on a separate connection, as an operator's
 * shell would run it, to check what the store really wrote.
 */
#ifndef SPARKPLANE_TESTS_TEST_DIR_H
#define SPARKPLANE_TESTS_TEST_DIR_H

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_PATH_MAX 512

typedef struct test_dir {
    char root[TEST_PATH_MAX];
    char db[TEST_PATH_MAX + 16]; /* root/state.db */
} test_dir;

/* `name` tells whose directory it is: /tmp/<name>.XXXXXX. */
static inline int test_dir_make_named(test_dir *dir, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir->root, sizeof dir->root, "%s/%s.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", name);
    if (mkdtemp(dir->root) == NULL)
        return -1;
    snprintf(dir->db, sizeof dir->db, "%s/state.db", dir->root);
    return 0;
}

/* Removes state.db, its -wal and -shm files and anything else left in root. */
static inline void test_dir_remove(test_dir *dir)
{
    char path[TEST_PATH_MAX + 256];
    DIR *d = opendir(dir->root);
    if (d == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir->root, entry->d_name);
        unlink(path);
    }
    closedir(d);
    CU_ASSERT_EQUAL(rmdir(dir->root), 0);
}

/* Runs SQL on a separate connection. 0 or -1. */
static inline int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The first column of the first row as an integer, or -999 when none. */
static inline int raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int value = -999;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        value = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}

#endif
