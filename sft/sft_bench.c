/* sft_bench.c — see sft_bench.h. */
#include "sft/sft_bench.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "datasets/run_store.h"
#include "datasets/tasks.h"
#include "model/bpe_train.h"
#include "model/tokenizer.h"
#include "sft/sft_trainer.h"

enum { BENCH_B = 16, BENCH_T = 256 };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bench_sink {
    FILE *f;
    bpe_trainer *tr;
} bench_sink;

/* Writes each generated line to the data file and feeds prompt + completion to the BPE trainer. */
static pt_status sink_line(void *ctx, task_split split, const char *line, size_t len, pt_error *err) {
    (void)split;
    bench_sink *s = ctx;
    if (fwrite(line, 1, len, s->f) != len || fputc('\n', s->f) == EOF) PT_FAIL(err, PT_ERR_IO, "writing bench data failed");
    cJSON *j = cJSON_ParseWithLength(line, len);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt"), *c = cJSON_GetObjectItemCaseSensitive(j, "completion");
    pt_status st = PT_OK;
    if (cJSON_IsString(p) && cJSON_IsString(c)) {
        size_t np = strlen(p->valuestring), nc = strlen(c->valuestring);
        char *text = malloc(np + nc + 1);
        if (!text) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
        if (text) {
            memcpy(text, p->valuestring, np);
            memcpy(text + np, c->valuestring, nc + 1);
            st = bpe_trainer_feed(s->tr, text, np + nc, err);
            free(text);
        }
    }
    cJSON_Delete(j);
    return st;
}

/* data.jsonl and a tokenizer of `vocab` ids in dir/model (beside the model's files). */
static pt_status make_data(tokenizer **tok, const char *data_path, size_t vocab, pt_error *err) {
    static const char *const SPECIAL[] = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>",
                                          "<｜Assistant｜>"};
    bpe_train_opts o = {.vocab_size = vocab, .special_tokens = SPECIAL, .n_special = 5, .min_frequency = 0,
                        .pre_tokenizer = NULL, .bos_token = SPECIAL[0], .eos_token = SPECIAL[1],
                        .pad_token = SPECIAL[2], .add_bos = true, .chat_template = NULL};
    bench_sink s = {NULL, NULL};
    PT_TRY(bpe_trainer_init(&s.tr, &o, err));
    s.f = fopen(data_path, "wb");
    pt_status st = s.f ? PT_OK : error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot create '%s'", data_path);
    task_make_opts ta = {.kind = TASK_ARITHMETIC, .seed = 1, .difficulty = 1, .n = 600, .eval_n = 0};
    task_make_opts tc = {.kind = TASK_COUNTDOWN, .seed = 1, .difficulty = 1, .n = 400, .eval_n = 0};
    if (st == PT_OK) st = task_generate(&ta, sink_line, &s, NULL, err);
    if (st == PT_OK) st = task_generate(&tc, sink_line, &s, NULL, err);
    if (s.f && fclose(s.f) != 0 && st == PT_OK) st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "writing '%s'", data_path);
    if (st == PT_OK) st = bpe_trainer_finish(tok, s.tr, err);
    bpe_trainer_free(s.tr);
    return st;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* The model's forward + backward alone on batch b (what the model benchmark times). */
static pt_status fwd_bwd(policy_model *m, model_acts *a, float *dlogp, const data_batch *b, pt_error *err) {
    model_batch mb;
    data_batch_model(&mb, b);
    model_zero_grads(m);
    PT_TRY(model_forward(m, a, &mb, err));
    double loss;
    model_mean_nll(a, dlogp, &loss);
    model_backward(m, a, dlogp, NULL, 1.0f);
    return PT_OK;
}

/* The timed loop: SFT step (with its run.db transaction), then forward + backward alone on the
 * batch that step used, with the weights it left — interleaved, so that a change in the
 * machine's load hits both. Passes 0 warm up. */
