/* reward_countdown.h — the Countdown checker behind the `countdown` reward, exposed for tests and
 * for the built-in countdown task (rules in reward_countdown.c's file comment). */
#ifndef POSTTRAIN_REWARDS_REWARD_COUNTDOWN_H
#define POSTTRAIN_REWARDS_REWARD_COUNTDOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum countdown_verdict {
    COUNTDOWN_MALFORMED = 0, /* not an expression we can evaluate (syntax, ÷0, overflow, '=') */
    COUNTDOWN_WRONG,         /* evaluates, but uses other numbers or misses the target */
    COUNTDOWN_CORRECT,
} countdown_verdict;

typedef struct countdown_rules {
    bool allow_unary_minus; /* "-3 + 5": default false (then malformed) */
    bool use_all;           /* every given number exactly once (TinyZero); default false: at most once */
    bool exact_division;    /* every division must leave an integer; default false (rationals) */
} countdown_rules;

/* Judges the expression text expr[0..len) against the multiset numbers[0..n) and target.
 * why (may be NULL) receives a short explanation. */
countdown_verdict countdown_check(char *why, size_t why_len, const char *expr, size_t len, const int64_t *numbers,
                                  int n, int64_t target, const countdown_rules *rules);

#endif
