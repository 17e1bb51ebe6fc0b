/* reward.h — the reward API: items in, one score (or no score) per item out; rewards created from
 * JSON configs through a registry; a reward set that combines several by weight.
 *
 * An item is one completion to judge: the prompt, the completion, the example's extra dataset
 * columns as a JSON object text ({"answer": "42", "tests": [...], "numbers": [...], "target": 24})
 * and, when the caller knows it, the completion's length in tokens. A reward turns a batch of n
 * items into n results. Each result is exactly one of
 *   REWARD_OK      a finite score;
 *   REWARD_MASKED  no score by design (e.g. the example's reference answer cannot be parsed: a
 *                  dataset problem, not the policy's fault) — excluded from advantages, counted;
 *   REWARD_ERROR   the reward itself failed on this item (plugin crashed, timeout, sandbox
 *                  infrastructure error) — masked like REWARD_MASKED, and counted toward the
 *                  set's error rate. An error is never turned into a silent 0.
 * Masked and error results carry a short reason ("timeout", "reference answer 'abc' is not a
 * number"); REWARD_OK results have an empty reason.
 *
 * A reward's score_batch returns PT_OK when it wrote a result for every item (some may be
 * REWARD_ERROR). It returns an error status only when it could not judge the batch at all (out of
 * memory, a plugin that cannot be started); the set then records every item of the batch as
 * REWARD_ERROR with that message as the reason — the batch is not aborted by that alone.
 *
 * Config: every reward is a JSON object {"name", "type", "weight", ...params}. "type" picks the
 * constructor; "name" (default: the type) names its metrics (rewards/<name>/mean) and must be
 * unique within a set; "weight" (default 1.0, finite) is its weight in the total. Params are the
 * type's own keys; an unknown key is an error (PT_ERR_CONFIG naming the key and the reward).
 *
 * Registry: the built-in types live in a const table (reward_registry.c). Types added at runtime
 * (e.g. a plugin loaded by name) live in a reward_registry object that the caller owns and passes
 * to reward_create / reward_set_init — no mutable globals. A NULL registry means built-ins only.
 *
 * Reward set (combining by weight):
 *   total_i = Σ_k w_k·score_k,i over the rewards k with w_k ≠ 0.
 *   If any reward with w_k ≠ 0 masked (or errored on) item i, total_i is masked too — a partial
 *   sum would silently change the reward scale for that item — and its reason is
 *   "<name>: <reason>" of the first such reward. Rewards with w_k = 0 are computed and reported
 *   (as TRL logs zero-weight reward functions) but never affect or mask the total.
 *   Per reward the set reports, over the last call: mean and (population) std of the scored
 *   items, wall-clock seconds, scored / masked / error counts; and the same counts accumulated
 *   since init. Per set it counts masked totals per reason (the first REWARD_REASON_TALLY
 *   distinct reasons; the rest under "other").
 *   Error rate: each reward keeps a window of its last `error_window` items; after every call,
 *   once the window holds at least `error_min_items` items, if errors/items in it exceed
 *   `max_error_rate`, reward_set_score returns PT_ERR_BACKEND naming the reward, the rate, the
 *   threshold and the last error reason. The results of that call are still written.
 *
 * Threads: a reward is not called concurrently with itself; the set calls its rewards one after
 * another. A reward may use threads or processes inside score_batch.
 */
#ifndef POSTTRAIN_REWARDS_REWARD_H
#define POSTTRAIN_REWARDS_REWARD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define REWARD_NAME_MAX 64
#define REWARD_REASON_MAX 160
#define REWARD_REASON_TALLY 32

typedef struct reward_item {
    const char *prompt;     /* prompt text; NULL is read as "" */
    const char *completion; /* completion text (UTF-8, NUL-terminated); NULL is read as "" */
    const char *columns;    /* the example's extra columns as a JSON object text; NULL means "{}" */
    int completion_tokens;  /* completion length in tokens; < 0 when unknown */
} reward_item;

typedef enum reward_status {
    REWARD_OK = 0, /* scored */
    REWARD_MASKED, /* no score by design (dataset problem, not applicable) */
    REWARD_ERROR,  /* the reward failed on this item; masked and counted toward the error rate */
} reward_status;

typedef struct reward_result {
    reward_status status;
    double score;                   /* finite when status == REWARD_OK, else 0 (never used) */
    char reason[REWARD_REASON_MAX]; /* "" when REWARD_OK */
} reward_result;

typedef struct reward reward;

