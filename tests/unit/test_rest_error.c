/*
 * test_rest_error.c - the one JSON error shape every API answer uses.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "rest.h"
#include "unit_test.h"

static void test_error_shape_without_details(void)
{
    json_t *body = rest_error_body("not_found", "no such job", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    CU_ASSERT_EQUAL(json_object_size(body), 1);
    json_t *error = json_object_get(body, "error");
    CU_ASSERT_TRUE(json_is_object(error));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(error, "code")), "not_found");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(error, "message")), "no such job");
    CU_ASSERT_PTR_NULL(json_object_get(error, "details"));
    json_decref(body);
}

static void test_error_shape_with_details(void)
{
    json_t *details = json_pack("{s:s}", "field", "resources.driver.memory");
    json_t *body = rest_error_body("invalid_argument", "bad memory", details);
    json_t *error = json_object_get(body, "error");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_object_get(error, "details"), "field")),
        "resources.driver.memory");
    json_decref(body);
}

static void test_error_message_is_escaped_json(void)
{
    /* A message quoting hostile input must still be one valid JSON document. */
    json_t *body = rest_error_body("invalid_argument", "bad name \"x\"\n\\", NULL);
    char *text = json_dumps(body, JSON_COMPACT);
    json_error_t jerr;
    json_t *again = json_loads(text, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL(again);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_object_get(again, "error"), "message")),
        "bad name \"x\"\n\\");
    json_decref(again);
    free(text);
    json_decref(body);
}

static void test_error_missing_code_defaults(void)
{
    json_t *body = rest_error_body(NULL, NULL, NULL);
    json_t *error = json_object_get(body, "error");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(error, "code")), "internal");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(error, "message")), "");
    json_decref(body);
}

static const unit_test_case cases[] = {
    {"error shape without details", test_error_shape_without_details},
    {"error shape with details", test_error_shape_with_details},
    {"hostile message stays valid JSON", test_error_message_is_escaped_json},
    {"missing code and message get defaults", test_error_missing_code_defaults},
    {NULL, NULL}};

UNIT_TEST_MAIN("rest_error", cases)
