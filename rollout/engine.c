/* engine.c — scheduling, sampling and bookkeeping of the rollout engine (see engine.h). */
#include "rollout/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

rollout_config rollout_config_default(void) {
    rollout_config c;
    memset(&c, 0, sizeof c);
    c.num_generations = 8;
    c.max_completion_length = 256;
    c.max_live = 64;
    c.max_cached_tokens = 1 << 20;
    c.block_tokens = 16;
    c.prefill_chunk = 512;
    c.share_prefix = 1;
    c.seed = 0;
    c.sampling = sampler_config_default();
    return c;
}

pt_status rollout_engine_init(rollout_engine *e, const policy_model *m, const tokenizer *tok,
                              const rollout_config *cfg, pt_error *err) {
    memset(e, 0, sizeof *e);
    if (cfg->num_generations <= 0 || cfg->max_completion_length <= 0 || cfg->max_live <= 0 ||
        cfg->block_tokens <= 0 || cfg->prefill_chunk <= 0 || cfg->max_cached_tokens <= 0)
        PT_FAIL(err, PT_ERR_CONFIG,
                "rollout: num_generations, max_completion_length, max_live, block_tokens, prefill_chunk and "
                "max_cached_tokens must be positive");
    if (cfg->vocab_limit < 0 || cfg->vocab_limit > m->cfg.vocab_size)
        PT_FAIL(err, PT_ERR_CONFIG, "rollout: vocab_limit %d is outside [0, vocab_size %d]", cfg->vocab_limit,
                m->cfg.vocab_size);
    if (cfg->n_stop > 0 && !tok)
        PT_FAIL(err, PT_ERR_CONFIG, "rollout: stop strings need a tokenizer to decode completions");
    PT_TRY(sampler_config_check(&cfg->sampling, err));
    e->m = m;
    e->tok = tok;
    e->cfg = *cfg;
    e->max_len = m->cfg.max_position_embeddings;
    const int P = cfg->block_tokens;
    int64_t blocks = (cfg->max_cached_tokens + P - 1) / P;
    if (blocks > (1 << 30)) blocks = 1 << 30;
    if (cfg->speculative && m->cfg.num_nextn_predict_layers < 1)
        PT_FAIL(err, PT_ERR_CONFIG,
                "rollout: speculative decoding drafts with the model's MTP module, and this model has none "
                "(num_nextn_predict_layers is 0)");
    PT_TRY(latent_cache_init(&e->cache, m->cfg.num_hidden_layers + (cfg->speculative ? 1 : 0), (int)blocks, P,
                             m->cfg.kv_lora_rank, m->cfg.qk_rope_head_dim, err));
    int step_tokens = (cfg->speculative ? 2 : 1) * cfg->max_live;
    if (cfg->prefill_chunk > step_tokens) step_tokens = cfg->prefill_chunk;
    pt_status st = decode_ws_init(&e->ws, m, step_tokens, e->max_len, err);
    if (st == PT_OK) {
        const size_t V = (size_t)m->cfg.vocab_size, H = (size_t)m->cfg.hidden_size, S = (size_t)cfg->max_live;
        e->scratch = malloc(sampler_scratch_bytes(m->cfg.vocab_size));
        e->prefill_logits = malloc(V * sizeof(float));
        e->prefill_hidden = malloc(H * sizeof(float));
        e->p = malloc(V * sizeof(float));
        e->q = cfg->speculative ? malloc(S * V * sizeof(float)) : NULL;
        e->mtp_h = cfg->speculative ? malloc(2 * S * H * sizeof(float)) : NULL;
        if (!e->scratch || !e->prefill_logits || !e->prefill_hidden || !e->p ||
            (cfg->speculative && (!e->q || !e->mtp_h)))
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for the rollout buffers");
    }
    if (st == PT_OK && cfg->n_stop > 0) st = token_bytes_from_tokenizer(&e->vocab, tok, err);
    if (st == PT_OK)
        st = stop_rules_init(&e->rules, (const int32_t *)cfg->eos_ids, cfg->n_eos, cfg->stop_strings, NULL,
                             cfg->n_stop, cfg->max_completion_length, cfg->n_stop > 0 ? &e->vocab : NULL, err);
    if (st != PT_OK) rollout_engine_free(e);
    return st;
}

