/* test_config.c - settings: flag > environment > $MG_HOME/mg.conf > default, and a bad value
 * named with where it came from (the flag, the variable, or mg.conf's file:line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"

static char s_home[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_home, sizeof s_home, "/tmp/mg-config-XXXXXX");
    if (!mkdtemp(s_home)) return -1;
    setenv("MG_HOME", s_home, 1);
    char path[128];
    snprintf(path, sizeof path, "%s/mg.conf", s_home);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("# a comment\n\nheartbeat_ms = 250\nlease_ms = 5s   # not a number\n", f);
    fclose(f);
    unsetenv("MG_HEARTBEAT_MS");
    unsetenv("MG_LEASE_MS");
    return mg_config_reload();
}

static int s_teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/mg.conf", s_home);
    unlink(path);
    rmdir(s_home);
    return 0;
}

static void test_precedence(void **state)
{
    (void)state;
    char src[256];
    assert_string_equal(mg_config_get("heartbeat_ms", NULL, "MG_HEARTBEAT_MS", "1000"), "250");
    assert_non_null(strstr(mg_config_source("heartbeat_ms", NULL, "MG_HEARTBEAT_MS", src, sizeof src), "mg.conf:3"));
    setenv("MG_HEARTBEAT_MS", "400", 1);
    assert_string_equal(mg_config_get("heartbeat_ms", NULL, "MG_HEARTBEAT_MS", "1000"), "400");
    assert_string_equal(mg_config_source("heartbeat_ms", NULL, "MG_HEARTBEAT_MS", src, sizeof src), "MG_HEARTBEAT_MS");
    assert_string_equal(mg_config_get("heartbeat_ms", "700", "MG_HEARTBEAT_MS", "1000"), "700");
    assert_string_equal(mg_config_source("heartbeat_ms", "700", "MG_HEARTBEAT_MS", src, sizeof src), "--heartbeat-ms");
    unsetenv("MG_HEARTBEAT_MS");
    assert_string_equal(mg_config_get("liveness", NULL, "MG_LIVENESS", "3"), "3");
    assert_string_equal(mg_config_source("liveness", NULL, "MG_LIVENESS", src, sizeof src), "the default");
}

static void test_int_errors_name_the_source(void **state)
{
    (void)state;
    long v = 0;
    char err[512] = "";
    assert_int_equal(mg_config_int("heartbeat_ms", NULL, "MG_HEARTBEAT_MS", "1000", 10, 600000, &v, err, sizeof err), 0);
    assert_int_equal(v, 250);
    /* from mg.conf, with its line */
    assert_int_equal(mg_config_int("lease_ms", NULL, "MG_LEASE_MS", "30000", 100, 86400000, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "lease_ms must be a whole number in 100..86400000, got '5s'"));
    assert_non_null(strstr(err, "mg.conf:4)"));
    /* from the environment */
    setenv("MG_LEASE_MS", "99", 1);
    assert_int_equal(mg_config_int("lease_ms", NULL, "MG_LEASE_MS", "30000", 100, 86400000, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "got '99' (from MG_LEASE_MS)"));
    unsetenv("MG_LEASE_MS");
    /* from a flag; out of range and overflow */
    assert_int_equal(mg_config_int("max_attempts", "0", "MG_MAX_ATTEMPTS", "3", 1, 100, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "got '0' (from --max-attempts)"));
    assert_int_equal(mg_config_int("max_attempts", "99999999999999999999", NULL, "3", 1, 100, &v, err, sizeof err), -1);
    assert_int_equal(mg_config_int("max_attempts", "", NULL, "3", 1, 100, &v, err, sizeof err), -1);
    /* a NULL err is allowed */
    assert_int_equal(mg_config_int("max_attempts", "x", NULL, "3", 1, 100, &v, NULL, 0), -1);
}

/* The parser behind mg_config_reload, from memory (as tests/fuzz/fuzz_config.c drives it): every
 * line is read, a bad one is named and skipped; a NUL, CRLF and a 10,000-byte value are fine. */
static void test_parse_buffer(void **state)
{
    (void)state;
    char err[1024], src[256];
    static char text[12000];
    size_t o = (size_t)snprintf(text, sizeof text, "endpoint = tcp://x:1\r\nno equals sign\n= 5\nbad key! = 1\n");
    text[o++] = 'a';
    text[o++] = 0;
    o += (size_t)snprintf(text + o, sizeof text - o, "=1\nlong = ");
    memset(text + o, 'v', 10000);
    o += 10000;
    o += (size_t)snprintf(text + o, sizeof text - o, "\nlast=1");
    assert_int_equal(mg_config_parse_buffer("x.conf", text, o, err, sizeof err), -1);
    assert_string_equal(err, "x.conf:2:1: expected 'key = value'\n"
                             "x.conf:3:1: bad key '' (letters, digits, '_', '.' and '-')\n"
                             "x.conf:4:1: bad key 'bad key!' (letters, digits, '_', '.' and '-')\n"
                             "x.conf:5:1: the line contains a NUL byte");
    assert_string_equal(mg_config_get("endpoint", NULL, NULL, "d"), "tcp://x:1");
    assert_int_equal(strlen(mg_config_get("long", NULL, NULL, "d")), 10000);
    assert_string_equal(mg_config_get("last", NULL, NULL, "d"), "1");
    assert_string_equal(mg_config_source("last", NULL, NULL, src, sizeof src), "x.conf:7");
    assert_int_equal(mg_config_parse_buffer("y.conf", "", 0, NULL, 0), 0);
    assert_string_equal(mg_config_get("endpoint", NULL, NULL, "d"), "d");
    assert_int_equal(mg_config_reload(), 0); /* back to the test's mg.conf */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_int_errors_name_the_source),
        cmocka_unit_test(test_parse_buffer),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
