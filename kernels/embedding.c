/* embedding.c — embedding lookup and its scatter-add gradient.
 *
 * Shape legend: N tokens (B·T), C channels, V vocabulary rows in the table.
 * Math: out[i,c] = table[ids[i],c];  dtable[v,c] += Σ_{i: ids[i]=v} dout[i,c].
 * Invariants: the forward is parallel over tokens. The backward must not race when an id repeats,
 * so it is parallel over channel blocks: each thread owns whole columns of dtable and visits
 * tokens in order, which also makes the sums independent of the thread count.
 */
#include "kernels/embedding.h"

#include <stddef.h>
#include <string.h>

void embedding_forward(float *out, const int *ids, const float *table, int N, int C) {
    if (C <= 0) return;
    size_t c = (size_t)C;
#pragma omp parallel for
    for (int i = 0; i < N; i++) memcpy(out + (size_t)i * c, table + (size_t)ids[i] * c, c * sizeof(float));
}

enum { EMBEDDING_DT_BLOCK = 64 };

void embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C) {
    if (C <= 0 || N <= 0) return;
    size_t c = (size_t)C;
    size_t nblocks = (c + EMBEDDING_DT_BLOCK - 1) / EMBEDDING_DT_BLOCK;
#pragma omp parallel for
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t j0 = blk * EMBEDDING_DT_BLOCK;
        size_t j1 = j0 + EMBEDDING_DT_BLOCK < c ? j0 + EMBEDDING_DT_BLOCK : c;
        for (int i = 0; i < N; i++) {
            float *dst = dtable + (size_t)ids[i] * c;
            const float *src = dout + (size_t)i * c;
            for (size_t j = j0; j < j1; j++) dst[j] += src[j];
        }
    }
}
