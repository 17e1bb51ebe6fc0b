/* device.h — C declarations of the CUDA device queries in device.cu (built only with CUDA=1). */
#ifndef POSTTRAIN_KERNELS_CUDA_DEVICE_H
#define POSTTRAIN_KERNELS_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int cuda_device_count(int *count, char *msg, size_t msglen);
int cuda_device_describe(int device, char *name, size_t namelen, int *sm, size_t *bytes, char *msg,
                         size_t msglen);
int cuda_device_select(int device, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif

#endif
