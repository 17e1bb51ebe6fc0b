/* backend.h — which machine the math runs on: the CPU reference or a CUDA device.
 *
 * The CPU backend is always present. The CUDA backend exists when the binary was built with nvcc
 * (PT_CUDA) and a device is visible; asking for it otherwise is an error that says which of the
 * two is missing. Trainers receive a backend in their context; no global state.
 */
#ifndef POSTTRAIN_CORE_BACKEND_H
#define POSTTRAIN_CORE_BACKEND_H

#include "core/error.h"

typedef enum backend_kind { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_kind;

typedef struct backend {
    backend_kind kind;
    int device;         /* CUDA device ordinal; -1 on the CPU */
    int sm;             /* compute capability, e.g. 90; 0 on the CPU */
    size_t device_bytes;/* device memory; 0 on the CPU */
    char name[128];     /* "cpu (8 threads)" or the device name */
} backend;

int backend_cuda_compiled(void);
/* Number of visible CUDA devices (0 when not compiled or none visible); msg says why when 0. */
int backend_cuda_devices(char *msg, size_t msglen);
pt_status backend_parse(const char *text, backend_kind *kind, pt_error *err);
pt_status backend_init(backend *be, backend_kind kind, int device, pt_error *err);
const char *backend_kind_name(backend_kind kind);

#endif
