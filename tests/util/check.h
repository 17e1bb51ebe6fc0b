/* check.h — shared test helpers: deterministic random inputs, tolerance comparisons, finite
 * differences and fixture paths.
 *
 * Finite differences: a test hands fd_check a closure that runs the forward pass and returns a
 * scalar loss L = Σ w·out in double precision (w random, fixed per test). For each checked input
 * element x_i, the numerical gradient is (L(x_i + h) − L(x_i − h)) / 2h with the kernel itself
 * running in fp32 — so the tolerance must cover fp32 rounding of the forward divided by h.
 * With h ≈ 1e-2·max(1,|x|) and outputs of order 1, that error is ~1e-5/1e-2 = 1e-3 relative:
 * tolerances of atol ~1e-3, rtol ~1e-2 pass a correct kernel, while a broken term (a dropped
 * product, a wrong sign, a missing scale) changes gradients by O(1) and fails.
 */
#ifndef POSTTRAIN_TESTS_CHECK_H
#define POSTTRAIN_TESTS_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Deterministic uniform values in [lo, hi), never exactly 0 or 1: a tiny xorshift for test
 * inputs only (the toolkit's own RNG is core/rng). */
typedef struct test_rng { uint64_t s; } test_rng;
void test_rng_seed(test_rng *r, uint64_t seed);
double test_rng_uniform(test_rng *r);                 /* [0, 1) */
void fill_uniform(float *x, size_t n, float lo, float hi, test_rng *r);
void fill_normal(float *x, size_t n, float std, test_rng *r);

/* |a − b| ≤ atol + rtol·|b| elementwise, and both finite. Returns the index of the first
 * violation, or -1. *worst receives the largest |a − b| / (atol + rtol·|b|). */
long compare_close(const float *a, const float *b, size_t n, double atol, double rtol, double *worst);
/* Index of the first NaN/Inf, or -1. */
long first_nonfinite(const float *x, size_t n);

/* The forward closure: returns L(x) for the current contents of the perturbed buffer. */
typedef double (*fd_loss_fn)(void *ctx);

typedef struct fd_result {
    long checked;       /* elements compared */
    long worst_index;   /* element with the largest normalised error */
    double worst_ratio; /* |num − ana| / (atol + rtol·|num|); ≤ 1 passes */
    double numeric;     /* numerical gradient at worst_index */
    double analytic;    /* analytic gradient at worst_index */
    int nonfinite;      /* a NaN/Inf was seen in either gradient */
} fd_result;

/* Compare analytic[i] with the central difference of loss(ctx) in x[i], for up to max_checks
 * elements spread over [0, n) (all when n ≤ max_checks). x is restored afterwards.
 * Step h_i = h·max(1, |x_i|). Returns 1 when every checked element passes. */
int fd_check(float *x, const float *analytic, size_t n, fd_loss_fn loss, void *ctx, double h,
             double atol, double rtol, long max_checks, fd_result *res);

/* Σ w_i·out_i in double. */
double dot_double(const float *w, const float *out, size_t n);

/* Absolute path of a file under tests/fixtures/ (static buffer per call site is not allowed, so
 * the caller passes one). */
const char *fixture_path(char *buf, size_t len, const char *name);

#endif
