/* reward_math.h — the value reader behind the `math` reward, exposed for tests and for other
 * rewards that compare numeric answers (rules in reward_math.c's file comment). */
#ifndef POSTTRAIN_REWARDS_REWARD_MATH_H
#define POSTTRAIN_REWARDS_REWARD_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct math_value {
    bool exact;         /* num/den hold the value exactly */
    int64_t num, den;   /* reduced, den > 0 (when exact) */
    long double approx; /* always set */
    bool percent;       /* written with a trailing % */
} math_value;

/* The whole text as one value (wrappers, sign, fraction, percent, units); false when it is not. */
bool math_value_read(math_value *v, const char *text, size_t len);
/* The last number token in text; false when there is none. */
bool math_value_last_number(math_value *v, const char *text, size_t len);
/* The completion's final answer: last \boxed{}, else last <answer>, else last number. */
bool math_extract_answer(math_value *v, const char *completion);
/* A reference answer (the text after the last "####" when present). */
bool math_reference_read(math_value *v, const char *reference);
/* Equal by value, with the percent rule. */
bool math_value_equal(const math_value *a, const math_value *b);

#endif
