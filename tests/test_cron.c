/* test_cron.c - cron expressions (coordinator/cron.c) and the schedules built on them
 * (coordinator/schedule.c): parse errors name their field, ranges/steps/lists, dow 7 is
 * Sunday, next times across hour/day/month/year boundaries and leap years (expected values
 * from timegm here), the dom/dow OR rule, and schedule ticks: exactly one job per due time,
 * catch-up once after missed runs, pause, remove, and restart between ticks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <inttypes.h>

#include <cmocka.h>

#include "common/jobspec.h"
#include "common/util.h"
#include "coordinator/cron.h"
#include "coordinator/db.h"
#include "coordinator/schedule.h"
#include "coordinator/store.h"
#include "tests/testlib.h"

/* Epoch ms of a UTC calendar time. */
static int64_t s_utc(int y, int mo, int d, int h, int mi, int sec)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm) * 1000;
}

static mg_cron_t s_cron(const char *expr)
{
    mg_cron_t c;
    char err[256] = "";
    int rc = mg_cron_parse(expr, &c, err, sizeof err);
    if (rc != 0) fprintf(stderr, "'%s': %s\n", expr, err);
    assert_int_equal(rc, 0);
    return c;
}

static int64_t s_next(const char *expr, int64_t after_ms)
{
    mg_cron_t c = s_cron(expr);
    return mg_cron_next(&c, after_ms);
}

static void s_show(const char *label, int64_t ms)
{
    char buf[40];
    mg_format_time(ms, buf, sizeof buf);
    fprintf(stderr, "%s: %s (%" PRId64 ")\n", label, buf, ms);
}

/* Asserts that the next time after `after` is `want`, printing both when not. */
static void s_expect_next(const char *expr, int64_t after, int64_t want)
{
    int64_t got = s_next(expr, after);
    if (got != want) {
        fprintf(stderr, "cron '%s'\n", expr);
        s_show("  after", after);
        s_show("  want ", want);
        s_show("  got  ", got);
    }
    assert_int_equal(got, want);
}

/* ---- parsing ------------------------------------------------------------------------- */

static void s_bad(const char *expr, const char *must_mention)
{
    mg_cron_t c;
    char err[256] = "";
    int rc = mg_cron_parse(expr, &c, err, sizeof err);
    if (rc != -1 || !strstr(err, must_mention))
        fprintf(stderr, "cron '%s': rc %d, message '%s' (expected to mention '%s')\n", expr, rc, err, must_mention);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, must_mention));
}

static void test_parse_errors(void **state)
{
    s_bad("60 * * * *", "minute");
    s_bad("60 * * * *", "field 1");
    s_bad("* 24 * * *", "hour");
    s_bad("* 24 * * *", "field 2");
    s_bad("* * 0 * *", "day of month");
    s_bad("* * 32 * *", "day of month");
    s_bad("* * * 0 *", "month");
    s_bad("* * * 13 *", "field 4");
    s_bad("* * * * 8", "day of week");
    s_bad("* * * * 8", "field 5");
    s_bad("a * * * *", "minute");
    s_bad("* x * * *", "hour");
    s_bad("5-1 * * * *", "minute");       /* reversed range */
    s_bad("*/0 * * * *", "minute");       /* zero step */
    s_bad("1,,2 * * * *", "minute");      /* empty list item */
    s_bad("1, * * * *", "minute");        /* trailing comma */
    s_bad("-1 * * * *", "minute");
    s_bad("* * * * mon", "day of week");  /* names are not supported */
    s_bad("* * 1-40 * *", "day of month");
    s_bad("* * * * 1-9/2", "day of week");
    s_bad("1-2-3 * * * *", "minute");
    s_bad("* * * *", "5 fields");
    s_bad("* * * * * *", "5 fields");
    s_bad("", "5 fields");
}

