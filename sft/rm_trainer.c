/* rm_trainer.c — see rm_trainer.h. Defaults follow TRL's RewardConfig / TrainingArguments where
 * they have one (max_length 1024, batch 8, linear schedule, betas 0.9/0.999, max_grad_norm 1,
 * seed 42), except learning_rate 1e-5 and one epoch, the usual choices for reward models.
 *
 * The run is prepare (check and open everything, tokenise every pair, load the model; nothing is
 * written) then execute (run folder, run.db, steps, final/). Pairs are tokenised once and kept
 * as ids; a step copies B of them into the (2B, T) batch.
 */
#include "sft/rm_trainer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/optim.h"
#include "core/rng.h"
#include "core/schedule.h"
#include "datasets/dataset.h"
#include "datasets/run_store.h"
#include "model/reward_model.h"
#include "model/tokenizer.h"
#include "sft/run_dir.h"
#include "sft/sft_files.h"

static const config_key RM_KEYS[] = {
    {"model", CONFIG_STRING, "null",
     "the starting model folder: a policy (a fresh score head is drawn) or a reward model (its score.weight is kept)"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"data", CONFIG_STRING, "null", "preference pairs, JSONL {\"prompt\", \"chosen\", \"rejected\"}"},
    {"eval_data", CONFIG_STRING, "null", "held-out pairs of the same shape (default: eval_fraction of data)"},
    {"eval_fraction", CONFIG_FLOAT, "0.1",
     "without eval_data: this fraction of data (seeded choice) is held out for eval_accuracy and never trained on"},
    {"out", CONFIG_STRING, "null", "run folder (created; its parent must exist): run.db and final/ (the reward model)"},
    {"on_bad_line", CONFIG_STRING, "\"error\"", "a malformed record: error (stop, naming file and line) or skip"},
    {"chat_format", CONFIG_STRING, "null",
     "chat template for conversational pairs: deepseek-v3, deepseek-r1, plain (default: the tokenizer's)"},
    {"max_length", CONFIG_INT, "1024", "tokens per sequence (prompt + completion); longer ones are cut on the right"},
    {"per_device_train_batch_size", CONFIG_INT, "8", "pairs per step (2 x this many sequences)"},
    {"learning_rate", CONFIG_FLOAT, "1e-5", "peak learning rate of AdamW"},
    {"lr_scheduler_type", CONFIG_STRING, "\"linear\"", "constant, linear or cosine (after the warm-up)"},
    {"min_lr_ratio", CONFIG_FLOAT, "0.0", "floor of the linear and cosine decay, as a fraction of learning_rate"},
    {"warmup_steps", CONFIG_INT, "0", "optimizer steps of linear warm-up from 0"},
    {"max_steps", CONFIG_INT, "-1", "optimizer steps to run; -1: num_train_epochs passes over the training pairs"},
    {"num_train_epochs", CONFIG_FLOAT, "1.0", "passes over the training pairs when max_steps is -1"},
    {"max_grad_norm", CONFIG_FLOAT, "1.0", "global gradient-norm clipping over trunk and head (0: off)"},
    {"weight_decay", CONFIG_FLOAT, "0.0", "AdamW decoupled weight decay on matrices (the score head included)"},
    {"adam_beta1", CONFIG_FLOAT, "0.9", "AdamW beta1"},
    {"adam_beta2", CONFIG_FLOAT, "0.999", "AdamW beta2"},
    {"adam_epsilon", CONFIG_FLOAT, "1e-8", "AdamW epsilon"},
    {"center_rewards_coefficient", CONFIG_FLOAT, "0.0",
     "weight of mean (r_chosen + r_rejected)^2 in the loss (TRL's reward centring; 0: off)"},
    {"aux_loss_scale", CONFIG_FLOAT, "0.0", "weight of the model's sequence-wise balance loss in the gradient"},
    {"seed", CONFIG_INT, "42", "seed of the data order, the held-out split and a fresh score head"},
    {"eval_steps", CONFIG_INT, "0", "held-out accuracy every N steps (0: before the first step and after the last)"},
    {"logging_steps", CONFIG_INT, "10", "a log line every N steps (every step goes to run.db)"},
    {"max_nan_steps", CONFIG_INT, "5", "steps with a NaN/Inf loss or gradient are skipped; this many in a row abort"},
    {"max_shard_bytes", CONFIG_INT, "5000000000", "split saved weights into shards above this size"},
    {"log_level", CONFIG_STRING, "\"info\"", "debug, info, warn or error"},
};

