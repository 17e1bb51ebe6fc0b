/* stop.c — see stop.h for the rules and conventions.
 *
 * Matching: the text is never stored. A stop_state keeps the last (max_len − 1) bytes (and the
 * token each came from); a new token's bytes are scanned one end position at a time, and at each
 * position every stop string is compared backwards across the virtual concatenation
 * tail ‖ new bytes. A match ending in the new bytes can start at most max_len − 1 bytes before
 * them, so the tail is all the history a match can need; comparing at every end position (no
 * skip table) makes overlapping partial matches ("aab" in "aaab") trivially right.
 */
#include "rollout/stop.h"

#include "core/utf8.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ token bytes */

void token_bytes_free(token_bytes *t) {
    if (!t) return;
    free(t->data);
    free(t->offsets);
    memset(t, 0, sizeof *t);
}

/* Append n bytes at data[*used], growing *cap. */
static pt_status append_bytes(char **data, size_t *used, size_t *cap, const char *b, size_t n, pt_error *err) {
    if (*used + n > *cap) {
        size_t want = *cap ? *cap : 4096;
        while (want < *used + n) want *= 2;
        char *grown = realloc(*data, want);
        PT_CHECK_ALLOC(grown, err, want);
        *data = grown;
        *cap = want;
    }
    if (n) memcpy(*data + *used, b, n);
    *used += n;
    return PT_OK;
}

static pt_status token_bytes_alloc(token_bytes *out, int V, pt_error *err) {
    memset(out, 0, sizeof *out);
    PT_CHECK(V > 0, err, PT_ERR_INVALID, "a token byte table needs V > 0, got %d", V);
    out->offsets = calloc((size_t)V + 1, sizeof *out->offsets);
    PT_CHECK_ALLOC(out->offsets, err, ((size_t)V + 1) * sizeof *out->offsets);
    out->V = V;
    return PT_OK;
}

pt_status token_bytes_from_strings(token_bytes *out, const char *const *strings, const size_t *lens, int V,
                                   pt_error *err) {
    PT_TRY(token_bytes_alloc(out, V, err));
    size_t used = 0, cap = 0;
    for (int i = 0; i < V; i++) {
        size_t n = strings[i] ? (lens ? lens[i] : strlen(strings[i])) : 0;
        pt_status st = append_bytes(&out->data, &used, &cap, strings[i], n, err);
        if (st != PT_OK) {
            token_bytes_free(out);
            return st;
        }
        out->offsets[i + 1] = used;
    }
    return PT_OK;
}

