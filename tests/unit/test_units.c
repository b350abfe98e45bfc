/*
 * test_units.c - the value syntaxes users type into config files: every
 * accepted spelling gives the documented number, and junk, negatives and
 * overflow are refused instead of silently becoming some other value.
 */
#include <stdint.h>

#include "unit_test.h"
#include "units.h"

static uint64_t duration_ok(const char *text)
{
    uint64_t ms = 12345;
    CU_ASSERT_EQUAL_FATAL(units_parse_duration_ms(text, &ms), 0);
    return ms;
}

static void duration_bad(const char *text)
{
    uint64_t ms = 777;
    CU_ASSERT_EQUAL(units_parse_duration_ms(text, &ms), -1);
    CU_ASSERT_EQUAL(ms, 777); /* untouched on failure */
}

static void test_duration_units(void)
{
    CU_ASSERT_EQUAL(duration_ok("250ms"), 250);
    CU_ASSERT_EQUAL(duration_ok("30s"), 30000);
    CU_ASSERT_EQUAL(duration_ok("5m"), 300000);
    CU_ASSERT_EQUAL(duration_ok("12h"), 12ull * 3600 * 1000);
    CU_ASSERT_EQUAL(duration_ok("7d"), 7ull * 86400 * 1000);
    CU_ASSERT_EQUAL(duration_ok("0"), 0);
    CU_ASSERT_EQUAL(duration_ok("0s"), 0);
    CU_ASSERT_EQUAL(duration_ok("007s"), 7000);
}

static void test_duration_junk(void)
{
    const char *bad[] = {"", "s", "30", "-5s", "+5s", " 5s", "5s ", "5 m", "1.5s", "1.5x",
                         "5x", "5S", "5sec", "5mss", "ms", "0x10s", "5s5", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        duration_bad(bad[i]);
    CU_ASSERT_EQUAL(units_parse_duration_ms(NULL, NULL), -1);
}

static void test_duration_overflow(void)
{
    /* 2^64 / 86400000 is about 2.1e11 days. */
    duration_bad("213503982335d");
    duration_bad("99999999999999999999ms");
    CU_ASSERT_EQUAL(duration_ok("18446744073709551615ms"), UINT64_MAX);
    duration_bad("18446744073709551616ms");
}

static uint64_t size_ok(const char *text)
{
    uint64_t bytes = 1;
    CU_ASSERT_EQUAL_FATAL(units_parse_size_bytes(text, &bytes), 0);
    return bytes;
}

static void test_size_binary_units(void)
{
    CU_ASSERT_EQUAL(size_ok("4096"), 4096);
    CU_ASSERT_EQUAL(size_ok("0"), 0);
    CU_ASSERT_EQUAL(size_ok("512k"), 512 * 1024);
    CU_ASSERT_EQUAL(size_ok("512K"), 512 * 1024);
    CU_ASSERT_EQUAL(size_ok("16KB"), 16 * 1024);
    CU_ASSERT_EQUAL(size_ok("16KiB"), 16 * 1024);
    CU_ASSERT_EQUAL(size_ok("1M"), 1024 * 1024);
    CU_ASSERT_EQUAL(size_ok("1MB"), 1024 * 1024); /* binary, as documented */
    CU_ASSERT_EQUAL(size_ok("1MiB"), 1024 * 1024);
    CU_ASSERT_EQUAL(size_ok("2G"), 2ull << 30);
    CU_ASSERT_EQUAL(size_ok("2GB"), 2ull << 30);
    CU_ASSERT_EQUAL(size_ok("2GiB"), 2ull << 30);
    CU_ASSERT_EQUAL(size_ok("3TiB"), 3ull << 40);
}

static void test_size_junk(void)
{
    const char *bad[] = {"", "k", "-1", "+1", "1.5M", "1 M", " 1M", "1M ", "1Mx", "1X",
                         "1KiBB", "1iB", "18446744073709551616", "16777216TiB", "0x100", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        uint64_t bytes = 99;
        CU_ASSERT_EQUAL(units_parse_size_bytes(bad[i], &bytes), -1);
        CU_ASSERT_EQUAL(bytes, 99);
    }
    CU_ASSERT_EQUAL(size_ok("16777215TiB"), 16777215ull << 40);
}

static void test_bool(void)
{
    const char *yes[] = {"true", "TRUE", "True", "yes", "YES", "on", "On", NULL};
    const char *no[] = {"false", "FALSE", "no", "No", "off", "OFF", NULL};
    const char *bad[] = {"", "1", "0", "y", "n", "enabled", "true ", " on", NULL};
    int value;
    for (size_t i = 0; yes[i] != NULL; i++) {
        value = -1;
        CU_ASSERT_EQUAL(units_parse_bool(yes[i], &value), 0);
        CU_ASSERT_EQUAL(value, 1);
    }
    for (size_t i = 0; no[i] != NULL; i++) {
        value = -1;
        CU_ASSERT_EQUAL(units_parse_bool(no[i], &value), 0);
        CU_ASSERT_EQUAL(value, 0);
    }
    for (size_t i = 0; bad[i] != NULL; i++) {
        value = -1;
        CU_ASSERT_EQUAL(units_parse_bool(bad[i], &value), -1);
        CU_ASSERT_EQUAL(value, -1);
    }
}

static void test_int64(void)
{
    int64_t value = 0;
    CU_ASSERT_EQUAL(units_parse_int64("42", &value), 0);
    CU_ASSERT_EQUAL(value, 42);
    CU_ASSERT_EQUAL(units_parse_int64("-42", &value), 0);
    CU_ASSERT_EQUAL(value, -42);
    CU_ASSERT_EQUAL(units_parse_int64("+7", &value), 0);
    CU_ASSERT_EQUAL(value, 7);
    CU_ASSERT_EQUAL(units_parse_int64("9223372036854775807", &value), 0);
    CU_ASSERT_EQUAL(value, INT64_MAX);
    CU_ASSERT_EQUAL(units_parse_int64("-9223372036854775808", &value), 0);
    CU_ASSERT_EQUAL(value, INT64_MIN);

    const char *bad[] = {"", "-", "+", " 1", "1 ", "1x", "0x10", "1.0", "1e3", "--1",
                         "9223372036854775808", "-9223372036854775809", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        value = 5;
        CU_ASSERT_EQUAL(units_parse_int64(bad[i], &value), -1);
        CU_ASSERT_EQUAL(value, 5);
    }
}

static const unit_test_case cases[] = {
    {"durations in every unit, and bare 0", test_duration_units},
    {"durations refuse junk, signs, spaces and bare numbers", test_duration_junk},
    {"durations refuse overflow", test_duration_overflow},
    {"sizes use 1024 for every spelling", test_size_binary_units},
    {"sizes refuse junk and overflow", test_size_junk},
    {"booleans: true/false/yes/no/on/off in any case", test_bool},
    {"int64: full range, nothing else", test_int64},
    {NULL, NULL}};

UNIT_TEST_MAIN("units", cases)