static pt_status time_steps(sft_bench_result *r, sft_trainer *t, run_store *rs, pt_error *err) {
    double best_sft = 0, best_fb = 0, real = 0;
    for (int i = 0; i <= r->steps; i++) {
        double t0 = now_seconds();
        sft_step_stats s;
        PT_TRY(sft_trainer_step(&s, t, NULL, err));
        const char *names[] = {"loss", "learning_rate", "grad_norm", "tokens"};
        const double values[] = {s.loss, s.lr, s.grad_norm, (double)s.tokens};
        PT_TRY(run_store_begin_step(rs, s.step, err));
        PT_TRY(run_store_log_metrics(rs, names, values, 4, err));
        PT_TRY(run_store_commit_step(rs, err));
        double t1 = now_seconds();
        PT_TRY(fwd_bwd(t->m, &t->acts, t->dlogp, &t->micro[0], err));
        double t2 = now_seconds();
        if (i == 0) continue;
        if (best_sft == 0 || t1 - t0 < best_sft) best_sft = t1 - t0;
        if (best_fb == 0 || t2 - t1 < best_fb) best_fb = t2 - t1;
        real += (double)s.tokens;
    }
    const double positions = (double)r->B * r->T;
    r->step_seconds = best_sft;
    r->sft_tokens_per_s = positions / best_sft;
    r->fwd_bwd_tokens_per_s = positions / best_fb;
    r->ratio = r->sft_tokens_per_s / r->fwd_bwd_tokens_per_s;
    r->fill = real / (positions * r->steps);
    return PT_OK;
}

pt_status sft_bench(sft_bench_result *r, const char *model_config_path, int steps, pt_error *err) {
    memset(r, 0, sizeof *r);
    PT_CHECK(steps >= 1 && steps <= 1000, err, PT_ERR_INVALID, "steps must be in 1..1000, got %d", steps);
    r->B = BENCH_B;
    r->T = BENCH_T;
    r->steps = steps;
    model_config mc;
    PT_TRY(model_config_load(&mc, model_config_path, err));
    char dir[] = "/tmp/pt-sft-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        model_config_free(&mc);
        PT_FAIL(err, PT_ERR_IO, "cannot create a temporary folder under /tmp");
    }
    char data[128], json[1024];
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"%s\", \"max_steps\": %d,"
             " \"per_device_train_batch_size\": %d, \"max_length\": %d, \"packing\": true,"
             " \"learning_rate\": 1e-4, \"lr_scheduler_type\": \"constant\"}",
             dir, data, dir, steps + 1, BENCH_B, BENCH_T);
    tokenizer *tok = NULL;
    dataset *ds = NULL;
    config cfg;
    sft_options o;
    policy_model m;
    optim opt;
    sft_trainer t;
    run_store *rs = NULL;
    bool have_cfg = false, have_model = false, have_opt = false, have_trainer = false;
    pt_status st = make_data(&tok, data, (size_t)mc.vocab_size, err);
    if (st == PT_OK && (st = config_init(&cfg, &SFT_SCHEMA, 1, err)) == PT_OK) have_cfg = true;
    if (st == PT_OK) st = config_load_string(&cfg, json, "sft bench", err);
    if (st == PT_OK) st = sft_options_from_config(&o, &cfg, err);
    if (st == PT_OK) st = dataset_open_jsonl(&ds, data, tok, &o.data, err);
    if (st == PT_OK && (st = model_init(&m, &mc, 1, err)) == PT_OK) have_model = true;
    if (st == PT_OK && (st = optim_init(&opt, &m.layout, &o.optim, err)) == PT_OK) have_opt = true;
    lr_schedule sched = o.sched;
    sched.total_steps = steps + 1;
    if (st == PT_OK && (st = sft_trainer_init(&t, &o, &m, &opt, &sched, ds, NULL, 0, err)) == PT_OK) have_trainer = true;
    if (st == PT_OK) st = run_store_open(&rs, dir, 0, err);
    if (st == PT_OK) st = run_store_log_run(rs, "sft-bench", json, 0, err);
    if (st == PT_OK) st = time_steps(r, &t, rs, err);
    run_store_close(rs);
    if (have_trainer) sft_trainer_free(&t);
    if (have_opt) optim_free(&opt);
    if (have_model) model_free(&m);
    dataset_free(ds);
    if (have_cfg) config_free(&cfg);
    tokenizer_free(tok);
    model_config_free(&mc);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (st != PT_OK) error_prefix(err, "sft bench");
    return st;
}

pt_status sft_bench_make_data(tokenizer **tok, const char *data_path, size_t vocab, pt_error *err) {
    return make_data(tok, data_path, vocab, err);
}