static void test_parse_ranges_steps_lists(void **state)
{
    mg_cron_t c = s_cron("0-10/5,30 */6 1,15 1-3 1-5");
    assert_true(c.minute == ((1ULL << 0) | (1ULL << 5) | (1ULL << 10) | (1ULL << 30)));
    assert_int_equal(c.hour, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
    assert_int_equal(c.dom, (1u << 1) | (1u << 15));
    assert_int_equal(c.month, (1u << 1) | (1u << 2) | (1u << 3));
    assert_int_equal(c.dow, 0x3e);
    assert_int_equal(c.dom_star, 0);
    assert_int_equal(c.dow_star, 0);

    c = s_cron("* * * * *");
    assert_true(c.minute == (1ULL << 60) - 1);
    assert_int_equal(c.hour, (1u << 24) - 1);
    assert_int_equal(c.dom, 0xfffffffeu);
    assert_int_equal(c.month, 0x1ffe);
    assert_int_equal(c.dow, 0x7f);
    assert_int_equal(c.dom_star, 1);
    assert_int_equal(c.dow_star, 1);

    c = s_cron("*/15 9-17/4 */10 */5 *");
    assert_true(c.minute == ((1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45)));
    assert_int_equal(c.hour, (1u << 9) | (1u << 13) | (1u << 17));
    assert_int_equal(c.dom, (1u << 1) | (1u << 11) | (1u << 21) | (1u << 31));
    assert_int_equal(c.month, (1u << 1) | (1u << 6) | (1u << 11));
    /* Tabs and repeated spaces separate fields too. */
    c = s_cron("  59\t23  31 12\t6 ");
    assert_true(c.minute == 1ULL << 59);
    assert_int_equal(c.hour, 1u << 23);
    assert_int_equal(c.dom, 1u << 31);
    assert_int_equal(c.month, 1u << 12);
    assert_int_equal(c.dow, 1u << 6);
}

/* cron.c s_field accepts "N/step" (not in the documented syntax) and reads it as the
 * single value N, dropping the step: "5/15" fires once an hour at :05. Cronie reads it as
 * 5-59/15; either that or an error is expected. */
static void test_parse_number_with_step(void **state)
{
    mg_cron_t c;
    char err[256] = "";
    int rc = mg_cron_parse("5/15 * * * *", &c, err, sizeof err);
    if (rc == 0) assert_true(c.minute == ((1ULL << 5) | (1ULL << 20) | (1ULL << 35) | (1ULL << 50)));
    else assert_non_null(strstr(err, "minute"));
}

static void test_dow_7_is_sunday(void **state)
{
    mg_cron_t a = s_cron("0 0 * * 7"), b = s_cron("0 0 * * 0");
    assert_int_equal(a.dow, 1);
    assert_int_equal(b.dow, 1);
    assert_int_equal(s_cron("0 0 * * 5-7").dow, (1u << 5) | (1u << 6) | 1u);
    assert_int_equal(s_cron("0 0 * * 0,7").dow, 1u);
    /* Wednesday 2024-10-02 -> Sunday 2024-10-06. */
    int64_t wed = s_utc(2024, 10, 2, 12, 0, 0);
    s_expect_next("0 0 * * 7", wed, s_utc(2024, 10, 6, 0, 0, 0));
    s_expect_next("0 0 * * 0", wed, s_utc(2024, 10, 6, 0, 0, 0));
    s_expect_next("0 0 * * 6-7", wed, s_utc(2024, 10, 5, 0, 0, 0));
}

/* ---- next times ---------------------------------------------------------------------- */

static void test_next_basic(void **state)
{
    /* Strictly after: a due minute is never returned for itself. */
    s_expect_next("* * * * *", s_utc(2024, 1, 1, 0, 0, 30), s_utc(2024, 1, 1, 0, 1, 0));
    s_expect_next("* * * * *", s_utc(2024, 1, 1, 12, 0, 0), s_utc(2024, 1, 1, 12, 1, 0));
    s_expect_next("* * * * *", s_utc(2024, 1, 1, 12, 0, 0) - 1, s_utc(2024, 1, 1, 12, 0, 0));
    s_expect_next("* * * * *", s_utc(2024, 1, 1, 12, 0, 0) + 999, s_utc(2024, 1, 1, 12, 1, 0));
    s_expect_next("*/15 * * * *", s_utc(2024, 1, 1, 12, 7, 0), s_utc(2024, 1, 1, 12, 15, 0));
    s_expect_next("*/15 * * * *", s_utc(2024, 1, 1, 12, 15, 0), s_utc(2024, 1, 1, 12, 30, 0));
    s_expect_next("5,50 * * * *", s_utc(2024, 1, 1, 12, 6, 0), s_utc(2024, 1, 1, 12, 50, 0));
}

static void test_next_boundaries(void **state)
{
    /* hour */
    s_expect_next("0 * * * *", s_utc(2024, 3, 10, 13, 59, 0), s_utc(2024, 3, 10, 14, 0, 0));
    s_expect_next("0 * * * *", s_utc(2024, 3, 10, 13, 0, 0), s_utc(2024, 3, 10, 14, 0, 0));
    s_expect_next("45 * * * *", s_utc(2024, 3, 10, 13, 50, 0), s_utc(2024, 3, 10, 14, 45, 0));
    /* day */
    s_expect_next("30 2 * * *", s_utc(2024, 3, 10, 3, 0, 0), s_utc(2024, 3, 11, 2, 30, 0));
    s_expect_next("0 0 * * *", s_utc(2024, 3, 10, 23, 59, 59), s_utc(2024, 3, 11, 0, 0, 0));
    s_expect_next("15 10,14 * * *", s_utc(2024, 3, 10, 14, 16, 0), s_utc(2024, 3, 11, 10, 15, 0));
    /* month */
    s_expect_next("0 0 1 * *", s_utc(2024, 1, 31, 12, 0, 0), s_utc(2024, 2, 1, 0, 0, 0));
    s_expect_next("0 0 31 * *", s_utc(2024, 4, 1, 0, 0, 0), s_utc(2024, 5, 31, 0, 0, 0));
    s_expect_next("0 0 30 * *", s_utc(2023, 1, 31, 0, 0, 0), s_utc(2023, 3, 30, 0, 0, 0));
    s_expect_next("0 12 * 6 *", s_utc(2024, 1, 15, 0, 0, 0), s_utc(2024, 6, 1, 12, 0, 0));
    /* year */
    s_expect_next("0 0 1 1 *", s_utc(2024, 12, 31, 23, 59, 30), s_utc(2025, 1, 1, 0, 0, 0));
    s_expect_next("59 23 31 12 *", s_utc(2023, 12, 31, 23, 59, 0), s_utc(2024, 12, 31, 23, 59, 0));
    s_expect_next("* * * * *", s_utc(2099, 12, 31, 23, 59, 0), s_utc(2100, 1, 1, 0, 0, 0));
    s_expect_next("0 9 * 1 1", s_utc(2024, 2, 1, 0, 0, 0), s_utc(2025, 1, 6, 9, 0, 0));
    /* Office hours: Friday evening -> Monday morning. */
    s_expect_next("*/20 9-17 * * 1-5", s_utc(2024, 10, 4, 17, 45, 0), s_utc(2024, 10, 7, 9, 0, 0));
    s_expect_next("*/20 9-17 * * 1-5", s_utc(2024, 10, 7, 9, 0, 0), s_utc(2024, 10, 7, 9, 20, 0));
}

static void test_next_leap_years(void **state)
{
    s_expect_next("0 12 29 2 *", s_utc(2023, 3, 1, 0, 0, 0), s_utc(2024, 2, 29, 12, 0, 0));
    s_expect_next("0 12 29 2 *", s_utc(2024, 2, 29, 12, 0, 0), s_utc(2028, 2, 29, 12, 0, 0));
    s_expect_next("0 0 * * *", s_utc(2024, 2, 28, 0, 0, 0), s_utc(2024, 2, 29, 0, 0, 0));
    s_expect_next("0 0 * * *", s_utc(2023, 2, 28, 0, 0, 0), s_utc(2023, 3, 1, 0, 0, 0));
    s_expect_next("0 0 1 3 *", s_utc(2024, 2, 28, 0, 0, 0), s_utc(2024, 3, 1, 0, 0, 0));
    /* 2000 is a leap year (divisible by 400), 2100 is not. */
    s_expect_next("0 0 29 2 *", s_utc(1999, 6, 1, 0, 0, 0), s_utc(2000, 2, 29, 0, 0, 0));
    s_expect_next("0 0 29 2 *", s_utc(2099, 3, 1, 0, 0, 0), s_utc(2104, 2, 29, 0, 0, 0));
    s_expect_next("0 0 * * *", s_utc(2100, 2, 28, 0, 0, 0), s_utc(2100, 3, 1, 0, 0, 0));
    /* Day 366 of a leap year: Dec 31 is a Tuesday in 2024. */
    s_expect_next("0 0 31 12 2", s_utc(2024, 12, 30, 0, 0, 0), s_utc(2024, 12, 31, 0, 0, 0));
}

static void test_next_dom_dow_or(void **state)
{
    /* Both restricted: the 13th OR any Friday. October 2024: Fri 4, 11, 18; Sun 13. */
    s_expect_next("0 0 13 * 5", s_utc(2024, 10, 1, 0, 0, 0), s_utc(2024, 10, 4, 0, 0, 0));
    s_expect_next("0 0 13 * 5", s_utc(2024, 10, 4, 0, 0, 0), s_utc(2024, 10, 11, 0, 0, 0));
    s_expect_next("0 0 13 * 5", s_utc(2024, 10, 11, 0, 0, 0), s_utc(2024, 10, 13, 0, 0, 0));
    s_expect_next("0 0 13 * 5", s_utc(2024, 10, 13, 0, 0, 0), s_utc(2024, 10, 18, 0, 0, 0));
    /* Only dom restricted: the 13th only. */
    s_expect_next("0 0 13 * *", s_utc(2024, 10, 1, 0, 0, 0), s_utc(2024, 10, 13, 0, 0, 0));
    s_expect_next("0 0 13 * *", s_utc(2024, 10, 13, 0, 0, 0), s_utc(2024, 11, 13, 0, 0, 0));
    /* Only dow restricted: Fridays only. */
    s_expect_next("0 0 * * 5", s_utc(2024, 10, 11, 0, 0, 0), s_utc(2024, 10, 18, 0, 0, 0));
    /* The month still applies to both branches: Fridays or 1sts, in March only. */
    s_expect_next("0 0 1 3 5", s_utc(2024, 10, 1, 0, 0, 0), s_utc(2025, 3, 1, 0, 0, 0));
    s_expect_next("0 0 1 3 5", s_utc(2025, 3, 1, 0, 0, 0), s_utc(2025, 3, 7, 0, 0, 0));
}

static void test_next_never(void **state)
{
    assert_int_equal(s_next("0 0 31 2 *", s_utc(2024, 1, 1, 0, 0, 0)), -1);
    assert_int_equal(s_next("0 0 30 2 *", s_utc(2024, 1, 1, 0, 0, 0)), -1);
    assert_int_equal(s_next("0 0 31 4,6,9,11 *", s_utc(2024, 1, 1, 0, 0, 0)), -1);
    /* But with a dow as well it fires (OR rule): Feb 2024, first Monday is the 5th. */
    s_expect_next("0 0 31 2 1", s_utc(2024, 1, 1, 0, 0, 0), s_utc(2024, 2, 5, 0, 0, 0));
}

/* ---- schedules ----------------------------------------------------------------------- */

static int s_setup(void **state)
{
    mg_store_policy_t policy = {3, 3, 30000};
    *state = mg_test_store_new("cron", &policy);
    return 0;
}

static int s_teardown(void **state)
{
    mg_test_store_t *f = *state;
    mg_test_store_destroy(&f);
    return 0;
}

static const char s_nightly[] =
    "campaign: nightly catalogue\n"
    "cues:\n"
    "  - name: bed\n"
    "    prompt: \"calm ambient bed\"\n"
    "    emotions: [calm]\n"
    "    variations: 2\n";

static int64_t s_add(mg_store_t *s, const char *cron, int64_t now, int64_t want_next)
{
    int64_t id = 0, next = 0;
    char err[512] = "";
    int rc = mg_sched_add(s, cron, "nightly", "nightly.yaml", s_nightly, now, &id, &next, err, sizeof err);
    if (rc != 0) fprintf(stderr, "mg_sched_add: %s\n", err);
    assert_int_equal(rc, 0);
    assert_true(id > 0);
    assert_int_equal(next, want_next);
    return id;
}

static int s_tick(mg_store_t *s, int64_t now)
{
    int made = -1;
    assert_int_equal(mg_sched_tick(s, now, &made), 0);
    return made;
}

static void test_sched_tick_once_per_due_time(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0), due = s_utc(2030, 1, 1, 1, 0, 0);
    int64_t id = s_add(f->s, "0 * * * *", add, due);
    assert_int_equal(mg_sched_next_due("0 * * * *", add), due);
    assert_int_equal(s_tick(f->s, add), 0);
    assert_int_equal(s_tick(f->s, due - 1), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 0);
    assert_int_equal(s_tick(f->s, due), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders"), 2);
    /* The job knows its schedule and its due time. */
    char key[64];
    snprintf(key, sizeof key, "schedule-%" PRId64 "-%" PRId64, id, due);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT idempotency_key FROM jobs"), key);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT schedule_id FROM jobs"), id);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT campaign FROM jobs"), "nightly catalogue");
    assert_int_equal(mg_test_sql_int(f->db,
                                     "SELECT count(*) FROM schedule_runs WHERE schedule_id = %" PRId64
                                     " AND due_ms = %" PRId64
                                     " AND outcome = 'submitted' AND job_id = (SELECT id FROM jobs)",
                                     id, due),
                     1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT last_due_ms FROM schedules WHERE id = %" PRId64, id), due);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_run'"), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_missed'"), 0);
    /* Again at the same time, and within the hour: nothing. */
    assert_int_equal(s_tick(f->s, due), 0);
    assert_int_equal(s_tick(f->s, due + 30 * 60000), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    /* The next hour: a second job with its own key. */
    int64_t due2 = s_utc(2030, 1, 1, 2, 0, 0);
    assert_int_equal(s_tick(f->s, due2 + 1), 1);
    snprintf(key, sizeof key, "schedule-%" PRId64 "-%" PRId64, id, due2);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs WHERE idempotency_key = '%s'", key), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 2);
    /* The second job's files go to their own folder. */
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(DISTINCT output_dir) FROM jobs"), 2);
}