pt_status token_bytes_from_tokenizer(token_bytes *out, const tokenizer *tok, pt_error *err) {
    size_t n_ids = tokenizer_n_ids(tok);
    PT_CHECK(n_ids > 0 && n_ids <= (size_t)INT32_MAX, err, PT_ERR_INVALID, "tokenizer has %zu ids", n_ids);
    PT_TRY(token_bytes_alloc(out, (int)n_ids, err));
    size_t used = 0, cap = 0;
    pt_status st = PT_OK;
    for (int32_t id = 0; id < (int32_t)n_ids; id++) {
        if (tokenizer_id_to_token(tok, id) != NULL) { /* ids missing from the vocabulary stay empty */
            char *b = NULL;
            size_t n = 0;
            st = tokenizer_decode(&b, &n, tok, &id, 1, true, err);
            if (st == PT_OK) st = append_bytes(&out->data, &used, &cap, b, n, err);
            free(b);
            if (st != PT_OK) {
                token_bytes_free(out);
                return error_prefix(err, "building the token byte table (id %d)", (int)id);
            }
        }
        out->offsets[id + 1] = used;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ rules */

void stop_rules_free(stop_rules *r) {
    if (!r) return;
    if (r->strings)
        for (int i = 0; i < r->n_strings; i++) free(r->strings[i]);
    free(r->strings);
    free(r->lens);
    free(r->eos_ids);
    memset(r, 0, sizeof *r);
}

static pt_status rules_fill(stop_rules *out, const int32_t *eos_ids, const char *const *strings, const size_t *lens,
                            pt_error *err) {
    if (out->n_eos > 0) {
        out->eos_ids = malloc((size_t)out->n_eos * sizeof *out->eos_ids);
        PT_CHECK_ALLOC(out->eos_ids, err, (size_t)out->n_eos * sizeof *out->eos_ids);
        memcpy(out->eos_ids, eos_ids, (size_t)out->n_eos * sizeof *out->eos_ids);
    }
    if (out->n_strings == 0) return PT_OK;
    out->strings = calloc((size_t)out->n_strings, sizeof *out->strings);
    PT_CHECK_ALLOC(out->strings, err, (size_t)out->n_strings * sizeof *out->strings);
    out->lens = calloc((size_t)out->n_strings, sizeof *out->lens);
    PT_CHECK_ALLOC(out->lens, err, (size_t)out->n_strings * sizeof *out->lens);
    for (int i = 0; i < out->n_strings; i++) {
        PT_CHECK(strings[i] != NULL, err, PT_ERR_CONFIG, "stop string %d is NULL", i);
        size_t n = lens ? lens[i] : strlen(strings[i]);
        PT_CHECK(n > 0, err, PT_ERR_CONFIG, "stop string %d is empty; an empty stop string would match everywhere", i);
        PT_CHECK(n <= STOP_STRING_MAX, err, PT_ERR_CONFIG, "stop string %d is %zu bytes; the limit is %d bytes", i, n,
                 STOP_STRING_MAX);
        size_t bad = utf8_valid_prefix(strings[i], n);
        PT_CHECK(bad == n, err, PT_ERR_CONFIG,
                 "stop string %d is not valid UTF-8 (byte %zu, 0x%02x); stop strings are text", i, bad,
                 (unsigned)(unsigned char)strings[i][bad]);
        out->strings[i] = malloc(n);
        PT_CHECK_ALLOC(out->strings[i], err, n);
        memcpy(out->strings[i], strings[i], n);
        out->lens[i] = n;
        if (n > out->max_len) out->max_len = n;
    }
    return PT_OK;
}

pt_status stop_rules_init(stop_rules *out, const int32_t *eos_ids, int n_eos, const char *const *strings,
                          const size_t *lens, int n_strings, int max_completion_length, const token_bytes *vocab,
                          pt_error *err) {
    memset(out, 0, sizeof *out);
    PT_CHECK(n_eos >= 0 && (n_eos == 0 || eos_ids), err, PT_ERR_INVALID, "bad EOS id list (n_eos %d)", n_eos);
    PT_CHECK(n_strings >= 0 && (n_strings == 0 || strings), err, PT_ERR_INVALID, "bad stop string list (n %d)",
             n_strings);
    PT_CHECK(max_completion_length >= 0, err, PT_ERR_CONFIG,
             "max_completion_length must be >= 0 (0 = no limit), got %d", max_completion_length);
    out->n_eos = n_eos;
    out->n_strings = n_strings;
    out->max_completion_length = max_completion_length;
    out->vocab = vocab;
    pt_status st = rules_fill(out, eos_ids, strings, lens, err);
    if (st != PT_OK) stop_rules_free(out);
    return st;
}

/* ------------------------------------------------------------------ stepping */

void stop_state_init(stop_state *s) { memset(s, 0, sizeof *s); }

/* Byte v of the virtual text tail ‖ bytes. */
static inline unsigned char virtual_byte(const stop_state *s, const char *bytes, size_t v) {
    return (unsigned char)(v < (size_t)s->tail_len ? s->tail[v] : bytes[v - (size_t)s->tail_len]);
}

/* The longest stop string ending at virtual byte v, or -1. */
static int match_ending_at(const stop_rules *r, const stop_state *s, const char *bytes, size_t v) {
    int best = -1;
    size_t best_len = 0;
    unsigned char last = virtual_byte(s, bytes, v);
    for (int k = 0; k < r->n_strings; k++) {
        size_t L = r->lens[k];
        if (L > v + 1 || L <= best_len || (unsigned char)r->strings[k][L - 1] != last) continue;
        size_t q = 1;
        while (q < L && (unsigned char)r->strings[k][L - 1 - q] == virtual_byte(s, bytes, v - q)) q++;
        if (q == L) {
            best = k;
            best_len = L;
        }
    }
    return best;
}

/* Keep the last (max_len − 1) bytes of tail ‖ bytes, with their token indices. */
static void tail_append(stop_state *s, const stop_rules *r, const char *bytes, size_t n, int32_t token_index) {
    size_t keep = r->max_len > 0 ? r->max_len - 1 : 0;
    if (keep == 0) {
        s->tail_len = 0;
        return;
    }
    size_t tl = (size_t)s->tail_len;
    if (n >= keep) {
        memcpy(s->tail, bytes + (n - keep), keep);
        for (size_t i = 0; i < keep; i++) s->tail_token[i] = token_index;
        s->tail_len = (int)keep;
        return;
    }
    size_t drop = tl + n > keep ? tl + n - keep : 0;
    if (drop) {
        memmove(s->tail, s->tail + drop, tl - drop);
        memmove(s->tail_token, s->tail_token + drop, (tl - drop) * sizeof *s->tail_token);
        tl -= drop;
    }
    memcpy(s->tail + tl, bytes, n);
    for (size_t i = 0; i < n; i++) s->tail_token[tl + i] = token_index;
    s->tail_len = (int)(tl + n);
}

pt_status stop_step_bytes(stop_result *res, stop_state *s, const stop_rules *rules, int32_t token, const char *bytes,
                          size_t n_bytes, pt_error *err) {
    PT_CHECK(res && s && rules, err, PT_ERR_INVALID, "stop_step: NULL argument");
    PT_CHECK(!s->finished, err, PT_ERR_INVALID,
             "stop_step after the completion finished (token %d fed after %d tokens)", (int)token, s->n_tokens);
    PT_CHECK(n_bytes == 0 || bytes != NULL, err, PT_ERR_INVALID, "token %d: %zu bytes at NULL", (int)token, n_bytes);
    int32_t index = s->n_tokens++;
    stop_result r = {FINISH_NONE, s->text_len, s->n_tokens, s->n_tokens, -1, -1};

    for (int e = 0; e < rules->n_eos; e++) {
        if (token != rules->eos_ids[e]) continue;
        r.reason = FINISH_STOP;
        r.eos_id = token;
        r.n_tokens_before_cut = index; /* the EOS itself holds no kept text */
        s->finished = 1;
        *res = r;
        return PT_OK;
    }

    if (rules->n_strings > 0) {
        size_t tl = (size_t)s->tail_len, base = s->text_len - tl; /* absolute offset of virtual byte 0 */
        for (size_t j = 0; j < n_bytes; j++) {
            int k = match_ending_at(rules, s, bytes, tl + j);
            if (k < 0) continue;
            size_t start = tl + j + 1 - rules->lens[k];
            r.reason = FINISH_STOP;
            r.stop_string = k;
            r.text_len = base + start;
            r.n_tokens_before_cut = start < tl ? s->tail_token[start] : index;
            s->text_len += n_bytes;
            s->finished = 1;
            *res = r;
            return PT_OK;
        }
        tail_append(s, rules, bytes, n_bytes, index);
    }
    s->text_len += n_bytes;
    r.text_len = s->text_len;

    if (rules->max_completion_length > 0 && s->n_tokens >= rules->max_completion_length) {
        r.reason = FINISH_LENGTH;
        s->finished = 1;
    }
    *res = r;
    return PT_OK;
}

pt_status stop_step(stop_result *res, stop_state *s, const stop_rules *rules, int32_t token, pt_error *err) {
    PT_CHECK(rules != NULL, err, PT_ERR_INVALID, "stop_step: rules are NULL");
    const token_bytes *vb = rules->vocab;
    if (vb == NULL) {
        PT_CHECK(rules->n_strings == 0, err, PT_ERR_INVALID,
                 "stop strings need a token byte table: pass one to stop_rules_init or call stop_step_bytes");
        return stop_step_bytes(res, s, rules, token, NULL, 0, err);
    }
    PT_CHECK(token >= 0 && token < vb->V, err, PT_ERR_INVALID, "token %d is outside the vocabulary [0, %d)",
             (int)token, vb->V);
    size_t a = vb->offsets[token], b = vb->offsets[token + 1];
    return stop_step_bytes(res, s, rules, token, vb->data ? vb->data + a : NULL, b - a, err);
}