void rollout_engine_free(rollout_engine *e) {
    stop_rules_free(&e->rules);
    token_bytes_free(&e->vocab);
    decode_ws_free(&e->ws);
    latent_cache_free(&e->cache);
    free(e->scratch);
    free(e->prefill_logits);
    free(e->prefill_hidden);
    free(e->p);
    free(e->q);
    free(e->mtp_h);
    memset(e, 0, sizeof *e);
}

int rollout_eos_ids(int *out, const policy_model *m, const tokenizer *tok) {
    int n = 0;
    for (int i = 0; i < m->cfg.n_eos_token_ids && n < MODEL_MAX_EOS; i++) out[n++] = m->cfg.eos_token_ids[i];
    const int32_t te = tok ? tokenizer_eos_id(tok) : -1;
    bool have = false;
    for (int i = 0; i < n; i++) have |= out[i] == te;
    if (te >= 0 && !have) out[n++] = te;
    return n;
}

void rollout_completions_free(rollout_completion *c, int n) {
    for (int i = 0; i < n; i++) {
        free(c[i].ids);
        free(c[i].logprobs);
        c[i].ids = NULL;
        c[i].logprobs = NULL;
    }
}

/* One live sequence: a sample being generated. */
typedef struct slot {
    int active;
    int group;            /* index into the prompts of this call */
    int sample;
    cache_seq seq;
    rollout_completion *out;
    rng r;                /* target sampling: stream (seed, prompt, sample) */
    rng r_accept, r_draft;/* speculative acceptance and draft sampling: their own streams */
    stop_state stop;
    int draft;            /* drafted next token, or -1 */
} slot;

/* A prompt group's cache reservation, returned when its last sample finishes. */
typedef struct group_state {
    int live;             /* samples still generating */
    int reserved;         /* blocks reserved for the whole group */
} group_state;

static int group_blocks(const rollout_engine *e, int prompt_len) {
    const latent_cache *c = &e->cache;
    const int G = e->cfg.num_generations, total = prompt_len + e->cfg.max_completion_length;
    /* Speculation writes one draft position past the completion and copies the prompt's last
     * block before its MTP entry: one more token and one more block per sample. */
    const int extra = e->cfg.speculative ? 1 : 0;
    if (!e->cfg.share_prefix) return G * (cache_blocks_for(c, total + extra) + extra);
    return cache_blocks_for(c, prompt_len) +
           G * (cache_blocks_for(c, total + extra) - prompt_len / c->block_tokens + extra);
}

/* Prefill ids into seq in chunks; leaves the last token's logits in e->prefill_logits and its
 * hidden state in e->prefill_hidden. With speculation, the MTP module also sees every prompt
 * position whose next token is in the prompt. */
static pt_status prefill(rollout_engine *e, cache_seq *seq, const int *ids, int len, pt_error *err) {
    const int chunk = e->cfg.prefill_chunk, H = e->m->cfg.hidden_size, V = e->m->cfg.vocab_size;
    int *pos = malloc(sizeof(int) * (size_t)chunk);
    cache_seq **seqs = malloc(sizeof(cache_seq *) * (size_t)chunk);
    if (!pos || !seqs) {
        free(pos), free(seqs);
        PT_FAIL(err, PT_ERR_NOMEM, "rollout: out of memory for a prefill");
    }
    for (int t0 = 0; t0 < len; t0 += chunk) {
        int n = len - t0 < chunk ? len - t0 : chunk;
        if (cache_seq_reserve(&e->cache, seq, n) != 0) {
            free(pos), free(seqs);
            PT_FAIL(err, PT_ERR_INTERNAL, "rollout: latent cache exhausted inside a reservation");
        }
        for (int i = 0; i < n; i++) pos[i] = t0 + i, seqs[i] = seq;
        int last = n - 1, is_last = t0 + n == len;
        decode_step(&e->ws, e->m, &e->cache, seqs, ids + t0, pos, n, is_last ? &last : NULL, is_last ? 1 : 0);
        if (is_last) {
            memcpy(e->prefill_logits, e->ws.logits, (size_t)V * sizeof(float));
            memcpy(e->prefill_hidden, e->ws.hidden + (size_t)last * H, (size_t)H * sizeof(float));
        }
        int nm = is_last ? n - 1 : n; /* the prompt's last position waits for the first sampled token */
        if (e->cfg.speculative && nm > 0)
            decode_mtp_step(&e->ws, e->m, &e->cache, seqs, ids + t0 + 1, pos, e->ws.hidden, nm);
    }
    free(pos), free(seqs);
    return PT_OK;
}

