/* optim.c — AdamW over a model layout; see optim.h for the step and its invariants.
 *
 * The trainable tensors are gathered once at init into spans: entries sorted by offset, and
 * neighbours that touch (offset + numel == next offset) with the same decay setting merged,
 * which turns a MoE layer's E·3 expert slices into a few calls. AdamW is elementwise, so a
 * merged span gives bit-for-bit what per-tensor calls give. The norm and the clipping are
 * kernels/adamw's grad_global_norm / grad_clip_scale over the spans as buffers, in offset order,
 * so the norm does not depend on the layout table's order or the thread count.
 * With bf16 moments each span is updated in runs of OPTIM_BF16_CHUNK floats: the run's m and v
 * are widened to fp32 (exact), adamw_update runs on the fp32 copies exactly as in fp32 mode, and
 * the results are rounded to nearest-even bf16 (model/dtype.h). Elements stay independent, so the
 * result does not depend on the chunking or the thread count.
 */
#include "core/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/adamw.h"
#include "model/dtype.h"

optim_config optim_config_default(void) {
    optim_config c = {0.9, 0.95, 1e-8, 0.1, 1.0, false, OPTIM_MOMENTS_FP32};
    return c;
}

pt_status optim_moments_parse(optim_moments *out, const char *name, pt_error *err) {
    if (name && strcmp(name, "fp32") == 0) *out = OPTIM_MOMENTS_FP32;
    else if (name && strcmp(name, "bf16") == 0) *out = OPTIM_MOMENTS_BF16;
    else PT_FAIL(err, PT_ERR_CONFIG, "adam_moments must be fp32 or bf16, got '%s'", name ? name : "null");
    return PT_OK;
}

const char *optim_moments_name(optim_moments m) { return m == OPTIM_MOMENTS_BF16 ? "bf16" : "fp32"; }

pt_status optim_config_validate(const optim_config *c, pt_error *err) {
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0)) PT_FAIL(err, PT_ERR_CONFIG, "adam_beta1 must be in [0, 1), got %g", c->beta1);
    if (!(c->beta2 >= 0.0 && c->beta2 < 1.0)) PT_FAIL(err, PT_ERR_CONFIG, "adam_beta2 must be in [0, 1), got %g", c->beta2);
    if (!(isfinite(c->eps) && c->eps > 0.0)) PT_FAIL(err, PT_ERR_CONFIG, "adam_epsilon must be > 0, got %g", c->eps);
    if (!(isfinite(c->weight_decay) && c->weight_decay >= 0.0))
        PT_FAIL(err, PT_ERR_CONFIG, "weight_decay must be a finite number >= 0, got %g", c->weight_decay);
    if (!(isfinite(c->max_grad_norm) && c->max_grad_norm >= 0.0))
        PT_FAIL(err, PT_ERR_CONFIG, "max_grad_norm must be >= 0 (0 turns clipping off), got %g", c->max_grad_norm);
    if (c->moments != OPTIM_MOMENTS_FP32 && c->moments != OPTIM_MOMENTS_BF16)
        PT_FAIL(err, PT_ERR_CONFIG, "adam_moments must be fp32 or bf16 (enum value %d)", (int)c->moments);
    return PT_OK;
}

