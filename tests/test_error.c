/* test_error.c — the error contract: messages, context prefixes, check macros, backend choice. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/error.h"

static pt_status open_missing(const char *path, pt_error *err) {
    int fd;
    PT_CHECK_ERRNO(fd = open(path, O_RDONLY), err, "cannot open '%s'", path);
    close(fd);
    return PT_OK;
}

static pt_status positive(int x, pt_error *err) {
    PT_CHECK(x > 0, err, PT_ERR_INVALID, "x must be positive, got %d", x);
    return PT_OK;
}

static pt_status chain(int x, pt_error *err) {
    PT_TRY(positive(x, err));
    return PT_OK;
}

Test(error, errno_check_names_expression_and_reason) {
    pt_error err = {0};
    cr_assert_eq(open_missing("/nonexistent/posttrain", &err), PT_ERR_IO);
    cr_assert_eq(err.status, PT_ERR_IO);
    cr_assert(strstr(err.msg, "cannot open '/nonexistent/posttrain'"), "%s", err.msg);
    cr_assert(strstr(err.msg, "No such file"), "%s", err.msg);
    cr_assert(strstr(err.msg, "open(path, O_RDONLY)"), "%s", err.msg);
    cr_assert(err.line > 0 && strstr(err.file, "test_error.c"));
}

Test(error, check_and_try_propagate) {
    pt_error err = {0};
    cr_assert_eq(chain(3, &err), PT_OK);
    cr_assert_eq(err.status, PT_OK, "success must leave err untouched");
    cr_assert_eq(chain(-2, &err), PT_ERR_INVALID);
    cr_assert(strstr(err.msg, "x must be positive, got -2 (check `x > 0` failed)"), "%s", err.msg);
}

Test(error, prefix_adds_context_and_survives_long_messages) {
    pt_error err = {0};
    error_set(&err, PT_ERR_FORMAT, __FILE__, __LINE__, "bad header");
    error_prefix(&err, "loading %s", "model.safetensors");
    cr_assert_str_eq(err.msg, "loading model.safetensors: bad header");
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    error_set(&err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s", big);
    error_prefix(&err, "ctx");
    cr_assert_eq(strncmp(err.msg, "ctx: xxx", 8), 0);
    cr_assert_eq(strlen(err.msg), sizeof err.msg - 1);
}

Test(backend, cpu_always_and_cuda_only_when_visible) {
    pt_error err = {0};
    backend be;
    cr_assert_eq(backend_init(&be, BACKEND_CPU, 0, &err), PT_OK);
    cr_assert(strstr(be.name, "cpu"));
    backend_kind k;
    cr_assert_eq(backend_parse("cuda", &k, &err), PT_OK);
    cr_assert_eq(k, BACKEND_CUDA);
    cr_assert_eq(backend_parse("tpu", &k, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "'tpu'"), "%s", err.msg);
    char why[256];
    if (backend_cuda_devices(why, sizeof why) == 0) {
        cr_assert_eq(backend_init(&be, BACKEND_CUDA, 0, &err), PT_ERR_BACKEND);
        cr_assert(strstr(err.msg, "--backend cpu"), "%s", err.msg);
    } else {
        cr_assert_eq(backend_init(&be, BACKEND_CUDA, 0, &err), PT_OK, "%s", err.msg);
        cr_assert_gt(be.sm, 0);
    }
}
