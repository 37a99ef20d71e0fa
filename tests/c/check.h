/*
 * check: the smallest test harness that does the job for the C core.
 *
 * A test file lists its cases in a check_case table and calls check_main.
 * CHECK records a failure with file and line and lets the case go on, so one
 * run shows every broken assertion. The run ends with "N passed, N failed".
 */
#ifndef PRISN_CHECK_H
#define PRISN_CHECK_H

#include <stdbool.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*run)(void);
} check_case;

void check_fail(const char *file, int line, const char *fmt, ...);
int check_main(const check_case *cases);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                    \
    } while (0)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long got_ = (long long)(got), want_ = (long long)(want);                              \
        if (got_ != want_)                                                                         \
            check_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #got, got_, want_);            \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *got_ = (got), *want_ = (want);                                                 \
        if (got_ == NULL || strcmp(got_, want_) != 0)                                              \
            check_fail(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", #got,                      \
                       got_ ? got_ : "(null)", want_);                                             \
    } while (0)

#endif
