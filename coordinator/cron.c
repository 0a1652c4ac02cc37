/* cron.c - parse and evaluate five-field cron expressions in UTC (see cron.h). */
#include "cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"

static const char *s_field_names[5] = {"minute", "hour", "day of month", "month", "day of week"};
static const int s_lo[5] = {0, 0, 1, 1, 0}, s_hi[5] = {59, 23, 31, 12, 7};

static int s_num(const char **p, int *out)
{
    if (**p < '0' || **p > '9') return -1;
    long v = strtol(*p, (char **)p, 10);
    if (v > 1000) return -1;
    *out = (int)v;
    return 0;
}

static int s_field(const char *text, int f, uint64_t *bits, int *star, char *err, size_t errlen)
{
    *bits = 0;
    /* As in Vixie cron, a field that starts with '*' (also '* /2' written without the
     * space) counts as unrestricted for the day-of-month / day-of-week rule. */
    *star = text[0] == '*';
    const char *p = text;
    for (;;) {
        int a, b, step = 1;
        int item_star = *p == '*';
        if (item_star) {
            a = s_lo[f];
            b = s_hi[f] == 7 ? 6 : s_hi[f];
            p++;
        } else {
            if (s_num(&p, &a) != 0) goto bad;
            b = a;
            if (*p == '-') {
                p++;
                if (s_num(&p, &b) != 0) goto bad;
            }
        }
        if (*p == '/') {
            p++;
            if (s_num(&p, &step) != 0 || step <= 0) goto bad;
            if (a == b && !item_star) b = s_hi[f] == 7 ? 6 : s_hi[f]; /* "5/15" = 5-59/15, as cronie */
        }
        if (a < s_lo[f] || a > s_hi[f] || b < s_lo[f] || b > s_hi[f] || b < a) {
            mg_set_error(err, errlen, "field %d (%s): '%s' is out of range %d-%d", f + 1, s_field_names[f], text,
                     s_lo[f], s_hi[f]);
            return -1;
        }
        for (int v = a; v <= b; v += step) *bits |= 1ULL << (f == 4 && v == 7 ? 0 : v);
        if (*p == ',') { p++; continue; }
        if (*p == 0) return 0;
        goto bad;
    }
bad:
    mg_set_error(err, errlen, "field %d (%s): cannot read '%s' (use *, N, A-B, */N, A-B/N or lists)", f + 1,
             s_field_names[f], text);
    return -1;
}

int mg_cron_parse(const char *expr, mg_cron_t *cron, char *err, size_t errlen)
{
    memset(cron, 0, sizeof *cron);
    char buf[256];
    if (strlen(expr) >= sizeof buf) { mg_set_error(err, errlen, "cron expression too long"); return -1; }
    strcpy(buf, expr);
    char *fields[6];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == 5) { n++; break; }
        fields[n++] = t;
    }
    if (n != 5) {
        mg_set_error(err, errlen, "'%s': a cron expression has 5 fields (minute hour day-of-month month day-of-week)", expr);
        return -1;
    }
    uint64_t bits[5];
    int stars[5];
    for (int f = 0; f < 5; f++)
        if (s_field(fields[f], f, &bits[f], &stars[f], err, errlen) != 0) return -1;
    cron->minute = bits[0];
    cron->hour = (uint32_t)bits[1];
    cron->dom = (uint32_t)bits[2];
    cron->month = (uint16_t)bits[3];
    cron->dow = (uint8_t)bits[4];
    cron->dom_star = stars[2];
    cron->dow_star = stars[4];
    return 0;
}

static int s_day_matches(const mg_cron_t *c, const struct tm *tm)
{
    if (!(c->month & (1u << (tm->tm_mon + 1)))) return 0;
    int dom = (c->dom >> tm->tm_mday) & 1, dow = (c->dow >> tm->tm_wday) & 1;
    /* Vixie cron / cronie: when either day field starts with '*', both must match
     * ("0 0 * /2 * 1" written without the space: odd days that are Mondays); when both are
     * restricted, either may match ("0 0 1 * 1": the 1st, and every Monday). */
    if (c->dom_star || c->dow_star) return dom && dow;
    return dom || dow;
}

int64_t mg_cron_prev(const mg_cron_t *c, int64_t at_or_before_ms)
{
    time_t t = (time_t)(at_or_before_ms / 1000);
    t -= t % 60; /* the whole minute at or before */
    time_t limit = t - (time_t)5 * 366 * 86400;
    while (t > limit) {
        struct tm tm;
        gmtime_r(&t, &tm);
        if (!s_day_matches(c, &tm)) {
            t -= (time_t)(tm.tm_hour * 3600 + tm.tm_min * 60 + 60); /* 23:59 of the day before */
            continue;
        }
        if (!((c->hour >> tm.tm_hour) & 1)) {
            t -= (time_t)(tm.tm_min * 60 + 60); /* :59 of the hour before */
            continue;
        }
        if (!((c->minute >> tm.tm_min) & 1)) {
            t -= 60;
            continue;
        }
        return (int64_t)t * 1000;
    }
    return -1;
}

int64_t mg_cron_next(const mg_cron_t *c, int64_t after_ms)
{
    time_t t = (time_t)(after_ms / 1000);
    t = t - t % 60 + 60; /* the next whole minute strictly after */
    time_t limit = t + (time_t)5 * 366 * 86400;
    while (t < limit) {
        struct tm tm;
        gmtime_r(&t, &tm);
        if (!s_day_matches(c, &tm)) {
            t += (time_t)(86400 - tm.tm_hour * 3600 - tm.tm_min * 60);
            continue;
        }
        if (!((c->hour >> tm.tm_hour) & 1)) {
            t += (time_t)(3600 - tm.tm_min * 60);
            continue;
        }
        if (!((c->minute >> tm.tm_min) & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t * 1000;
    }
    return -1;
}