static void test_sched_catch_up_once(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0);
    int64_t id = s_add(f->s, "0 * * * *", add, s_utc(2030, 1, 1, 1, 0, 0));
    /* Down from before 01:00 until 05:30: due times 01..05 passed; only 05:00 runs. */
    int64_t now = s_utc(2030, 1, 1, 5, 30, 0), latest = s_utc(2030, 1, 1, 5, 0, 0);
    assert_int_equal(s_tick(f->s, now), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    char key[64];
    snprintf(key, sizeof key, "schedule-%" PRId64 "-%" PRId64, id, latest);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT idempotency_key FROM jobs"), key);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM schedule_runs"), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT due_ms FROM schedule_runs"), latest);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_missed'"), 1);
    const char *msg = mg_test_sql_text(f->db, "SELECT message FROM events WHERE kind = 'schedule_missed'");
    if (!strstr(msg, "4 earlier")) fprintf(stderr, "schedule_missed: %s\n", msg);
    assert_non_null(strstr(msg, "4 earlier"));
    /* Nothing more at the same time, and the next hour is a normal run. */
    assert_int_equal(s_tick(f->s, now), 0);
    assert_int_equal(s_tick(f->s, s_utc(2030, 1, 1, 6, 0, 0)), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_missed'"), 1);
    /* Days missed on a daily schedule: one run, the latest. */
    int64_t id2 = s_add(f->s, "30 3 * * *", s_utc(2030, 1, 1, 6, 0, 0), s_utc(2030, 1, 2, 3, 30, 0));
    assert_int_equal(s_tick(f->s, s_utc(2030, 1, 20, 12, 0, 0)), 2); /* id: 1 catch-up, id2: 1 catch-up */
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM schedule_runs WHERE schedule_id = %" PRId64, id2), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT due_ms FROM schedule_runs WHERE schedule_id = %" PRId64, id2),
                     s_utc(2030, 1, 20, 3, 30, 0));
}

