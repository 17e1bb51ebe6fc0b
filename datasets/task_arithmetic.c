/* task_arithmetic.c — multi-digit integer arithmetic with worked solutions.
 *
 * A problem is a chain x0 op1 x1 op2 ... x(k-1) of k operands below 10^D, read with the usual
 * precedence (* and / before + and -, then left to right), where (k, D) come from the difficulty:
 * (2, 2), (2, 3), (3, 3), (3, 4), (4, 5). Operators are uniform over + - * / except that a * or /
 * never follows another * or /: every product or quotient has exactly two operands, so the worked
 * solution can do them first, one line each. A quotient a / b is built as b·q / b with
 * 2 <= b < 10^ceil(D/2) and q >= 2, so it is exact. Magnitudes stay below 4·10^10, far inside
 * int64. The answer (a decimal string, possibly negative) is the value; the completion shows each
 * product by place value ("347 * 28 = 347 * 20 + 347 * 8 = 6940 + 2776 = 9716", splitting the
 * smaller operand), each quotient with its check, then the additions and subtractions in order.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/tasks.h"

enum { AR_MAX_OPERANDS = 4 };
static const int AR_OPERANDS[] = {2, 2, 3, 3, 4};
static const int AR_DIGITS[] = {2, 3, 3, 4, 5};

static bool multiplicative(char op) { return op == '*' || op == '/'; }

static int64_t pow10_i64(int p) {
    int64_t v = 1;
    while (p-- > 0) v *= 10;
    return v;
}

/* "a * b = <parts> = <partial products> = result", splitting the smaller operand by place value. */
static void explain_product(task_text *t, int64_t a, int64_t b) {
    int64_t split = b <= a ? b : a, other = b <= a ? a : b;
    bool split_right = b <= a;
    int64_t parts[20];
    int n = 0;
    for (int64_t place = pow10_i64(18); place >= 1; place /= 10) {
        int64_t digit = (split / place) % 10;
        if (digit) parts[n++] = digit * place;
    }
    task_text_printf(t, "%lld * %lld = ", (long long)a, (long long)b);
    if (n > 1) {
        for (int i = 0; i < n; i++) {
            if (split_right)
                task_text_printf(t, i ? " + %lld * %lld" : "%lld * %lld", (long long)other, (long long)parts[i]);
            else
                task_text_printf(t, i ? " + %lld * %lld" : "%lld * %lld", (long long)parts[i], (long long)other);
        }
        task_text_printf(t, " = ");
        for (int i = 0; i < n; i++) task_text_printf(t, i ? " + %lld" : "%lld", (long long)(parts[i] * other));
        task_text_printf(t, " = ");
    }
    task_text_printf(t, "%lld\n", (long long)(a * b));
}

pt_status task_arithmetic_generate(task_example *out, rng *r, int difficulty, pt_error *err) {
    out->record = NULL;
    out->key = NULL;
    PT_CHECK(difficulty >= 1 && difficulty <= 5, err, PT_ERR_CONFIG, "arithmetic difficulty %d is out of range 1..5",
             difficulty);
    const int k = AR_OPERANDS[difficulty - 1], digits = AR_DIGITS[difficulty - 1];
    const int64_t limit = pow10_i64(digits);               /* operands < limit */
    const int64_t div_limit = pow10_i64((digits + 1) / 2); /* divisors < div_limit */
    char ops[AR_MAX_OPERANDS];                             /* ops[i] sits between x[i] and x[i+1] */
    int64_t x[AR_MAX_OPERANDS];
    for (int i = 0; i + 1 < k; i++) {
        static const char all[] = "+-*/";
        bool after_mul = i > 0 && multiplicative(ops[i - 1]);
        ops[i] = all[rng_below(r, after_mul ? 2 : 4)];
    }
    for (int i = 0; i < k; i++) {
        if (i > 0 && ops[i - 1] == '/') continue; /* the divisor, set with its dividend */
        if (i + 1 < k && ops[i] == '/') {
            int64_t b = 2 + (int64_t)rng_below(r, (uint32_t)(div_limit - 2));
            int64_t q = 2 + (int64_t)rng_below(r, (uint32_t)((limit - 1) / b - 1));
            x[i] = b * q;
            x[i + 1] = b;
        } else {
            x[i] = 2 + (int64_t)rng_below(r, (uint32_t)(limit - 2));
        }
    }

    task_text expr = {0}, prompt = {0}, completion = {0}, key = {0};
    for (int i = 0; i < k; i++) {
        if (i) task_text_printf(&expr, " %c ", ops[i - 1]);
        task_text_printf(&expr, "%lld", (long long)x[i]);
    }
    task_text_printf(&prompt,
                     "Compute %s. Work it out step by step in <think> </think> tags, then give only the final "
                     "integer in <answer> </answer> tags.",
                     expr.buf);

    /* Products and quotients first: terms[] are the additive terms, signs[] the + or - before each. */
    int64_t terms[AR_MAX_OPERANDS] = {0};
    char signs[AR_MAX_OPERANDS];
    int n_terms = 0;
    bool any_mul = false;
    for (int i = 0; i + 1 < k; i++) any_mul |= multiplicative(ops[i]);
    task_text_printf(&completion, "<think>\n");
    if (any_mul) task_text_printf(&completion, "Multiplication and division come first.\n");
    for (int i = 0; i < k; i++) {
        signs[n_terms] = i ? ops[i - 1] : '+';
        if (i + 1 < k && ops[i] == '*') {
            explain_product(&completion, x[i], x[i + 1]);
            terms[n_terms++] = x[i] * x[i + 1];
            i++;
        } else if (i + 1 < k && ops[i] == '/') {
            int64_t q = x[i] / x[i + 1];
            task_text_printf(&completion, "%lld / %lld = %lld, since %lld * %lld = %lld.\n", (long long)x[i],
                             (long long)x[i + 1], (long long)q, (long long)x[i + 1], (long long)q, (long long)x[i]);
            terms[n_terms++] = q;
            i++;
        } else {
            terms[n_terms++] = x[i];
        }
    }
    int64_t acc = terms[0];
    if (n_terms > 1)
        task_text_printf(&completion, any_mul ? "Then add and subtract from left to right.\n"
                                              : "Add and subtract from left to right.\n");
    for (int t = 1; t < n_terms; t++) {
        int64_t next = signs[t] == '+' ? acc + terms[t] : acc - terms[t];
        task_text_printf(&completion, "%lld %c %lld = %lld\n", (long long)acc, signs[t], (long long)terms[t],
                         (long long)next);
        acc = next;
    }
    char answer[32];
    snprintf(answer, sizeof answer, "%lld", (long long)acc);
    task_text_printf(&completion, "So the result is %s.\n</think>\n<answer>%s</answer>", answer, answer);
    task_text_printf(&key, "arithmetic:%s", expr.buf);
    PT_CHECK(!expr.overflow && !prompt.overflow && !completion.overflow && !key.overflow, err, PT_ERR_INTERNAL,
             "arithmetic: a text outgrew its buffer");

    cJSON *rec = cJSON_CreateObject();
    bool ok = rec && cJSON_AddStringToObject(rec, "prompt", prompt.buf) &&
              cJSON_AddStringToObject(rec, "answer", answer) &&
              cJSON_AddStringToObject(rec, "completion", completion.buf);
    char *key_copy = ok ? strdup(key.buf) : NULL;
    if (!key_copy) {
        cJSON_Delete(rec);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory building an arithmetic example");
    }
    out->record = rec;
    out->key = key_copy;
    return PT_OK;
}