/* Appends a sampled token and applies the stop rules; *done = 1 when the completion is finished. */
static pt_status append_token(rollout_engine *e, slot *s, int token, float logprob, int *done, pt_error *err) {
    rollout_completion *o = s->out;
    o->ids[o->len] = token;
    o->logprobs[o->len] = logprob;
    o->len++;
    stop_result res;
    PT_TRY(stop_step(&res, &s->stop, &e->rules, token, err));
    *done = res.reason != FINISH_NONE;
    if (*done) {
        o->finish = res.reason;
        o->len = res.n_tokens;
        o->stop_cut = res.stop_string >= 0 ? (int)res.text_len : -1;
    }
    return PT_OK;
}

static pt_status sample_next(rollout_engine *e, slot *s, float *logits, const rollout_prompt *p, int *done,
                             pt_error *err) {
    rollout_completion *o = s->out;
    const int V = e->m->cfg.vocab_size, lim = e->cfg.vocab_limit;
    if (lim > 0 && lim < V)
        for (int v = lim; v < V; v++) logits[v] = -INFINITY; /* padded rows the tokenizer cannot decode */
    sampler_history h = {(const int32_t *)p->ids, (size_t)p->len, (const int32_t *)o->ids, (size_t)o->len};
    rng_seek(&s->r, (uint64_t)o->len);
    int token;
    float lp;
    PT_TRY(sampler_sample(&token, &lp, NULL, logits, &e->cfg.sampling, &h, e->m->cfg.vocab_size, e->scratch, &s->r,
                          err));
    return append_token(e, s, token, lp, done, err);
}

/* Draws the next draft for one slot from the MTP logits (which it may modify) into sl->draft and
 * e->q[slot]. */
static pt_status draw_draft(rollout_engine *e, slot *sl, int k, float *logits, const rollout_prompt *p,
                            pt_error *err) {
    const int V = e->m->cfg.vocab_size, lim = e->cfg.vocab_limit;
    if (lim > 0 && lim < V)
        for (int v = lim; v < V; v++) logits[v] = -INFINITY;
    rollout_completion *o = sl->out;
    sampler_history h = {(const int32_t *)p->ids, (size_t)p->len, (const int32_t *)o->ids, (size_t)o->len};
    PT_TRY(sampler_probs(e->q + (size_t)k * V, logits, &e->cfg.sampling, &h, V, e->scratch, err));
    rng_seek(&sl->r_draft, (uint64_t)o->len);
    float lp;
    return sampler_sample(&sl->draft, &lp, NULL, logits, &e->cfg.sampling, &h, V, e->scratch, &sl->r_draft, err);
}

/* The first draft of a sample: the MTP module at the prompt's last position, now that the first
 * completion token is known. That position's block is shared by the group: copy it first. */
static pt_status first_draft(rollout_engine *e, slot *sl, int k, const rollout_prompt *p, pt_error *err) {
    int t = p->len - 1, next = sl->out->ids[0];
    if (cache_seq_privatize(&e->cache, &sl->seq, t) != 0)
        PT_FAIL(err, PT_ERR_INTERNAL, "rollout: latent cache exhausted inside a reservation");
    cache_seq *sq = &sl->seq;
    decode_mtp_step(&e->ws, e->m, &e->cache, &sq, &next, &t, e->prefill_hidden, 1);
    return draw_draft(e, sl, k, e->ws.logits, p, err);
}

/* Releases a finished slot and, with its group's last sample, the group's reservation. */
static void finish_slot(rollout_engine *e, slot *sl, group_state *groups, int *live, int *reserved) {
    cache_seq_release(&e->cache, &sl->seq);
    sl->active = 0;
    (*live)--;
    if (--groups[sl->group].live == 0) *reserved -= groups[sl->group].reserved;
}