static int span_cmp(const void *a, const void *b) {
    const optim_span *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

pt_status optim_init(optim *opt, const model_layout *layout, const optim_config *cfg, pt_error *err) {
    memset(opt, 0, sizeof *opt);
    PT_TRY(optim_config_validate(cfg, err));
    opt->cfg = *cfg;
    opt->total = layout->total;

    int n = 0;
    for (int i = 0; i < layout->ntensors; i++) {
        const tensor_entry *t = &layout->tensors[i];
        n += !t->alias && t->role != TENSOR_BIAS && t->numel > 0;
    }
    optim_span *spans = malloc((size_t)(n > 0 ? n : 1) * sizeof *spans);
    PT_CHECK_ALLOC(spans, err, (size_t)(n > 0 ? n : 1) * sizeof *spans);
    int k = 0;
    for (int i = 0; i < layout->ntensors; i++) {
        const tensor_entry *t = &layout->tensors[i];
        if (t->alias || t->role == TENSOR_BIAS || t->numel == 0) continue;
        if (t->offset > layout->total || t->numel > layout->total - t->offset) {
            free(spans);
            PT_FAIL(err, PT_ERR_INTERNAL, "layout entry '%s' (offset %zu, %zu floats) lies outside the %zu-float arena",
                    t->name, t->offset, t->numel, layout->total);
        }
        spans[k++] = (optim_span){t->offset, t->numel, t->role == TENSOR_WEIGHT || cfg->weight_decay_norms};
    }
    qsort(spans, (size_t)k, sizeof *spans, span_cmp);
    int merged = 0;
    for (int i = 0; i < k; i++) {
        if (merged > 0) {
            optim_span *last = &spans[merged - 1];
            if (spans[i].offset < last->offset + last->numel) {
                const optim_span overlap = spans[i];
                free(spans);
                PT_FAIL(err, PT_ERR_INTERNAL,
                        "layout tensors overlap at offset %zu without being marked as aliases; the optimizer would "
                        "update that memory twice",
                        overlap.offset);
            }
            if (spans[i].offset == last->offset + last->numel && spans[i].decay == last->decay) {
                last->numel += spans[i].numel;
                continue;
            }
        }
        spans[merged++] = spans[i];
    }
    opt->spans = spans;
    opt->nspans = merged;
    size_t cnt = (size_t)(merged > 0 ? merged : 1);
    opt->grad_ptrs = calloc(cnt, sizeof *opt->grad_ptrs);
    opt->span_sizes = calloc(cnt, sizeof *opt->span_sizes);
    if (!opt->grad_ptrs || !opt->span_sizes) {
        optim_free(opt);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for the optimizer's span table (%zu spans)", cnt);
    }
    for (int i = 0; i < merged; i++) {
        opt->span_sizes[i] = spans[i].numel;
        opt->trainable += spans[i].numel;
    }

    const bool bf16 = cfg->moments == OPTIM_MOMENTS_BF16;
    const size_t chunk = layout->total < OPTIM_BF16_CHUNK ? layout->total : OPTIM_BF16_CHUNK;
    arena_slot slots[] = {{"adam_m", (void **)&opt->m, bf16 ? 0 : layout->total, sizeof(float)},
                          {"adam_v", (void **)&opt->v, bf16 ? 0 : layout->total, sizeof(float)},
                          {"adam_m_bf16", (void **)&opt->m16, bf16 ? layout->total : 0, sizeof(uint16_t)},
                          {"adam_v_bf16", (void **)&opt->v16, bf16 ? layout->total : 0, sizeof(uint16_t)},
                          {"adam_m_chunk", (void **)&opt->chunk_m, bf16 ? chunk : 0, sizeof(float)},
                          {"adam_v_chunk", (void **)&opt->chunk_v, bf16 ? chunk : 0, sizeof(float)}};
    pt_status st = arena_init(&opt->mem, slots, 6, err);
    if (st != PT_OK) {
        optim_free(opt);
        return error_prefix(err, "optimizer state");
    }
    return PT_OK;
}

void optim_free(optim *opt) {
    arena_free(&opt->mem);
    free(opt->spans);
    free(opt->grad_ptrs);
    free(opt->span_sizes);
    memset(opt, 0, sizeof *opt);
}

/* AdamW on n floats whose moments are bf16: widen a chunk, update in fp32, round back. */
static void adamw_update_bf16_moments(optim *opt, float *param, uint16_t *m16, uint16_t *v16, const float *grad,
                                      size_t n, double lr, double weight_decay) {
    const optim_config *c = &opt->cfg;
    float *cm = opt->chunk_m, *cv = opt->chunk_v;
    for (size_t start = 0; start < n; start += OPTIM_BF16_CHUNK) {
        const size_t len = n - start < OPTIM_BF16_CHUNK ? n - start : OPTIM_BF16_CHUNK;
        const ptrdiff_t count = (ptrdiff_t)len;
        uint16_t *mb = m16 + start, *vb = v16 + start;
#pragma omp parallel for
        for (ptrdiff_t i = 0; i < count; i++) {
            cm[i] = dtype_bf16_to_f32(mb[i]);
            cv[i] = dtype_bf16_to_f32(vb[i]);
        }
        adamw_update(param + start, cm, cv, grad + start, len, lr, c->beta1, c->beta2, c->eps, weight_decay,
                     (int)opt->step);
#pragma omp parallel for
        for (ptrdiff_t i = 0; i < count; i++) {
            mb[i] = dtype_f32_to_bf16(cm[i]);
            vb[i] = dtype_f32_to_bf16(cv[i]);
        }
    }
}

pt_status optim_step(optim_step_info *info, optim *opt, float *params, float *grads, double lr, pt_error *err) {
    optim_step_info local;
    if (!info) info = &local;
    *info = (optim_step_info){NAN, 1.0, false};
    if (!(isfinite(lr) && lr >= 0.0)) PT_FAIL(err, PT_ERR_INVALID, "learning rate must be finite and >= 0, got %g", lr);
    if (opt->step >= INT32_MAX)
        PT_FAIL(err, PT_ERR_INVALID, "optimizer step count %lld is at the AdamW kernel's int limit", (long long)opt->step);

    for (int i = 0; i < opt->nspans; i++) opt->grad_ptrs[i] = grads + opt->spans[i].offset;
    const optim_config *c = &opt->cfg;
    /* grad_clip_scale leaves the gradients alone when the norm is not finite. */
    double norm = c->max_grad_norm > 0.0
                      ? grad_clip_scale(opt->grad_ptrs, opt->span_sizes, opt->nspans, c->max_grad_norm)
                      : grad_global_norm((const float *const *)opt->grad_ptrs, opt->span_sizes, opt->nspans);
    info->grad_norm = norm;
    if (!isfinite(norm)) {
        info->skipped = true;
        return PT_OK;
    }
    if (c->max_grad_norm > 0.0 && c->max_grad_norm / (norm + 1e-6) < 1.0) info->clip_coef = c->max_grad_norm / (norm + 1e-6);
    opt->step++;
    for (int i = 0; i < opt->nspans; i++) {
        const optim_span *s = &opt->spans[i];
        if (c->moments == OPTIM_MOMENTS_BF16) {
            adamw_update_bf16_moments(opt, params + s->offset, opt->m16 + s->offset, opt->v16 + s->offset,
                                      grads + s->offset, s->numel, lr, s->decay ? c->weight_decay : 0.0);
            continue;
        }
        adamw_update(params + s->offset, opt->m + s->offset, opt->v + s->offset, grads + s->offset, s->numel, lr,
                     c->beta1, c->beta2, c->eps, s->decay ? c->weight_decay : 0.0, (int)opt->step);
    }
    return PT_OK;
}

void nan_guard_init(nan_guard *g, int limit) {
    g->limit = limit > 0 ? limit : 1;
    g->consecutive = 0;
    g->total = 0;
}

pt_status nan_guard_record(nan_guard *g, const optim_step_info *info, pt_error *err) {
    if (!info->skipped) {
        g->consecutive = 0;
        return PT_OK;
    }
    g->consecutive++;
    g->total++;
    if (g->consecutive >= g->limit)
        PT_FAIL(err, PT_ERR_NUMERIC,
                "the gradient norm was not finite (last: %g) for %d optimizer steps in a row (limit %d); the run "
                "diverged: lower the learning rate, check the data for empty or broken samples, and resume from the "
                "last checkpoint",
                info->grad_norm, g->consecutive, g->limit);
    return PT_OK;
}