typedef struct reward_vtable {
    /* Writes out[0..n) (= for every item). Returns PT_OK when every item has a result; see the
     * file comment for what a non-OK return means. Must not keep pointers into items. */
    pt_status (*score_batch)(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err);
    /* Releases self->impl (not self). NULL when there is nothing to free. */
    void (*free)(reward *self);
} reward_vtable;

struct reward {
    const reward_vtable *vt;
    char name[REWARD_NAME_MAX]; /* cfg "name", default the type; set by reward_create */
    char type[REWARD_NAME_MAX]; /* cfg "type"; set by reward_create */
    double weight;              /* cfg "weight", default 1.0; set by reward_create */
    void *impl;                 /* the type's own state, owned by it */
};

/* A constructor fills self->vt and self->impl from cfg (name/type/weight are already set, and
 * reward_create has removed nothing: cfg still holds "name", "type", "weight"; use
 * reward_cfg_check_keys to reject unknown keys). On failure it frees what it allocated and
 * leaves self->impl NULL. */
typedef pt_status (*reward_init_fn)(reward *self, const cJSON *cfg, pt_error *err);
/* A runtime-registered constructor also receives the context it was registered with. */
typedef pt_status (*reward_init_ctx_fn)(reward *self, const cJSON *cfg, void *ctx, pt_error *err);

typedef struct reward_type {
    const char *type;    /* "regex", "math", ... */
    const char *summary; /* one line for `posttrain score --help` */
    reward_init_fn init;
} reward_type;

/* The built-in types, in a const table (reward_registry.c). */
extern const reward_type reward_builtin_types[];
extern const int reward_builtin_count;

/* The built-in constructors (one file each in rewards/). */
pt_status reward_regex_init(reward *self, const cJSON *cfg, pt_error *err);
pt_status reward_format_init(reward *self, const cJSON *cfg, pt_error *err);
pt_status reward_math_init(reward *self, const cJSON *cfg, pt_error *err);
pt_status reward_countdown_init(reward *self, const cJSON *cfg, pt_error *err);
pt_status reward_length_init(reward *self, const cJSON *cfg, pt_error *err);
pt_status reward_repetition_init(reward *self, const cJSON *cfg, pt_error *err);
pt_status reward_plugin_init(reward *self, const cJSON *cfg, pt_error *err);     /* C .so, dlopen */
pt_status reward_subprocess_init(reward *self, const cJSON *cfg, pt_error *err); /* JSON lines */
pt_status reward_unittest_init(reward *self, const cJSON *cfg, pt_error *err);   /* sandboxed tests */
pt_status reward_http_init(reward *self, const cJSON *cfg, pt_error *err);       /* HTTP endpoint or LLM judge */
pt_status reward_rm_init(reward *self, const cJSON *cfg, pt_error *err);         /* local reward model */

/* Types added at runtime. The registry owns copies of the type names; ctx is borrowed. */
typedef struct reward_registry_entry {
    char type[REWARD_NAME_MAX];
    char summary[REWARD_REASON_MAX];
    reward_init_ctx_fn init;
    void *ctx;
} reward_registry_entry;

typedef struct reward_registry {
    reward_registry_entry *entries; /* (count) */
    int count;
    int capacity;
} reward_registry;

void reward_registry_init(reward_registry *reg);
/* Adds a type; PT_ERR_CONFIG when the name is taken by a built-in or an earlier entry. */
pt_status reward_registry_add(reward_registry *reg, const char *type, const char *summary, reward_init_ctx_fn init,
                              void *ctx, pt_error *err);
void reward_registry_free(reward_registry *reg);

/* Creates one reward from its config object (reg may be NULL). *out is NULL on failure; the
 * error names the reward ("reward 'acc' (type math): ..."). */
pt_status reward_create(reward **out, const cJSON *cfg, const reward_registry *reg, pt_error *err);
/* Same for a config given as JSON text (for tests and plugins). */
pt_status reward_create_json(reward **out, const char *cfg_json, const reward_registry *reg, pt_error *err);
void reward_free(reward *r);

/* Runs r on items and validates what it wrote: a REWARD_OK score that is NaN/Inf becomes
 * REWARD_ERROR ("non-finite score"); a batch-level failure becomes REWARD_ERROR on every item.
 * Returns PT_OK unless the arguments are invalid. Used by the set; handy in tests. */
pt_status reward_score(reward *r, reward_result *out, const reward_item *items, int n, pt_error *err);

/* --- helpers for implementations --- */

void reward_result_ok(reward_result *res, double score);
/* status is REWARD_MASKED or REWARD_ERROR; the reason is truncated to REWARD_REASON_MAX. */
void reward_result_mask(reward_result *res, reward_status status, const char *fmt, ...) PT_PRINTF(3, 4);