/* One speculative step: every live slot feeds [last token, draft]; the draft is accepted with
 * probability min(1, p/q) (else a token is drawn from max(0, p − q)), an accepted draft earns a
 * bonus token from the logits at the draft's position, and the MTP module drafts again. */
static pt_status speculative_step(rollout_engine *e, slot *slots, const rollout_prompt *prompts, group_state *groups,
                                  int *live, int *reserved, rollout_stats *st, pt_error *err) {
    const int S = e->cfg.max_live, V = e->m->cfg.vocab_size, H = e->m->cfg.hidden_size, lim = e->cfg.vocab_limit;
    int ids[2 * S], pos[2 * S], rows[2 * S], slot_of[S], nslot = 0, M = 0;
    cache_seq *seqs[2 * S];
    for (int k = 0; k < S; k++) {
        slot *sl = &slots[k];
        if (!sl->active) continue;
        if (cache_seq_reserve(&e->cache, &sl->seq, 2) != 0)
            PT_FAIL(err, PT_ERR_INTERNAL, "rollout: latent cache exhausted inside a reservation");
        int p0 = sl->seq.len;
        ids[M] = sl->out->ids[sl->out->len - 1], pos[M] = p0, seqs[M] = &sl->seq, rows[M] = M, M++;
        ids[M] = sl->draft, pos[M] = p0 + 1, seqs[M] = &sl->seq, rows[M] = M, M++;
        slot_of[nslot++] = k;
    }
    decode_step(&e->ws, e->m, &e->cache, seqs, ids, pos, M, rows, M);
    st->steps++;
    int used = e->cache.nblocks - e->cache.nfree;
    if (used > st->peak_blocks) st->peak_blocks = used;
    /* Verify each draft; collect the MTP positions whose next token is now known. */
    int mids[2 * S], mpos[2 * S], mslot[2 * S], nm = 0;
    cache_seq *mseqs[2 * S];
    for (int j = 0; j < nslot; j++) {
        int k = slot_of[j];
        slot *sl = &slots[k];
        const rollout_prompt *p = &prompts[sl->group];
        rollout_completion *o = sl->out;
        float *l1 = e->ws.logits + (size_t)(2 * j) * V, *l2 = l1 + V;
        if (lim > 0 && lim < V)
            for (int v = lim; v < V; v++) l1[v] = l2[v] = -INFINITY;
        sampler_history h = {(const int32_t *)p->ids, (size_t)p->len, (const int32_t *)o->ids, (size_t)o->len};
        PT_TRY(sampler_probs(e->p, l1, &e->cfg.sampling, &h, V, e->scratch, err));
        int t1, acc, done;
        rng_seek(&sl->r_accept, (uint64_t)o->len);
        PT_TRY(spec_accept(&t1, &acc, e->p, e->q + (size_t)k * V, sl->draft, V, &sl->r_accept, err));
        float lp1;
        PT_TRY(sampler_logprob(&lp1, NULL, l1, &e->cfg.sampling, &h, t1, V, e->scratch, err));
        st->drafts++;
        st->accepted += acc;
        int p0 = pos[2 * j];
        PT_TRY(append_token(e, sl, t1, lp1, &done, err));
        if (done) {
            finish_slot(e, sl, groups, live, reserved);
            continue;
        }
        memcpy(e->mtp_h + (size_t)nm * H, e->ws.hidden + (size_t)(2 * j) * H, (size_t)H * sizeof(float));
        mids[nm] = t1, mpos[nm] = p0, mseqs[nm] = &sl->seq, mslot[nm] = k, nm++;
        if (!acc) {
            sl->seq.len = p0 + 1; /* the rejected draft's cache entry is dropped */
            continue;
        }
        PT_TRY(sample_next(e, sl, l2, p, &done, err)); /* the bonus token after an accepted draft */
        if (done) {
            nm--;
            finish_slot(e, sl, groups, live, reserved);
            continue;
        }
        memcpy(e->mtp_h + (size_t)nm * H, e->ws.hidden + (size_t)(2 * j + 1) * H, (size_t)H * sizeof(float));
        mids[nm] = o->ids[o->len - 1], mpos[nm] = p0 + 1, mseqs[nm] = &sl->seq, mslot[nm] = k, nm++;
    }
    if (nm == 0) return PT_OK;
    decode_mtp_step(&e->ws, e->m, &e->cache, mseqs, mids, mpos, e->mtp_h, nm);
    for (int i = 0; i < nm; i++) {
        /* Each slot drafts from its last MTP row. */
        if (i + 1 < nm && mslot[i + 1] == mslot[i]) continue;
        slot *sl = &slots[mslot[i]];
        PT_TRY(draw_draft(e, sl, mslot[i], e->ws.logits + (size_t)i * V, &prompts[sl->group], err));
    }
    return PT_OK;
}