static void test_sched_pause_and_resume(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0), due = s_utc(2030, 1, 1, 1, 0, 0);
    int64_t id = s_add(f->s, "0 * * * *", add, due);
    assert_int_equal(mg_sched_set_state(f->s, id, "paused"), MG_STORE_OK);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM schedules WHERE id = %" PRId64, id), "paused");
    assert_int_equal(s_tick(f->s, due), 0);
    assert_int_equal(s_tick(f->s, due + 5 * 3600000), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM schedule_runs"), 0);
    assert_int_equal(mg_sched_set_state(f->s, 9999, "paused"), MG_STORE_NOT_FOUND);
    /* Resumed: runs again (the synthetic clock here is in the future, so the wall-clock
     * "do not replay" floor set by resume is below it and one catch-up run is due). */
    assert_int_equal(mg_sched_set_state(f->s, id, "active"), MG_STORE_OK);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM schedules WHERE id = %" PRId64, id), "active");
    assert_int_equal(s_tick(f->s, due + 5 * 3600000), 1);
}

/* Resuming does not replay the due times that passed while paused (wall clock). */
static void test_sched_resume_skips_paused_runs(void **state)
{
    mg_test_store_t *f = *state;
    int64_t real = mg_now_ms();
    int64_t add = real - 5 * 3600000; /* added five hours ago */
    int64_t id = 0, next = 0;
    char err[512] = "";
    assert_int_equal(mg_sched_add(f->s, "0 * * * *", "hourly", "n.yaml", s_nightly, add, &id, &next, err,
                                  sizeof err), 0);
    assert_int_equal(mg_sched_set_state(f->s, id, "paused"), MG_STORE_OK);
    assert_int_equal(mg_sched_set_state(f->s, id, "active"), MG_STORE_OK);
    int64_t floor_ms = mg_test_sql_int(f->db, "SELECT last_due_ms FROM schedules WHERE id = %" PRId64, id);
    assert_true(floor_ms >= real);
    assert_int_equal(s_tick(f->s, floor_ms), 0);
    int64_t due = mg_sched_next_due("0 * * * *", floor_ms);
    assert_true(due > floor_ms);
    assert_int_equal(s_tick(f->s, due), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_missed'"), 0);
}

static void test_sched_remove(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0), due = s_utc(2030, 1, 1, 1, 0, 0);
    int64_t id = s_add(f->s, "0 * * * *", add, due);
    assert_int_equal(s_tick(f->s, due), 1);
    assert_int_equal(mg_sched_remove(f->s, id), MG_STORE_OK);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM schedules"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM schedule_runs"), 0);
    /* The job it made stays, no longer linked. */
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT schedule_id FROM jobs"), "<null>");
    assert_int_equal(s_tick(f->s, due + 10 * 3600000), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(mg_sched_remove(f->s, id), MG_STORE_NOT_FOUND);
}