/* Parses item->columns; *out is a cJSON object (caller frees with cJSON_Delete), "{}" when the
 * item has none. PT_ERR_FORMAT when the text is not a JSON object. */
pt_status reward_item_columns(cJSON **out, const reward_item *item, pt_error *err);
/* A column's value as text: a string as it is, a number printed exactly ("42", "0.75", integers
 * up to 2^53 without exponent), true/false as "true"/"false". NULL when the column is absent,
 * null, an array or an object. buf (len ≥ 32) holds printed numbers. */
const char *reward_column_text(char *buf, size_t len, const cJSON *cols, const char *key);

/* A malloc'd copy of s in which every invalid UTF-8 sequence (bad lead or continuation byte,
 * truncated sequence, overlong form, surrogate, > U+10FFFF) is replaced, one byte at a time, by
 * U+FFFD — for text sent to strict decoders (subprocess and HTTP rewards). NULL when out of memory. */
char *reward_utf8_sanitize(const char *s);

/* PT_ERR_CONFIG naming the first key of cfg that is neither "name", "type", "weight" nor one
 * of allowed[0..n) (with a "did you mean" hint when one is close). */
pt_status reward_cfg_check_keys(const cJSON *cfg, const char *const *allowed, int n, pt_error *err);
/* Optional typed params: absent → *out = def; present with the wrong type → PT_ERR_CONFIG. */
pt_status reward_cfg_number(double *out, const cJSON *cfg, const char *key, double def, pt_error *err);
pt_status reward_cfg_int(long *out, const cJSON *cfg, const char *key, long def, pt_error *err);
pt_status reward_cfg_bool(bool *out, const cJSON *cfg, const char *key, bool def, pt_error *err);
/* *out points into cfg (not copied); def may be NULL. */
pt_status reward_cfg_string(const char **out, const cJSON *cfg, const char *key, const char *def, pt_error *err);

/* --- reward sets --- */

typedef struct reward_set_options {
    double max_error_rate; /* abort when errors/items in the window exceed it; default 0.1 */
    int error_window;      /* items remembered per reward; default 512 */
    int error_min_items;   /* the rate is checked once the window holds this many; default 32 */
} reward_set_options;

reward_set_options reward_set_options_default(void);

typedef struct reward_stats {
    /* the last call */
    double mean, std; /* over REWARD_OK items; 0 when none */
    double seconds;   /* wall-clock time of score_batch */
    long scored, masked, errors;
    /* since init */
    double total_seconds;
    long total_scored, total_masked, total_errors;
    char last_error[REWARD_REASON_MAX]; /* the most recent REWARD_ERROR reason */
} reward_stats;

typedef struct reward_reason_count {
    char reason[REWARD_REASON_MAX];
    long count;
} reward_reason_count;

typedef struct reward_set {
    reward **rewards;     /* (n) owned */
    reward_stats *stats;  /* (n) */
    int n;
    reward_set_options opt;
    uint8_t *window;      /* (n, opt.error_window): 1 where that item errored */
    long *window_seen;    /* (n) items pushed into each window since init */
    reward_result *scratch; /* (n, scratch_cap) per-reward results when the caller passes none */
    int scratch_cap;
    /* totals, last call and since init */
    double mean, std;     /* over unmasked totals of the last call */
    long masked, total_masked;
    reward_reason_count reasons[REWARD_REASON_TALLY + 1]; /* masked totals per reason since init;
                                                           * the last slot is "other" */
    int n_reasons;
} reward_set;

/* cfg is a JSON array of reward configs (an empty array is an error); names must be unique. */
pt_status reward_set_init(reward_set *set, const cJSON *cfg, const reward_registry *reg, const reward_set_options *opt,
                          pt_error *err);
/* Scores every item with every reward. total: (n) the weighted totals (= written). per_reward:
 * (set->n, n) row-major, each reward's own results (= written), or NULL if not wanted.
 * Returns PT_ERR_BACKEND when a reward's error rate is over the limit (results still written). */
pt_status reward_set_score(reward_set *set, reward_result *total, reward_result *per_reward, const reward_item *items,
                           int n, pt_error *err);
void reward_set_free(reward_set *set);

/* Metrics named as TRL names them: "reward", "reward_std", "rewards/<name>/mean",
 * "rewards/<name>/std", "rewards/<name>/time", "rewards/<name>/masked", "rewards/<name>/errors"
 * (last call). Writes up to cap entries; returns how many there are in total. */
typedef struct reward_metric {
    char name[REWARD_NAME_MAX + 32];
    double value;
} reward_metric;
int reward_set_metrics(reward_metric *out, int cap, const reward_set *set);

#endif
