/* backend.c — choosing and describing the CPU or CUDA backend (see backend.h). */
#include "core/backend.h"

#include <omp.h>
#include <stdio.h>
#include <string.h>

#ifdef PT_CUDA
#include "kernels/cuda/device.h"
#endif

int backend_cuda_compiled(void) {
#ifdef PT_CUDA
    return 1;
#else
    return 0;
#endif
}

int backend_cuda_devices(char *msg, size_t msglen) {
#ifdef PT_CUDA
    int count = 0;
    if (cuda_device_count(&count, msg, msglen) != 0) return 0;
    if (count == 0) snprintf(msg, msglen, "the CUDA runtime sees no device");
    return count;
#else
    snprintf(msg, msglen, "this binary was built without CUDA (nvcc was not found at build time)");
    return 0;
#endif
}

const char *backend_kind_name(backend_kind kind) { return kind == BACKEND_CUDA ? "cuda" : "cpu"; }

pt_status backend_parse(const char *text, backend_kind *kind, pt_error *err) {
    if (strcmp(text, "cpu") == 0) { *kind = BACKEND_CPU; return PT_OK; }
    if (strcmp(text, "cuda") == 0) { *kind = BACKEND_CUDA; return PT_OK; }
    PT_FAIL(err, PT_ERR_CONFIG, "unknown backend '%s' (expected \"cpu\" or \"cuda\")", text);
}

pt_status backend_init(backend *be, backend_kind kind, int device, pt_error *err) {
    memset(be, 0, sizeof *be);
    be->kind = kind;
    be->device = -1;
    if (kind == BACKEND_CPU) {
        snprintf(be->name, sizeof be->name, "cpu (%d threads)", omp_get_max_threads());
        return PT_OK;
    }
    char why[256] = "";
    int count = backend_cuda_devices(why, sizeof why);
    if (count == 0) PT_FAIL(err, PT_ERR_BACKEND, "backend 'cuda' is not available: %s; use --backend cpu", why);
    if (device < 0 || device >= count)
        PT_FAIL(err, PT_ERR_BACKEND, "CUDA device %d does not exist (%d visible)", device, count);
#ifdef PT_CUDA
    if (cuda_device_describe(device, be->name, sizeof be->name, &be->sm, &be->device_bytes, why, sizeof why) != 0 ||
        cuda_device_select(device, why, sizeof why) != 0)
        PT_FAIL(err, PT_ERR_BACKEND, "CUDA device %d: %s", device, why);
    be->device = device;
#endif
    return PT_OK;
}
