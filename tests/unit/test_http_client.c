#include "unit_test.h"
static const unit_test_case cases[] = {{NULL, NULL}};
UNIT_TEST_MAIN("http_client", cases)
