/* device.cu — what the CUDA runtime can see: the seam between the CPU build and kernels/cuda/.
 *
 * Compiled only when nvcc is found (Makefile: CUDA=1); core/backend.c calls these through the
 * C declarations in kernels/cuda/device.h. Every function returns 0 on success, or a negative
 * value with a message that says what the runtime reported.
 */
#include "kernels/cuda/device.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int cuda_device_count(int *count, char *msg, size_t msglen) {
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        snprintf(msg, msglen, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

extern "C" int cuda_device_describe(int device, char *name, size_t namelen, int *sm, size_t *bytes,
                                    char *msg, size_t msglen) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        snprintf(msg, msglen, "cudaGetDeviceProperties(%d): %s", device, cudaGetErrorString(e));
        return -1;
    }
    snprintf(name, namelen, "%s", p.name);
    *sm = p.major * 10 + p.minor;
    *bytes = p.totalGlobalMem;
    return 0;
}

extern "C" int cuda_device_select(int device, char *msg, size_t msglen) {
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        snprintf(msg, msglen, "cudaSetDevice(%d): %s", device, cudaGetErrorString(e));
        return -1;
    }
    return 0;
}
