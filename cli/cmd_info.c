/* cmd_info.c — `posttrain info`: how this binary was built and what it can run on. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>

#include "cli/commands.h"
#include "core/backend.h"

int cmd_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("posttrain\n");
    printf("  cpu     %d OpenMP threads, BLAS: %s\n", omp_get_max_threads(), openblas_get_config());
    char why[256] = "";
    int n = backend_cuda_devices(why, sizeof why);
    if (!backend_cuda_compiled()) printf("  cuda    not built: %s\n", why);
    else if (n == 0) printf("  cuda    built for sm_90; no device: %s\n", why);
    for (int d = 0; d < n; d++) {
        backend be;
        pt_error err = {0};
        if (backend_init(&be, BACKEND_CUDA, d, &err) == PT_OK)
            printf("  cuda:%d  %s, sm_%d, %.1f GiB\n", d, be.name, be.sm, (double)be.device_bytes / (1 << 30));
        else
            printf("  cuda:%d  %s\n", d, err.msg);
    }
    return 0;
}