pt_status rollout_generate(rollout_engine *e, const rollout_prompt *prompts, int n, rollout_completion *out,
                           rollout_stats *stats, pt_error *err) {
    const int G = e->cfg.num_generations, V = e->m->cfg.vocab_size, Lc = e->cfg.max_completion_length;
    rollout_stats st;
    memset(&st, 0, sizeof st);
    double t_start = timer_now();
    for (int p = 0; p < n; p++) {
        if (prompts[p].len <= 0) PT_FAIL(err, PT_ERR_INVALID, "rollout: prompt %d is empty", p);
        if (prompts[p].len + Lc > e->max_len)
            PT_FAIL(err, PT_ERR_INVALID,
                    "rollout: prompt %d has %d tokens; with max_completion_length %d that exceeds the model's "
                    "max_position_embeddings %d",
                    p, prompts[p].len, Lc, e->max_len);
        if (group_blocks(e, prompts[p].len) > e->cache.nblocks)
            PT_FAIL(err, PT_ERR_CONFIG,
                    "rollout: max_cached_tokens %lld cannot hold one group of prompt %d (%d prompt tokens, %d "
                    "samples of up to %d tokens); raise it to at least %lld",
                    (long long)e->cfg.max_cached_tokens, p, prompts[p].len, G, Lc,
                    (long long)group_blocks(e, prompts[p].len) * e->cache.block_tokens);
    }
    memset(out, 0, sizeof *out * (size_t)n * G);
    for (int i = 0; i < n * G; i++) {
        out[i].ids = malloc(sizeof(int) * (size_t)Lc);
        out[i].logprobs = malloc(sizeof(float) * (size_t)Lc);
        out[i].prompt_index = prompts[i / G].index;
        out[i].sample_index = i % G;
        out[i].stop_cut = -1;
        if (!out[i].ids || !out[i].logprobs) {
            rollout_completions_free(out, n * G);
            PT_FAIL(err, PT_ERR_NOMEM, "rollout: out of memory for completions");
        }
    }
    const int S = e->cfg.max_live;
    slot *slots = calloc((size_t)S, sizeof *slots);
    group_state *groups = calloc((size_t)n, sizeof *groups);
    cache_seq prefix = {0};
    int *ids = malloc(sizeof(int) * (size_t)S), *pos = malloc(sizeof(int) * (size_t)S);
    int *rows = malloc(sizeof(int) * (size_t)S), *slot_of = malloc(sizeof(int) * (size_t)S);
    cache_seq **seqs = malloc(sizeof(cache_seq *) * (size_t)S);
    pt_status status = PT_OK;
    int reserved = 0, live = 0, next = 0;
    if (!slots || !groups || !ids || !pos || !rows || !slot_of || !seqs) {
        status = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "rollout: out of memory for the scheduler");
        goto done;
    }
    if ((status = cache_seq_init(&prefix, e->max_len, e->cache.block_tokens, err)) != PT_OK) goto done;
    for (int i = 0; i < S; i++)
        if ((status = cache_seq_init(&slots[i].seq, e->max_len, e->cache.block_tokens, err)) != PT_OK) goto done;

    while (next < n || live > 0) {
        /* Admit whole groups while slots and the memory budget allow. */
        while (next < n && S - live >= G && reserved + group_blocks(e, prompts[next].len) <= e->cache.nblocks) {
            const rollout_prompt *p = &prompts[next];
            groups[next].reserved = group_blocks(e, p->len);
            groups[next].live = G;
            reserved += groups[next].reserved;
            st.prompt_tokens += p->len;
            if (e->cfg.share_prefix) {
                if ((status = prefill(e, &prefix, p->ids, p->len, err)) != PT_OK) goto done;
            }
            for (int s = 0, k = 0; s < G; s++) {
                while (slots[k].active) k++;
                slot *sl = &slots[k];
                sl->active = 1;
                sl->group = next;
                sl->sample = s;
                sl->out = &out[(size_t)next * G + s];
                uint64_t key[2] = {(uint64_t)p->index, (uint64_t)s};
                rng_init(&sl->r, e->cfg.seed, rng_stream_id(key, 2));
                uint64_t key_a[3] = {(uint64_t)p->index, (uint64_t)s, 1}, key_d[3] = {(uint64_t)p->index, (uint64_t)s, 2};
                rng_init(&sl->r_accept, e->cfg.seed, rng_stream_id(key_a, 3));
                rng_init(&sl->r_draft, e->cfg.seed, rng_stream_id(key_d, 3));
                sl->draft = -1;
                stop_state_init(&sl->stop);
                if (e->cfg.share_prefix) cache_seq_share(&e->cache, &sl->seq, &prefix);
                else if ((status = prefill(e, &sl->seq, p->ids, p->len, err)) != PT_OK) goto done;
                int fin;
                if ((status = sample_next(e, sl, e->prefill_logits, p, &fin, err)) != PT_OK) goto done;
                if (!fin && e->cfg.speculative && (status = first_draft(e, sl, k, p, err)) != PT_OK) goto done;
                live++;
                if (fin) {
                    cache_seq_release(&e->cache, &sl->seq);
                    sl->active = 0;
                    live--;
                    if (--groups[next].live == 0) reserved -= groups[next].reserved;
                }
            }
            if (e->cfg.share_prefix) cache_seq_release(&e->cache, &prefix);
            next++;
        }
        if (live == 0) {
            if (next < n) {
                status = error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__, "rollout: scheduler stalled");
                goto done;
            }
            break;
        }
        if (live > st.peak_live) st.peak_live = live;
        if (e->cfg.speculative) {
            if ((status = speculative_step(e, slots, prompts, groups, &live, &reserved, &st, err)) != PT_OK) goto done;
            continue;
        }
        /* One decode step over every live sequence: feed its last token, sample the next. */
        int M = 0;
        for (int k = 0; k < S; k++) {
            if (!slots[k].active) continue;
            slot *sl = &slots[k];
            if (cache_seq_reserve(&e->cache, &sl->seq, 1) != 0) {
                status = error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__,
                                   "rollout: latent cache exhausted inside a reservation");
                goto done;
            }
            ids[M] = sl->out->ids[sl->out->len - 1];
            pos[M] = sl->seq.len;
            seqs[M] = &sl->seq;
            rows[M] = M;
            slot_of[M] = k;
            M++;
        }
        decode_step(&e->ws, e->m, &e->cache, seqs, ids, pos, M, rows, M);
        st.steps++;
        int used = e->cache.nblocks - e->cache.nfree;
        if (used > st.peak_blocks) st.peak_blocks = used;
        for (int i = 0; i < M; i++) {
            slot *sl = &slots[slot_of[i]];
            int fin;
            if ((status = sample_next(e, sl, e->ws.logits + (size_t)i * V, &prompts[sl->group], &fin, err)) != PT_OK)
                goto done;
            if (fin) {
                cache_seq_release(&e->cache, &sl->seq);
                sl->active = 0;
                live--;
                if (--groups[sl->group].live == 0) reserved -= groups[sl->group].reserved;
            }
        }
    }
    for (int i = 0; i < n * G; i++) st.generated_tokens += out[i].len;
done:
    if (slots)
        for (int i = 0; i < S; i++) {
            cache_seq_release(&e->cache, &slots[i].seq);
            cache_seq_free(&slots[i].seq);
        }
    if (prefix.blocks) {
        cache_seq_release(&e->cache, &prefix);
        cache_seq_free(&prefix);
    }
    free(slots), free(groups), free(ids), free(pos), free(rows), free(slot_of), free(seqs);
    if (e->cache.peak_used > st.peak_blocks) st.peak_blocks = e->cache.peak_used;
    st.peak_cached_tokens = (int64_t)st.peak_blocks * e->cache.block_tokens;
    st.seconds = timer_now() - t_start;
    if (stats) *stats = st;
    if (status != PT_OK) rollout_completions_free(out, n * G);
    return status;
}