const config_schema RM_SCHEMA = {RM_KEYS, sizeof RM_KEYS / sizeof RM_KEYS[0]};

#define RM_PATH 4096

typedef struct rm_pair {
    int *chosen, *rejected; /* token ids */
    int n_chosen, n_rejected;
} rm_pair;

typedef struct rm_ctx {
    const config *cfg;
    const rm_io *io;
    /* options */
    const char *model_dir, *tok_path, *data_path, *eval_path, *out;
    int B;
    int64_t max_steps, eval_steps, logging_steps;
    double center, aux_scale;
    uint64_t seed;
    optim_config ocfg;
    lr_schedule sched;
    int max_nan;
    size_t max_shard_bytes;
    /* state */
    tokenizer *tok;
    rm_pair *train, *eval;
    int64_t n_train, n_eval;
    int T;
    reward_model rm;
    bool have_rm;
    optim opt, opt_head;
    bool have_opt, have_opt_head;
    reward_model_acts acts;
    bool have_acts;
    int *ids, *lengths;      /* (2B·T), (2B) */
    float *scores, *dscores; /* (2B) */
    int64_t *order;          /* (n_train) this epoch's order */
    rm_pair **batch;         /* (B) the pairs of the batch being built */
    int64_t cursor, epoch;
    run_store *rs;
    run_dir dir; /* the --out folder */
} rm_ctx;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void say(const rm_ctx *c, log_level level, const char *fmt, ...) PT_PRINTF(3, 4);
static void say(const rm_ctx *c, log_level level, const char *fmt, ...) {
    if (!c->io || !c->io->log) return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(c->io->log, level, fmt, ap);
    va_end(ap);
}

static pt_status need_string(const char **out, const config *cfg, const char *key, pt_error *err) {
    *out = config_string(cfg, key);
    if (!*out || !**out) return config_bad_key(err, cfg, key, "is required (--%s ...)", key);
    return PT_OK;
}

static pt_status read_options(rm_ctx *c, pt_error *err) {
    const config *cfg = c->cfg;
    PT_TRY(need_string(&c->model_dir, cfg, "model", err));
    PT_TRY(need_string(&c->data_path, cfg, "data", err));
    PT_TRY(need_string(&c->out, cfg, "out", err));
    c->tok_path = config_is_null(cfg, "tokenizer") ? c->model_dir : config_string(cfg, "tokenizer");
    c->eval_path = config_string(cfg, "eval_data");
    int64_t v = 0;
    PT_TRY(config_int_in(&v, cfg, "per_device_train_batch_size", 1, 1 << 16, err));
    c->B = (int)v;
    PT_TRY(config_int_in(&v, cfg, "max_length", 2, 1 << 20, err));
    PT_TRY(config_int_in(&c->max_steps, cfg, "max_steps", -1, INT64_MAX / 2, err));
    if (c->max_steps == 0) return config_bad_key(err, cfg, "max_steps", "must be -1 (epochs) or > 0, got 0");
    PT_TRY(config_int_in(&c->eval_steps, cfg, "eval_steps", 0, INT64_MAX / 2, err));
    PT_TRY(config_int_in(&c->logging_steps, cfg, "logging_steps", 1, INT64_MAX / 2, err));
    PT_TRY(config_int_in(&v, cfg, "max_nan_steps", 1, 1 << 20, err));
    c->max_nan = (int)v;
    PT_TRY(config_int_in(&v, cfg, "max_shard_bytes", 0, INT64_MAX, err));
    c->max_shard_bytes = (size_t)v;
    PT_TRY(config_int_in(&v, cfg, "warmup_steps", 0, INT64_MAX / 2, err));
    c->sched.warmup_steps = v;
    c->seed = (uint64_t)config_int(cfg, "seed");
    double f;
    PT_TRY(config_float_in(&f, cfg, "eval_fraction", 0.0, 0.9, false, err));
    PT_TRY(config_float_in(&c->center, cfg, "center_rewards_coefficient", 0.0, 1e6, false, err));
    PT_TRY(config_float_in(&c->aux_scale, cfg, "aux_loss_scale", 0.0, 1e6, false, err));
    PT_TRY(config_float_in(&f, cfg, "num_train_epochs", 1e-9, 1e9, false, err));
    double lr = config_float(cfg, "learning_rate");
    if (!(lr > 0.0)) return config_bad_key(err, cfg, "learning_rate", "must be > 0, got %g", lr);
    PT_TRY(config_keyed(lr_schedule_parse_type(&c->sched.type, config_string(cfg, "lr_scheduler_type"), err), err, cfg,
                        "lr_scheduler_type"));
    c->sched.base_lr = lr;
    c->sched.min_lr_ratio = config_float(cfg, "min_lr_ratio");
    c->ocfg = (optim_config){config_float(cfg, "adam_beta1"), config_float(cfg, "adam_beta2"),
                             config_float(cfg, "adam_epsilon"), config_float(cfg, "weight_decay"),
                             config_float(cfg, "max_grad_norm"), false, OPTIM_MOMENTS_FP32};
    PT_TRY(optim_config_validate(&c->ocfg, err));
    return PT_OK;
}

