/* cron.h - five-field cron expressions ("m h dom mon dow"), evaluated in UTC.
 * Fields take *, numbers, ranges a-b, steps a-b/n (or a star followed by /n; n/s means
 * n-max/s as in cronie), and comma lists; dow 0 and 7 are Sunday. As in Vixie cron, when both dom and dow are restricted a day matches if
 * either matches. Used by the schedules (schedule.c); documented in docs/schedules.md.
 */
#ifndef MG_CRON_H
#define MG_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t minute;   /* bit m set: minute m matches (0..59) */
    uint32_t hour;     /* 0..23 */
    uint32_t dom;      /* 1..31 */
    uint16_t month;    /* 1..12 */
    uint8_t dow;       /* 0..6, Sunday = 0 */
    int dom_star, dow_star;
} mg_cron_t;

/* Parses expr. 0, or -1 with a message in err ("field 2 (hour): 25 is out of range 0-23"). */
int mg_cron_parse(const char *expr, mg_cron_t *cron, char *err, size_t errlen);

/* The first matching minute strictly after after_ms (epoch ms), as epoch ms; -1 if none
 * within 5 years (e.g. "0 0 31 2 *"). */
int64_t mg_cron_next(const mg_cron_t *cron, int64_t after_ms);

/* The last matching minute at or before at_or_before_ms, as epoch ms; -1 if none within
 * 5 years. Lets the scheduler jump straight to the latest missed due time. */
int64_t mg_cron_prev(const mg_cron_t *cron, int64_t at_or_before_ms);

#endif
