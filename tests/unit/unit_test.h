/*
 * unit_test.h - the small harness every CUnit test program shares.
 *
 *   static void test_something(void) { CU_ASSERT_EQUAL(1, 1); }
 *   static const unit_test_case cases[] = {
 *       {"parses a duration", test_something},
 *       {NULL, NULL}};
 *   UNIT_TEST_MAIN("units", cases)
 *
 * The program exits non-zero when any assertion failed, so automake's
 * test driver reports it; CUnit prints its summary for CI to read.
 */
#ifndef SPARKPLANE_TESTS_UNIT_TEST_H
#define SPARKPLANE_TESTS_UNIT_TEST_H

#include <CUnit/Basic.h>
#include <stdio.h>

typedef struct unit_test_case {
    const char *name;
    void (*fn)(void);
} unit_test_case;

static inline int unit_test_run(const char *suite_name, const unit_test_case *cases)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (suite == NULL)
        return 2;
    for (const unit_test_case *c = cases; c->name != NULL; c++)
        if (CU_add_test(suite, c->name, c->fn) == NULL)
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "%s: no test ran\n", suite_name);
        return 1;
    }
    return failed == 0 ? 0 : 1;
}

#define UNIT_TEST_MAIN(suite_name, cases)                                     \
    int main(void) { return unit_test_run(suite_name, cases); }

#endif