static void test_sched_restart_between_ticks(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0), due = s_utc(2030, 1, 1, 1, 0, 0);
    int64_t id = s_add(f->s, "0 * * * *", add, due);
    assert_int_equal(s_tick(f->s, due), 1);
    mg_store_close(&f->s);
    mg_test_store_open(f);
    assert_int_equal(s_tick(f->s, due), 0);
    assert_int_equal(s_tick(f->s, due + 59 * 60000), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    /* Even if last_due_ms were behind (it commits with the run, but the run row is the
     * real guard), the same due time never makes a second job. */
    assert_int_equal(mg_db_run(f->db, "UPDATE schedules SET last_due_ms = ? WHERE id = ?", "ii", add, id), 0);
    mg_store_close(&f->s);
    mg_test_store_open(f);
    assert_int_equal(s_tick(f->s, due), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT last_due_ms FROM schedules WHERE id = %" PRId64, id), due);
}

static void test_sched_add_errors(void **state)
{
    mg_test_store_t *f = *state;
    int64_t id = 0, next = 0;
    char err[512] = "";
    int64_t now = s_utc(2030, 1, 1, 0, 0, 0);
    assert_int_equal(mg_sched_add(f->s, "0 25 * * *", NULL, "n.yaml", s_nightly, now, &id, &next, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "--cron"));
    assert_non_null(strstr(err, "hour"));
    err[0] = 0;
    assert_int_equal(mg_sched_add(f->s, "0 0 31 2 *", NULL, "n.yaml", s_nightly, now, &id, &next, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "never"));
    err[0] = 0;
    static const char bad[] = "campaign: x\ncues:\n  - name: a\n    prompt: \"\"\n";
    assert_int_equal(mg_sched_add(f->s, "0 * * * *", NULL, "bad.yaml", bad, now, &id, &next, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.yaml"));
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM schedules"), 0);
    assert_int_equal(mg_sched_add(f->s, "0 * * * *", "my nightly", "n.yaml", s_nightly, now, &id, &next, err,
                                  sizeof err), 0);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT name FROM schedules WHERE id = %" PRId64, id), "my nightly");
    assert_string_equal(mg_test_sql_text(f->db, "SELECT source_text FROM schedules WHERE id = %" PRId64, id),
                        s_nightly);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT state FROM schedules WHERE id = %" PRId64, id), "active");
    assert_non_null(
        strstr(mg_test_sql_text(f->db, "SELECT message FROM events WHERE kind = 'schedule_added'"), "'my nightly'"));
}

/* schedule.c mg_sched_add: without a name, name = job->campaign, but the job is destroyed
 * (mg_job_destroy) before mg_db_event formats the 'schedule_added' message with name: a
 * use-after-free (valgrind: invalid read in mg_db_event called from mg_sched_add). */
static void test_sched_add_default_name(void **state)
{
    mg_test_store_t *f = *state;
    int64_t id = 0, next = 0;
    char err[512] = "";
    assert_int_equal(mg_sched_add(f->s, "0 * * * *", NULL, "n.yaml", s_nightly, s_utc(2030, 1, 1, 0, 0, 0), &id,
                                  &next, err, sizeof err), 0);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT name FROM schedules WHERE id = %" PRId64, id),
                        "nightly catalogue");
    assert_non_null(strstr(mg_test_sql_text(f->db, "SELECT message FROM events WHERE kind = 'schedule_added'"),
                           "'nightly catalogue'"));
}

/* A stored snapshot that no longer parses: the run is recorded as invalid, no job, and
 * the same due time is not retried on every tick. */
static void test_sched_invalid_snapshot(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0), due = s_utc(2030, 1, 1, 1, 0, 0);
    int64_t id = s_add(f->s, "0 * * * *", add, due);
    assert_int_equal(mg_db_run(f->db, "UPDATE schedules SET source_text = 'campaign: [' WHERE id = ?", "i", id), 0);
    assert_int_equal(s_tick(f->s, due), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 0);
    assert_string_equal(mg_test_sql_text(f->db, "SELECT outcome FROM schedule_runs WHERE due_ms = %" PRId64, due),
                        "invalid");
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_invalid'"), 1);
    assert_int_equal(s_tick(f->s, due), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM events WHERE kind = 'schedule_invalid'"), 1);
}

/* schedule.c s_materialise: when mg_store_submit_tx fails part-way (here a trigger
 * refuses the render rows), the jobs and cues rows it already inserted are committed
 * together with the 'invalid' schedule_runs row: a job with no renders, active for ever. */
static void test_sched_failed_submit_leaves_no_job(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 10, 0), due = s_utc(2030, 1, 1, 1, 0, 0);
    s_add(f->s, "0 * * * *", add, due);
    /* in the file, not TEMP: the store's connection is the one that must run it */
    mg_test_sql_exec(f->db, "CREATE TRIGGER no_renders BEFORE INSERT ON renders "
                            "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END");
    int made = -1;
    mg_sched_tick(f->s, due, &made);
    assert_int_equal(made, 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM renders"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM jobs"), 0);
    assert_int_equal(mg_test_sql_int(f->db, "SELECT count(*) FROM cues"), 0);
}