/* ---- data --------------------------------------------------------------------------------- */

static void pairs_free(rm_pair *p, int64_t n) {
    for (int64_t i = 0; p && i < n; i++) {
        free(p[i].chosen);
        free(p[i].rejected);
    }
    free(p);
}

static int *copy_ids(const dataset_seq *s) {
    int *ids = malloc((s->n ? s->n : 1) * sizeof *ids);
    if (ids)
        for (size_t i = 0; i < s->n; i++) ids[i] = s->ids[i];
    return ids;
}

/* Every record of ds (or only those whose index is in pick, when not NULL) as token ids. */
static pt_status load_pairs(rm_pair **out, int64_t *n_out, dataset *ds, const int64_t *pick, int64_t n_pick,
                            pt_error *err) {
    int64_t n = pick ? n_pick : (int64_t)dataset_size(ds);
    rm_pair *p = calloc((size_t)(n ? n : 1), sizeof *p);
    PT_CHECK_ALLOC(p, err, (size_t)n * sizeof *p);
    dataset_example ex = {0};
    pt_status st = PT_OK;
    for (int64_t i = 0; i < n && st == PT_OK; i++) {
        st = dataset_get(&ex, ds, (size_t)(pick ? pick[i] : i), err);
        if (st != PT_OK) break;
        p[i].chosen = copy_ids(&ex.seq);
        p[i].rejected = copy_ids(&ex.rejected);
        p[i].n_chosen = (int)ex.seq.n;
        p[i].n_rejected = (int)ex.rejected.n;
        if (!p[i].chosen || !p[i].rejected)
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for preference pair %lld",
                           (long long)i);
        else if (p[i].n_chosen == 0 || p[i].n_rejected == 0)
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s:%llu: a sequence of this pair has no tokens",
                           dataset_label(ds), (unsigned long long)dataset_line(ds, (size_t)(pick ? pick[i] : i)));
    }
    dataset_example_free(&ex);
    if (st != PT_OK) {
        pairs_free(p, n);
        return st;
    }
    *out = p;
    *n_out = n;
    return PT_OK;
}

static pt_status open_pairs(dataset **ds, rm_ctx *c, const char *path, const char *key, pt_error *err) {
    if (!sft_path_exists(path)) PT_FAIL(err, PT_ERR_IO, "--%s '%s' does not exist", key, path);
    dataset_options o;
    dataset_options_default(&o);
    o.format = DATASET_FORMAT_PREFERENCE;
    o.max_length = (size_t)config_int(c->cfg, "max_length");
    o.truncation = DATASET_TRUNCATE_RIGHT;
    o.chat_format = config_string(c->cfg, "chat_format");
    PT_TRY(dataset_on_bad_parse(&o.on_bad_line, config_string(c->cfg, "on_bad_line"), err));
    if (dataset_open_jsonl(ds, path, c->tok, &o, err) != PT_OK) return error_prefix(err, "--%s", key);
    if (dataset_size(*ds) == 0) PT_FAIL(err, PT_ERR_CONFIG, "--%s '%s' holds no usable pair", key, path);
    return PT_OK;
}

