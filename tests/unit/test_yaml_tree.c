#include "unit_test.h"
static const unit_test_case cases[] = {{NULL, NULL}};
UNIT_TEST_MAIN("yaml_tree", cases)
