/* timer.h — monotonic wall-clock time and accumulating stopwatches for per-phase timing. */
#ifndef POSTTRAIN_CORE_TIMER_H
#define POSTTRAIN_CORE_TIMER_H

/* Seconds on the monotonic clock (arbitrary origin). */
double timer_now(void);

typedef struct stopwatch {
    double started; /* timer_now() at the last start, or < 0 when stopped */
    double total;   /* seconds accumulated over all start/stop pairs */
    long laps;      /* completed start/stop pairs */
} stopwatch;

void stopwatch_reset(stopwatch *s);
void stopwatch_start(stopwatch *s);
/* Stops and returns the seconds of this lap (0 when it was not running). */
double stopwatch_stop(stopwatch *s);

#endif