/* Seeded Fisher–Yates over 0..n-1 from the (seed, tag, k) stream. */
static void shuffle(int64_t *order, int64_t n, uint64_t seed, uint64_t tag, uint64_t k) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    uint64_t ids[2] = {tag, k};
    rng r;
    rng_init(&r, seed, rng_stream_id(ids, 2));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint32_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static pt_status prepare_data(rm_ctx *c, pt_error *err) {
    dataset *train = NULL, *eval = NULL;
    pt_status st = open_pairs(&train, c, c->data_path, "data", err);
    if (st == PT_OK && c->eval_path) st = open_pairs(&eval, c, c->eval_path, "eval_data", err);
    if (st == PT_OK && eval) {
        st = load_pairs(&c->train, &c->n_train, train, NULL, 0, err);
        if (st == PT_OK) st = load_pairs(&c->eval, &c->n_eval, eval, NULL, 0, err);
    } else if (st == PT_OK) {
        int64_t n = (int64_t)dataset_size(train);
        int64_t n_eval = (int64_t)floor(config_float(c->cfg, "eval_fraction") * (double)n);
        if (config_float(c->cfg, "eval_fraction") > 0 && n_eval == 0 && n >= 2) n_eval = 1;
        int64_t *order = malloc((size_t)n * sizeof *order);
        if (!order) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %lld pairs", (long long)n);
        if (st == PT_OK) {
            shuffle(order, n, c->seed, 0x686f6c64 /* "hold" */, 0);
            if (n - n_eval < 1)
                st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                               "--data '%s' has %lld pair(s): too few to hold out %lld for evaluation", c->data_path,
                               (long long)n, (long long)n_eval);
        }
        if (st == PT_OK) st = load_pairs(&c->eval, &c->n_eval, train, order, n_eval, err);
        if (st == PT_OK) st = load_pairs(&c->train, &c->n_train, train, order + n_eval, n - n_eval, err);
        free(order);
    }
    if (st == PT_OK) {
        c->T = 1;
        for (int64_t i = 0; i < c->n_train; i++) {
            if (c->train[i].n_chosen > c->T) c->T = c->train[i].n_chosen;
            if (c->train[i].n_rejected > c->T) c->T = c->train[i].n_rejected;
        }
        for (int64_t i = 0; i < c->n_eval; i++) {
            if (c->eval[i].n_chosen > c->T) c->T = c->eval[i].n_chosen;
            if (c->eval[i].n_rejected > c->T) c->T = c->eval[i].n_rejected;
        }
        char report[2048];
        if (dataset_skip_report(report, sizeof report, train) > 0) say(c, LOG_LEVEL_WARN, "--data: %s", report);
        if (eval && dataset_skip_report(report, sizeof report, eval) > 0)
            say(c, LOG_LEVEL_WARN, "--eval_data: %s", report);
    }
    dataset_free(train);
    dataset_free(eval);
    return st;
}

/* ---- steps -------------------------------------------------------------------------------- */

/* Rows [0, n) of the batch = chosen of pairs[i], rows [B, B + n) = their rejected; rows past n
 * repeat pair 0 (scored, then ignored). */
static void fill_batch(rm_ctx *c, rm_pair *const *pairs, int n) {
    const int B = c->B, T = c->T;
    memset(c->ids, 0, (size_t)2 * B * T * sizeof *c->ids);
    for (int i = 0; i < B; i++) {
        const rm_pair *p = pairs[i < n ? i : 0];
        memcpy(c->ids + (size_t)i * T, p->chosen, (size_t)p->n_chosen * sizeof(int));
        memcpy(c->ids + (size_t)(B + i) * T, p->rejected, (size_t)p->n_rejected * sizeof(int));
        c->lengths[i] = p->n_chosen;
        c->lengths[B + i] = p->n_rejected;
    }
}

