/* check.c — see check.h. */
#include "tests/util/check.h"

#include <math.h>
#include <stdio.h>

#ifndef PT_SOURCE_DIR
#define PT_SOURCE_DIR "."
#endif

void test_rng_seed(test_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull; }

double test_rng_uniform(test_rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (double)(r->s >> 11) * (1.0 / 9007199254740992.0);
}

void fill_uniform(float *x, size_t n, float lo, float hi, test_rng *r) {
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = lo + (hi - lo) * (float)test_rng_uniform(r);
        while (v == 0.0f || v == 1.0f);
        x[i] = v;
    }
}

void fill_normal(float *x, size_t n, float std, test_rng *r) {
    for (size_t i = 0; i < n; i++) {
        double u1 = test_rng_uniform(r), u2 = test_rng_uniform(r);
        if (u1 < 1e-12) u1 = 1e-12;
        float v = (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        x[i] = v == 0.0f ? std * 1e-3f : v;
    }
}

long compare_close(const float *a, const float *b, size_t n, double atol, double rtol, double *worst) {
    long first = -1;
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            if (first < 0) first = (long)i;
            w = INFINITY;
            continue;
        }
        double ratio = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
        if (ratio > w) w = ratio;
        if (ratio > 1.0 && first < 0) first = (long)i;
    }
    if (worst) *worst = w;
    return first;
}

long first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

double dot_double(const float *w, const float *out, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)w[i] * out[i];
    return s;
}

int fd_check(float *x, const float *analytic, size_t n, fd_loss_fn loss, void *ctx, double h,
             double atol, double rtol, long max_checks, fd_result *res) {
    fd_result r = {0, -1, 0.0, 0.0, 0.0, 0};
    size_t stride = (max_checks > 0 && n > (size_t)max_checks) ? n / (size_t)max_checks : 1;
    int ok = 1;
    for (size_t i = 0; i < n; i += stride) {
        float orig = x[i];
        double step = h * fmax(1.0, fabs((double)orig));
        x[i] = (float)(orig + step);
        double up_step = (double)x[i] - orig; /* the step actually taken in fp32 */
        double lp = loss(ctx);
        x[i] = (float)(orig - step);
        double dn_step = orig - (double)x[i];
        double lm = loss(ctx);
        x[i] = orig;
        double num = (lp - lm) / (up_step + dn_step);
        double ana = analytic[i];
        r.checked++;
        if (!isfinite(num) || !isfinite(ana)) {
            r.nonfinite = 1;
            ok = 0;
            r.worst_index = (long)i;
            r.numeric = num;
            r.analytic = ana;
            r.worst_ratio = INFINITY;
            continue;
        }
        double ratio = fabs(num - ana) / (atol + rtol * fabs(num));
        if (ratio > r.worst_ratio) {
            r.worst_ratio = ratio;
            r.worst_index = (long)i;
            r.numeric = num;
            r.analytic = ana;
        }
        if (ratio > 1.0) ok = 0;
    }
    if (res) *res = r;
    return ok;
}

const char *fixture_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/tests/fixtures/%s", PT_SOURCE_DIR, name);
    return buf;
}