/* schedule.c mg_sched_tick walks every missed due time one by one, at most 1,000,000 of
 * them: after a long outage of an every-minute schedule it runs a due time that is not
 * the latest, and the next tick at the same instant makes a second job. */
static void test_sched_catch_up_long_outage(void **state)
{
    mg_test_store_t *f = *state;
    int64_t add = s_utc(2030, 1, 1, 0, 0, 30);
    s_add(f->s, "* * * * *", add, s_utc(2030, 1, 1, 0, 1, 0));
    int64_t now = s_utc(2032, 1, 1, 0, 0, 30); /* two years, ~1.05 million minutes */
    assert_int_equal(s_tick(f->s, now), 1);
    int again = s_tick(f->s, now);
    int64_t first_due = mg_test_sql_int(f->db, "SELECT min(due_ms) FROM schedule_runs");
    if (first_due != s_utc(2032, 1, 1, 0, 0, 0)) s_show("first catch-up run due", first_due);
    assert_int_equal(again, 0);
    assert_int_equal(first_due, s_utc(2032, 1, 1, 0, 0, 0));
}

/* When either day field starts with '*', both must match (Vixie cron / cronie). */
static void test_next_star_day_fields_and(void **state)
{
    mg_cron_t c = s_cron("0 0 */2 * 1"); /* odd days that are Mondays */
    assert_int_equal(mg_cron_next(&c, s_utc(2030, 1, 1, 0, 0, 0)), s_utc(2030, 1, 7, 0, 0, 0));
    assert_int_equal(mg_cron_next(&c, s_utc(2030, 1, 7, 0, 0, 0)), s_utc(2030, 1, 21, 0, 0, 0));
    c = s_cron("0 0 * * */2"); /* Sunday, Tuesday, Thursday, Saturday */
    assert_int_equal(mg_cron_next(&c, s_utc(2030, 1, 1, 0, 0, 0)), s_utc(2030, 1, 3, 0, 0, 0));
    /* A later list item of the form N/S is N-max/S even after a '*' item. */
    c = s_cron("*/20,5/30 * * * *");
    assert_true(c.minute == ((1ULL << 0) | (1ULL << 20) | (1ULL << 40) | (1ULL << 5) | (1ULL << 35)));
}

int main(void)
{
    mg_test_log_quiet("test_cron");
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_ranges_steps_lists),
        cmocka_unit_test(test_parse_number_with_step),
        cmocka_unit_test(test_dow_7_is_sunday),
        cmocka_unit_test(test_next_basic),
        cmocka_unit_test(test_next_boundaries),
        cmocka_unit_test(test_next_leap_years),
        cmocka_unit_test(test_next_dom_dow_or),
        cmocka_unit_test(test_next_star_day_fields_and),
        cmocka_unit_test(test_next_never),
        T(test_sched_tick_once_per_due_time),
        T(test_sched_catch_up_once),
        T(test_sched_pause_and_resume),
        T(test_sched_resume_skips_paused_runs),
        T(test_sched_remove),
        T(test_sched_restart_between_ticks),
        T(test_sched_add_errors),
        T(test_sched_invalid_snapshot),
        T(test_sched_add_default_name),
        T(test_sched_failed_submit_leaves_no_job),
        T(test_sched_catch_up_long_outage),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