/* −log σ(d) = softplus(−d), computed without overflow. */
static double bt_loss(double d) { return d > 0 ? log1p(exp(-d)) : -d + log1p(exp(d)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

typedef struct eval_stats {
    double loss, accuracy, margin;
} eval_stats;

static pt_status evaluate(eval_stats *e, rm_ctx *c, pt_error *err) {
    double loss = 0, acc = 0, margin = 0;
    rm_pair **batch = c->batch;
    for (int64_t i = 0; i < c->n_eval; i += c->B) {
        int n = (int)(c->n_eval - i < c->B ? c->n_eval - i : c->B);
        for (int k = 0; k < n; k++) batch[k] = &c->eval[i + k];
        fill_batch(c, batch, n);
        PT_TRY(reward_model_forward(c->scores, &c->rm, &c->acts, c->ids, c->lengths, err));
        for (int k = 0; k < n; k++) {
            double d = (double)c->scores[k] - c->scores[c->B + k];
            loss += bt_loss(d);
            acc += d > 0;
            margin += d;
        }
    }
    e->loss = loss / (double)c->n_eval;
    e->accuracy = acc / (double)c->n_eval;
    e->margin = margin / (double)c->n_eval;
    return PT_OK;
}

typedef struct step_stats {
    double loss, accuracy, margin, chosen, rejected, lr, grad_norm, clip;
    bool skipped;
} step_stats;

static pt_status train_step(step_stats *s, rm_ctx *c, pt_error *err) {
    const int B = c->B;
    rm_pair **batch = c->batch;
    for (int k = 0; k < B; k++) {
        if (c->cursor == c->n_train) {
            c->epoch++;
            c->cursor = 0;
            shuffle(c->order, c->n_train, c->seed, 0x65706f6368 /* "epoch" */, (uint64_t)c->epoch);
        }
        batch[k] = &c->train[c->order[c->cursor++]];
    }
    fill_batch(c, batch, B);
    PT_TRY(reward_model_forward(c->scores, &c->rm, &c->acts, c->ids, c->lengths, err));
    double loss = 0, acc = 0, margin = 0, sc = 0, sr = 0;
    for (int k = 0; k < B; k++) {
        double rc = c->scores[k], rr = c->scores[B + k], d = rc - rr;
        loss += bt_loss(d) / B + c->center * (rc + rr) * (rc + rr) / B;
        acc += d > 0;
        margin += d;
        sc += rc;
        sr += rr;
        /* d/dd softplus(−d) = −σ(−d); the centring term adds 2λ(rc + rr) to both. */
        double g = -sigmoid(-d) / B, gc = 2.0 * c->center * (rc + rr) / B;
        c->dscores[k] = (float)(g + gc);
        c->dscores[B + k] = (float)(-g + gc);
    }
    *s = (step_stats){loss, acc / B, margin / B, sc / B, sr / B, lr_at(&c->sched, c->opt.step), NAN, 1.0, false};
    loss += c->aux_scale * c->acts.a.balance_loss;
    reward_model_zero_grads(&c->rm);
    reward_model_backward(&c->rm, &c->acts, c->dscores, (float)c->aux_scale);
    /* Global norm over the trunk's trainable spans and the head together. */
    double ss = 0.0;
    const float *G = c->rm.base.grads;
    for (int i = 0; i < c->opt.nspans; i++)
        for (size_t j = 0; j < c->opt.spans[i].numel; j++) {
            double g = G[c->opt.spans[i].offset + j];
            ss += g * g;
        }
    for (int j = 0; j < c->rm.base.cfg.hidden_size; j++) ss += (double)c->rm.dscore[j] * c->rm.dscore[j];
    s->grad_norm = sqrt(ss);
    if (!isfinite(loss) || !isfinite(s->grad_norm)) {
        s->skipped = true;
        return PT_OK;
    }
    if (c->ocfg.max_grad_norm > 0) {
        double coef = c->ocfg.max_grad_norm / (s->grad_norm + 1e-6);
        if (coef < 1.0) {
            s->clip = coef;
            for (int i = 0; i < c->opt.nspans; i++) {
                float *g = c->rm.base.grads + c->opt.spans[i].offset;
                for (size_t j = 0; j < c->opt.spans[i].numel; j++) g[j] = (float)(g[j] * coef);
            }
            for (int j = 0; j < c->rm.base.cfg.hidden_size; j++) c->rm.dscore[j] = (float)(c->rm.dscore[j] * coef);
        }
    }
    PT_TRY(optim_step(NULL, &c->opt, c->rm.base.params, c->rm.base.grads, s->lr, err));
    PT_TRY(optim_step(NULL, &c->opt_head, c->rm.score, c->rm.dscore, s->lr, err));
    return PT_OK;
}

/* ---- run ---------------------------------------------------------------------------------- */

/* A reward-model run has no checkpoints to continue: a folder that holds any run is refused. */
static pt_status check_out(rm_ctx *c, pt_error *err) {
    PT_TRY(run_dir_check(&c->dir, c->out, err));
    if (c->dir.holds_run)
        PT_FAIL(err, PT_ERR_CONFIG, "--out '%s' already holds a run (run.db, checkpoints/ or final/): choose a new --out",
                c->out);
    return PT_OK;
}

static pt_status prepare(rm_ctx *c, pt_error *err) {
    PT_TRY(read_options(c, err));
    PT_TRY(check_out(c, err));
    if (tokenizer_load(&c->tok, c->tok_path, err) != PT_OK) return error_prefix(err, "--tokenizer");
    PT_TRY(prepare_data(c, err));
    if (reward_model_load(&c->rm, c->model_dir, REWARD_MODEL_NEW_HEAD, c->seed, err) != PT_OK)
        return error_prefix(err, "--model");
    c->have_rm = true;
    if ((int64_t)tokenizer_n_ids(c->tok) > c->rm.base.cfg.vocab_size)
        PT_FAIL(err, PT_ERR_CONFIG, "the tokenizer has %zu ids but the model's vocab_size is %d", tokenizer_n_ids(c->tok),
                c->rm.base.cfg.vocab_size);
    if (c->max_steps < 0) {
        double steps = ceil(config_float(c->cfg, "num_train_epochs") * (double)c->n_train / c->B);
        c->max_steps = steps < 1 ? 1 : (int64_t)steps;
    }
    c->sched.total_steps = c->max_steps;
    if (c->sched.warmup_steps > c->max_steps) c->sched.warmup_steps = c->max_steps;
    PT_TRY(lr_schedule_validate(&c->sched, err));
    optim_config oc = c->ocfg;
    oc.max_grad_norm = 0.0; /* clipped here, over trunk and head together */
    PT_TRY(optim_init(&c->opt, &c->rm.base.layout, &oc, err));
    c->have_opt = true;
    PT_TRY(optim_init(&c->opt_head, &c->rm.head_layout, &oc, err));
    c->have_opt_head = true;
    PT_TRY(reward_model_acts_init(&c->acts, &c->rm, 2 * c->B, c->T, err));
    c->have_acts = true;
    c->ids = malloc((size_t)2 * c->B * c->T * sizeof *c->ids);
    c->lengths = malloc((size_t)2 * c->B * sizeof *c->lengths);
    c->scores = malloc((size_t)2 * c->B * sizeof *c->scores);
    c->dscores = malloc((size_t)2 * c->B * sizeof *c->dscores);
    c->order = malloc((size_t)c->n_train * sizeof *c->order);
    c->batch = malloc((size_t)c->B * sizeof *c->batch);
    if (!c->ids || !c->lengths || !c->scores || !c->dscores || !c->order || !c->batch)
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for the batch (%d pairs of %d tokens)", c->B, c->T);
    shuffle(c->order, c->n_train, c->seed, 0x65706f6368 /* "epoch" */, 0);
    return PT_OK;
}

static pt_status log_eval(rm_ctx *c, const eval_stats *e, pt_error *err) {
    const char *names[] = {"eval_loss", "eval_accuracy", "eval_margin"};
    double values[] = {e->loss, e->accuracy, e->margin};
    return run_store_log_metrics(c->rs, names, values, 3, err);
}

static pt_status execute(rm_result *res, rm_ctx *c, pt_error *err) {
    PT_TRY(run_dir_open_store(&c->rs, &c->dir, "rm", c->cfg, 0, err));
    say(c, LOG_LEVEL_INFO, "reward model: %d layers, hidden %d; %lld training pairs, %lld held out; %lld steps of %d pairs (T=%d)",
        c->rm.base.cfg.num_hidden_layers, c->rm.base.cfg.hidden_size, (long long)c->n_train, (long long)c->n_eval,
        (long long)c->max_steps, c->B, c->T);
    eval_stats e = {NAN, NAN, NAN};
    if (c->n_eval > 0) {
        PT_TRY(evaluate(&e, c, err));
        PT_TRY(run_store_begin_step(c->rs, 0, err));
        PT_TRY(log_eval(c, &e, err));
        PT_TRY(run_store_commit_step(c->rs, err));
        say(c, LOG_LEVEL_INFO, "step 0: eval_loss %.4f, eval_accuracy %.3f", e.loss, e.accuracy);
    }
    res->eval_loss_start = e.loss;
    res->eval_accuracy_start = e.accuracy;
    double t0 = now_seconds();
    int nan_run = 0;
    for (int64_t step = 1; step <= c->max_steps; step++) {
        step_stats s;
        PT_TRY(train_step(&s, c, err));
        res->steps = step;
        res->train_loss_last = s.loss;
        if (s.skipped) {
            res->skipped_steps++;
            say(c, LOG_LEVEL_WARN, "step %lld: non-finite loss or gradient (loss %g, norm %g): update skipped",
                (long long)step, s.loss, s.grad_norm);
            if (++nan_run >= c->max_nan)
                PT_FAIL(err, PT_ERR_NUMERIC, "%d steps in a row had a NaN/Inf loss or gradient (last at step %lld)",
                        nan_run, (long long)step);
        } else {
            nan_run = 0;
        }
        PT_TRY(run_store_begin_step(c->rs, step, err));
        const char *names[] = {"loss", "accuracy", "margin", "rewards/chosen", "rewards/rejected", "learning_rate",
                               "grad_norm", "grad_clip_coef", "nan_skipped", "epoch"};
        double values[] = {s.loss, s.accuracy, s.margin, s.chosen, s.rejected, s.lr, s.grad_norm, s.clip,
                           s.skipped ? 1.0 : 0.0, (double)c->epoch + (double)c->cursor / (double)c->n_train};
        PT_TRY(run_store_log_metrics(c->rs, names, values, sizeof values / sizeof values[0], err));
        bool last = step == c->max_steps;
        if (c->n_eval > 0 && (last || (c->eval_steps > 0 && step % c->eval_steps == 0))) {
            PT_TRY(evaluate(&e, c, err));
            PT_TRY(log_eval(c, &e, err));
            say(c, LOG_LEVEL_INFO, "step %lld: eval_loss %.4f, eval_accuracy %.3f, eval_margin %.3f", (long long)step,
                e.loss, e.accuracy, e.margin);
        }
        PT_TRY(run_store_commit_step(c->rs, err));
        if (step % c->logging_steps == 0 || last)
            say(c, LOG_LEVEL_INFO, "step %lld/%lld: loss %.4f, accuracy %.3f, margin %.3f, lr %.3g, grad_norm %.3g",
                (long long)step, (long long)c->max_steps, s.loss, s.accuracy, s.margin, s.lr, s.grad_norm);
    }
    res->seconds = now_seconds() - t0;
    res->eval_loss_end = e.loss;
    res->eval_accuracy_end = e.accuracy;
    char final_dir[RM_PATH], tmp[RM_PATH + 8];
    PT_TRY(sft_path_join(final_dir, sizeof final_dir, c->out, "final", err));
    snprintf(tmp, sizeof tmp, "%s.tmp", final_dir);
    PT_TRY(sft_remove_flat_dir(tmp, err));
    pt_status st = reward_model_save(&c->rm, tmp, c->max_shard_bytes, err);
    if (st == PT_OK) st = sft_copy_tokenizer_files(tmp, c->tok_path, err);
    if (st == PT_OK) st = sft_publish_dir(tmp, final_dir, err);
    if (st != PT_OK) return error_prefix(err, "writing the reward model to '%s'", final_dir);
    snprintf(res->final_dir, sizeof res->final_dir, "%s", final_dir);
    say(c, LOG_LEVEL_INFO, "reward model written to %s", final_dir);
    return PT_OK;
}

pt_status rm_run(rm_result *res, const config *cfg, const rm_io *io, pt_error *err) {
    memset(res, 0, sizeof *res);
    res->eval_loss_start = res->eval_accuracy_start = res->eval_loss_end = res->eval_accuracy_end = NAN;
    rm_ctx *c = calloc(1, sizeof *c);
    PT_CHECK_ALLOC(c, err, sizeof *c);
    c->cfg = cfg;
    c->io = io;
    pt_status st = prepare(c, err);
    if (st == PT_OK) {
        res->train_pairs = c->n_train;
        res->eval_pairs = c->n_eval;
        st = execute(res, c, err);
    }
    run_store_close(c->rs);
    free(c->ids);
    free(c->lengths);
    free(c->scores);
    free(c->dscores);
    free(c->order);
    free(c->batch);
    if (c->have_acts) reward_model_acts_free(&c->acts);
    if (c->have_opt) optim_free(&c->opt);
    if (c->have_opt_head) optim_free(&c->opt_head);
    if (c->have_rm) reward_model_free(&c->rm);
    pairs_free(c->train, c->n_train);
    pairs_free(c->eval, c->n_eval);
    tokenizer_free(c->tok);
    free(c);
    return st;
}
