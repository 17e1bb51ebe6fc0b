/* embedding.h — token embedding lookup (model.embed_tokens): out[i] = table[ids[i]].
 * Shapes: N tokens, C channels; table (V, C) with every id in [0, V) (the caller validates ids
 * against the vocabulary; these kernels do not know V). See embedding.c. */
#ifndef POSTTRAIN_KERNELS_EMBEDDING_H
#define POSTTRAIN_KERNELS_EMBEDDING_H

/* out (N, C) (=) = table[ids[i], :]. */
void embedding_forward(float *out, const int *ids, const float *table, int N, int C);

/* dtable (V, C) (+=): dtable[ids[i], :] += dout[i, :]; repeated ids add up. */
void embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C);

#endif
