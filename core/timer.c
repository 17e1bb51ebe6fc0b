/* timer.c — see timer.h. */
#include "core/timer.h"

#include <time.h>

double timer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void stopwatch_reset(stopwatch *s) {
    s->started = -1.0;
    s->total = 0.0;
    s->laps = 0;
}

void stopwatch_start(stopwatch *s) { s->started = timer_now(); }

double stopwatch_stop(stopwatch *s) {
    if (s->started < 0) return 0.0;
    double lap = timer_now() - s->started;
    s->total += lap;
    s->laps++;
    s->started = -1.0;
    return lap;
}
