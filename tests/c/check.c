/*
 * check: runs the cases of one test file and prints a summary line that ctest
 * and CI both read.
 */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>

static int failures_in_case;

void check_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures_in_case++;
}

int check_main(const check_case *cases) {
    int passed = 0, failed = 0;
    for (const check_case *c = cases; c->name; c++) {
        failures_in_case = 0;
        c->run();
        if (failures_in_case == 0) {
            printf("ok   %s\n", c->name);
            passed++;
        } else {
            printf("FAIL %s\n", c->name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
