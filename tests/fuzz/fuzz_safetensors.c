/* fuzz_safetensors.c — libFuzzer harness for the safetensors reader (`make fuzz`).
 *
 * Each input is written to an in-memory file and opened with st_file_open; every tensor the
 * reader accepts is then converted to fp32, so a header that lies about offsets, shapes or
 * dtypes must be caught by the validation, not by a crash. Run:
 *   build-fuzz/fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("st", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    st_file f;
    pt_error err = {0};
    if (st_file_open(&f, path, &err) == PT_OK) {
        for (int i = 0; i < f.n_tensors; i++) {
            const st_tensor *t = &f.tensors[i];
            if (t->numel > (1u << 20)) continue;
            float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
            if (out) st_tensor_read_f32(out, t->numel, t, &err);
            free(out);
        }
        st_file_close(&f);
    }
    close(fd);
    return 0;
}
