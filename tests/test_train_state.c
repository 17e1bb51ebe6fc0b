/* test_train_state.c — checkpoints (core/train_state): bit-exact round trip, hostile and
 * damaged folders, retention, failed writes, and the end-to-end "bit-identical resume".
 *
 * Every comparison here is exact (memcmp): a checkpoint either restores the same bits or it is
 * wrong. Damage is done by hand to real checkpoints (a flipped byte in each file, truncation, a
 * changed magic or version — with the manifest re-written so that only the state file's own
 * header checks can catch it —, a missing manifest, a leftover .tmp folder); each must make
 * find_latest fall back to the previous good checkpoint, say why, and delete nothing. Write
 * failures are real: RLIMIT_FSIZE makes write() fail with EFBIG part-way through the model or
 * the state file (this works as root, where chmod would not), and a run_dir that is a file.
 *
 * The resume test trains a tiny MoE policy (a dense and a MoE layer with router-bias updates,
 * one MTP module, two micro-batches per step, a warm-up + cosine schedule, clipping) for 6
 * steps, checkpointing after step 3; batches come from Philox streams keyed by a data cursor,
 * and a persistent RNG masks targets. Then everything is freed, step 3 is loaded from disk and
 * steps 4–6 are run again: losses and final parameters and moments must be bit-identical. Two
 * negative controls show the test can fail: resuming with the mask RNG not restored, or with
 * the optimizer step count reset, must change the losses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/optim.h"
#include "core/schedule.h"
#include "core/train_state.h"
#include "model/model.h"
#include "tests/util/check.h"

/* ---- fixtures: a tiny model, an optimizer with non-zero moments, a progress record ---------- */

static void ts_tiny_config(model_config *c) {
    model_config_init(c);
    c->vocab_size = 40;
    c->hidden_size = 16;
    c->intermediate_size = 24;
    c->moe_intermediate_size = 8;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 2;
    c->n_shared_experts = 1;
    c->n_routed_experts = 8;
    c->routed_scaling_factor = 2.5;
    c->kv_lora_rank = 8;
    c->q_lora_rank = 6;
    c->qk_rope_head_dim = 4;
    c->qk_nope_head_dim = 4;
    c->v_head_dim = 6;
    c->n_group = 4;
    c->topk_group = 2;
    c->num_experts_per_tok = 2;
    c->first_k_dense_replace = 1;
    c->norm_topk_prob = true;
    c->max_position_embeddings = 32;
    c->initializer_range = 0.1;
    c->num_nextn_predict_layers = 1;
    c->posttrain_bias_update_speed = 0.01;
    c->posttrain_seq_aux_alpha = 0.01;
}

static const optim_config TS_OPTIM = {0.9, 0.95, 1e-8, 0.1, 1.0, false, OPTIM_MOMENTS_FP32};

static void ts_model(policy_model *m, uint64_t seed) {
    model_config cfg;
    ts_tiny_config(&cfg);
    pt_error err = {0};
    cr_assert_eq(model_init(m, &cfg, seed, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
}

/* Two optimizer steps on random gradients, so params, m, v and step are all non-trivial. */
static void ts_warm_optim(optim *opt, policy_model *m, uint64_t seed) {
    pt_error err = {0};
    cr_assert_eq(optim_init(opt, &m->layout, &TS_OPTIM, &err), PT_OK, "%s", err.msg);
    test_rng r;
    test_rng_seed(&r, seed);
    for (int s = 0; s < 2; s++) {
        fill_normal(m->grads, m->layout.total, 0.05f, &r);
        cr_assert_eq(optim_step(NULL, opt, m->params, m->grads, 1e-2, &err), PT_OK, "%s", err.msg);
    }
}

typedef struct ts_world {
    char run_dir[256];
    policy_model m;
    optim opt;
    rng rngs[2];
    unsigned char cursor[13];
    train_progress prog;
} ts_world;

static void ts_world_init(ts_world *w, uint64_t seed) {
    snprintf(w->run_dir, sizeof w->run_dir, "/tmp/pt-train-state-XXXXXX");
    cr_assert(mkdtemp(w->run_dir), "mkdtemp: %s", strerror(errno));
    ts_model(&w->m, seed);
    ts_warm_optim(&w->opt, &w->m, seed + 1);
    rng_init(&w->rngs[0], 1234, 5);
    rng_init(&w->rngs[1], 99, 77);
    for (int i = 0; i < 7; i++) rng_u32(&w->rngs[0]); /* mid-block: `used` matters */
    rng_seek(&w->rngs[1], 1000);
    for (size_t i = 0; i < sizeof w->cursor; i++) w->cursor[i] = (unsigned char)(17 * i + 3);
    w->prog = (train_progress){0, UINT64_C(0x9e3779b97f4a7c15), w->rngs, 2, w->cursor, sizeof w->cursor};
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    chmod(path, 0755);
    return remove(path);
}

static void ts_world_free(ts_world *w) {
    optim_free(&w->opt);
    model_free(&w->m);
    nftw(w->run_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Saves the world's state as step `step` (params nudged per step so checkpoints differ). */
static void ts_save(ts_world *w, int64_t step, int keep) {
    w->m.params[0] = (float)step;
    w->prog.step = step;
    train_save_options o = {keep, 0};
    pt_error err = {0};
    cr_assert_eq(train_state_save(NULL, 0, w->run_dir, &w->m, &w->opt, &w->prog, &o, &err), PT_OK, "%s", err.msg);
}

static void ckpt_path(char *out, size_t len, const ts_world *w, const char *rel) {
    snprintf(out, len, "%s/checkpoints/%s", w->run_dir, rel);
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* find_latest must give `want` (−1: none) and list a skipped folder whose path ends in
 * `skipped_name` (NULL: no check) with a reason containing `reason_part` (NULL: any). */
static void expect_latest(const ts_world *w, int64_t want, const char *skipped_name, const char *reason_part) {
    ckpt_scan scan;
    pt_error err = {0};
    cr_assert_eq(train_state_find_latest(&scan, w->run_dir, &err), PT_OK, "%s", err.msg);
    if (want < 0) cr_assert(!scan.found, "no checkpoint should verify, found step %lld", (long long)scan.step);
    else cr_assert(scan.found && scan.step == want, "expected step %lld, found %s %lld", (long long)want,
                   scan.found ? "step" : "nothing", (long long)scan.step);
    if (skipped_name) {
        int hit = 0;
        for (int i = 0; i < scan.n_skipped; i++) {
            size_t lp = strlen(scan.skipped[i].path), ln = strlen(skipped_name);
            if (lp >= ln && strcmp(scan.skipped[i].path + lp - ln, skipped_name) == 0) {
                hit = 1;
                cr_assert(scan.skipped[i].reason[0], "a skipped folder needs a reason");
                if (reason_part)
                    cr_assert(strstr(scan.skipped[i].reason, reason_part), "reason for %s: '%s' lacks '%s'",
                              skipped_name, scan.skipped[i].reason, reason_part);
            }
        }
        cr_assert(hit, "%s should be reported as skipped (%d skipped)", skipped_name, scan.n_skipped);
    }
    ckpt_scan_free(&scan);
}

static long file_size(const char *path) {
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "stat %s: %s", path, strerror(errno));
    return (long)sb.st_size;
}

static void xor_byte(const char *path, long off, unsigned char mask) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_neq(c, EOF);
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    fputc(c ^ mask, f);
    fclose(f);
}

static void write_bytes_at(const char *path, long off, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t n) {
    unsigned char *b = malloc(n);
    FILE *f = fopen(path, "rb");
    cr_assert(b && f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fread(b, 1, n, f), n);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* ---- round trip ------------------------------------------------------------------------- */

Test(train_state, round_trip_is_bit_exact) {
    ts_world w;
    ts_world_init(&w, 21);
    ts_save(&w, 7, 3);
    char dir[1024];
    ckpt_path(dir, sizeof dir, &w, "step-7");
    int64_t vstep = -1;
    pt_error err = {0};
    cr_assert_eq(train_state_verify(&vstep, dir, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(vstep, 7);
    char leftover[1200];
    snprintf(leftover, sizeof leftover, "%s.tmp", dir);
    cr_assert(!exists(leftover), "the temporary folder must be gone after a save");

    ckpt_scan scan;
    cr_assert_eq(train_state_find_latest(&scan, w.run_dir, &err), PT_OK, "%s", err.msg);
    cr_assert(scan.found && scan.step == 7 && strcmp(scan.dir, dir) == 0);
    cr_assert_eq(scan.n_skipped, 0);
    ckpt_scan_free(&scan);

    policy_model m2;
    optim o2;
    train_progress p2;
    cr_assert_eq(train_state_load(&m2, &o2, &p2, dir, &TS_OPTIM, w.prog.config_hash, false, &err), PT_OK, "%s", err.msg);
    const size_t n = w.m.layout.total;
    cr_assert_eq(m2.layout.total, n);
    for (int i = 0; i < w.m.layout.ntensors; i++) {
        const tensor_entry *t = &w.m.layout.tensors[i];
        cr_assert_eq(memcmp(m2.params + t->offset, w.m.params + t->offset, t->numel * sizeof(float)), 0,
                     "%s is not restored bit-exactly", t->name);
    }
    cr_assert_eq(memcmp(o2.m, w.opt.m, n * sizeof(float)), 0, "first moments differ");
    cr_assert_eq(memcmp(o2.v, w.opt.v, n * sizeof(float)), 0, "second moments differ");
    cr_assert_eq(o2.step, w.opt.step);
    cr_assert_eq(p2.step, 7);
    cr_assert_eq(p2.config_hash, w.prog.config_hash);
    cr_assert_eq(p2.n_rngs, 2);
    for (int i = 0; i < 2; i++) {
        rng a = w.rngs[i], b = p2.rngs[i];
        cr_assert(a.seed == b.seed && a.stream == b.stream && a.position == b.position && a.used == b.used &&
                      memcmp(a.block, b.block, sizeof a.block) == 0,
                  "rng %d not restored", i);
        for (int k = 0; k < 9; k++) cr_assert_eq(rng_u32(&a), rng_u32(&b), "rng %d draws differently", i);
    }
    cr_assert_eq(p2.cursor_bytes, sizeof w.cursor);
    cr_assert_eq(memcmp(p2.cursor, w.cursor, sizeof w.cursor), 0);
    train_progress_free(&p2);
    optim_free(&o2);
    model_free(&m2);

    /* Another config: an error naming both hashes, unless allowed. */
    cr_assert_eq(train_state_load(&m2, &o2, &p2, dir, &TS_OPTIM, 0x1234abcd, false, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "9e3779b97f4a7c15") && strstr(err.msg, "000000001234abcd"), "%s", err.msg);
    cr_assert_eq(m2.params, NULL, "a failed load leaves nothing to free");
    cr_assert_eq(train_state_load(&m2, &o2, &p2, dir, &TS_OPTIM, 0x1234abcd, true, &err), PT_OK, "%s", err.msg);
    train_progress_free(&p2);
    optim_free(&o2);
    model_free(&m2);
    ts_world_free(&w);
}

/* The manifest's checksums are real FNV-1a 64 (the published test vectors of the FNV
 * reference: "" → cbf29ce484222325, "a" → af63dc4c8601ec8c, "foobar" → 85944171f73967e8), so
 * other tools can check a checkpoint. */
Test(train_state, manifest_checksums_are_fnv1a64) {
    char dir[] = "/tmp/pt-manifest-XXXXXX";
    cr_assert(mkdtemp(dir));
    const char *names[3] = {"empty", "a", "foobar"}, *bodies[3] = {"", "a", "foobar"};
    const char *want[3] = {"cbf29ce484222325", "af63dc4c8601ec8c", "85944171f73967e8"};
    char path[512];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_bytes(path, bodies[i], strlen(bodies[i]));
    }
    pt_error err = {0};
    cr_assert_eq(train_state_write_manifest(dir, 11, &err), PT_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/%s", dir, TRAIN_STATE_MANIFEST);
    long size = file_size(path);
    unsigned char *raw = read_bytes(path, (size_t)size);
    char *text = malloc((size_t)size + 1);
    cr_assert(text);
    memcpy(text, raw, (size_t)size);
    text[size] = '\0';
    free(raw);
    for (int i = 0; i < 3; i++) {
        char entry[128];
        snprintf(entry, sizeof entry, "\"%s\"", names[i]);
        const char *at = strstr(text, entry);
        cr_assert(at, "manifest lacks %s:\n%s", names[i], text);
        const char *sum = strstr(at, "\"fnv1a64\"");
        cr_assert(sum && strstr(sum, want[i]) == strchr(sum + 9, '"') + 1, "%s: expected fnv1a64 %s in\n%s", names[i],
                  want[i], text);
    }
    /* Not a checkpoint: no config.json or train_state.bin. */
    cr_assert_eq(train_state_verify(NULL, dir, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "does not list config.json"), "%s", err.msg);
    free(text);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

Test(train_state, empty_run_dir_has_no_checkpoint) {
    ts_world w;
    ts_world_init(&w, 1);
    expect_latest(&w, -1, NULL, NULL);
    ts_world_free(&w);
}

/* ---- damaged checkpoints ------------------------------------------------------------------ */

/* A byte flipped at the start, middle and end of every file of step-2 makes find_latest fall
 * back to step-1; undoing the flip makes step-2 good again; nothing is ever deleted. */
Test(train_state, corrupted_byte_in_any_file_falls_back) {
    ts_world w;
    ts_world_init(&w, 2);
    ts_save(&w, 1, 0);
    ts_save(&w, 2, 0);
    const char *files[] = {"config.json", "model.safetensors", TRAIN_STATE_FILE};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/checkpoints/step-2/%s", w.run_dir, files[f]);
        long size = file_size(path), offs[3] = {0, size / 2, size - 1};
        for (int k = 0; k < 3; k++) {
            xor_byte(path, offs[k], 0x10);
            expect_latest(&w, 1, "step-2", "checksum");
            xor_byte(path, offs[k], 0x10);
            expect_latest(&w, 2, NULL, NULL);
        }
    }
    /* The manifest itself: a changed checksum digit. */
    char man[1200];
    snprintf(man, sizeof man, "%s/checkpoints/step-2/%s", w.run_dir, TRAIN_STATE_MANIFEST);
    FILE *f = fopen(man, "rb");
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    char *digit = strstr(text, "\"fnv1a64\":");
    cr_assert(digit);
    digit = strchr(digit + 10, '"') + 1;
    xor_byte(man, digit - text, *digit == '0' ? 0x01 : ('0' ^ *digit));
    expect_latest(&w, 1, "step-2", "checksum");
    /* Broken JSON. */
    xor_byte(man, 0, '{' ^ '[');
    expect_latest(&w, 1, "step-2", "JSON");
    char p1[1200];
    ckpt_path(p1, sizeof p1, &w, "step-1/" TRAIN_STATE_FILE);
    cr_assert(exists(p1) && exists(man), "find_latest must not delete anything");
    ts_world_free(&w);
}

Test(train_state, missing_manifest_or_file_falls_back) {
    ts_world w;
    ts_world_init(&w, 3);
    ts_save(&w, 1, 0);
    ts_save(&w, 2, 0);
    char path[1200], moved[1300];
    ckpt_path(path, sizeof path, &w, "step-2/" TRAIN_STATE_MANIFEST);
    snprintf(moved, sizeof moved, "%s/elsewhere.json", w.run_dir);
    cr_assert_eq(rename(path, moved), 0);
    expect_latest(&w, 1, "step-2", "missing");
    cr_assert_eq(rename(moved, path), 0);
    expect_latest(&w, 2, NULL, NULL);
    ckpt_path(path, sizeof path, &w, "step-2/model.safetensors");
    cr_assert_eq(rename(path, moved), 0);
    expect_latest(&w, 1, "step-2", "missing");
    cr_assert_eq(rename(moved, path), 0);
    /* An extra file the manifest does not list (it could change what model_load reads). */
    ckpt_path(path, sizeof path, &w, "step-2/model.safetensors.index.json");
    FILE *f = fopen(path, "wb");
    fputs("{}", f);
    fclose(f);
    expect_latest(&w, 1, "step-2", "not in the manifest");
    ts_world_free(&w);
}

/* Damage that keeps the manifest consistent (it is re-written), so only train_state.bin's own
 * header and section checks can catch it. */
static void rebless(const ts_world *w, int64_t step) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/checkpoints/step-%lld", w->run_dir, (long long)step);
    pt_error err = {0};
    cr_assert_eq(train_state_write_manifest(dir, step, &err), PT_OK, "%s", err.msg);
}

static void expect_state_rejected(ts_world *w, const char *reason_part) {
    rebless(w, 2);
    expect_latest(w, 1, "step-2", reason_part);
    char path[1200];
    ckpt_path(path, sizeof path, w, "step-2/" TRAIN_STATE_FILE);
    train_progress p;
    pt_error err = {0};
    cr_assert_eq(train_state_read_file(&p, &w->opt, path, &err), PT_ERR_FORMAT, "reading %s must fail", path);
    cr_assert(strstr(err.msg, reason_part) && strstr(err.msg, path), "message '%s' should name the file and say '%s'",
              err.msg, reason_part);
    cr_assert_eq(p.rngs, NULL);
}

Test(train_state, hostile_state_file_is_rejected) {
    ts_world w;
    ts_world_init(&w, 4);
    ts_save(&w, 1, 0);
    ts_save(&w, 2, 0);
    char path[1200];
    ckpt_path(path, sizeof path, &w, "step-2/" TRAIN_STATE_FILE);
    const long size = file_size(path);
    unsigned char *orig = read_bytes(path, (size_t)size);

    write_bytes_at(path, 0, "PTTX", 4);
    expect_state_rejected(&w, "magic 'PTTX'");
    write_bytes_at(path, 0, "PTTS", 4);
    const unsigned char v2[4] = {2, 0, 0, 0}, v1[4] = {1, 0, 0, 0};
    write_bytes_at(path, 4, v2, 4);
    expect_state_rejected(&w, "version 2");
    write_bytes_at(path, 4, v1, 4);
    rebless(&w, 2);
    expect_latest(&w, 2, NULL, NULL);

    cr_assert_eq(truncate(path, size - 4), 0);
    expect_state_rejected(&w, "truncated");
    cr_assert_eq(truncate(path, 10), 0);
    expect_state_rejected(&w, "truncated");
    /* Appended bytes with the header's size fixed up: caught by the section walk. */
    write_bytes(path, orig, (size_t)size);
    const unsigned char zeros[8] = {0};
    write_bytes_at(path, size, zeros, 8);
    unsigned char sz[8];
    for (int i = 0; i < 8; i++) sz[i] = (unsigned char)((uint64_t)(size + 8) >> (8 * i));
    write_bytes_at(path, 8, sz, 8);
    expect_state_rejected(&w, "after its last section");
    /* A section with the wrong tag. */
    write_bytes(path, orig, (size_t)size);
    write_bytes_at(path, 24, "STOP", 4);
    expect_state_rejected(&w, "'STOP', expected 'STEP'");
    /* A moment count that disagrees with the ADAM section's size (offsets from the format). */
    write_bytes(path, orig, (size_t)size);
    const long count_at = 24 + 2 * (16 + 8) + (16 + 8 + 48 * w.prog.n_rngs) + 16 + (long)w.prog.cursor_bytes + 16 + 8;
    unsigned char cnt[8];
    for (int i = 0; i < 8; i++) cnt[i] = (unsigned char)((uint64_t)(w.opt.total + 1) >> (8 * i));
    unsigned char was[8];
    memcpy(was, orig + count_at, 8);
    cr_assert_eq(memcmp(was, cnt, 8) != 0 && was[0] == (unsigned char)w.opt.total, 1,
                 "the test's offset of the moment count is wrong");
    write_bytes_at(path, count_at, cnt, 8);
    expect_state_rejected(&w, "ADAM declares");
    write_bytes(path, orig, (size_t)size);
    rebless(&w, 2);
    expect_latest(&w, 2, NULL, NULL);
    free(orig);

    /* Moments of another model size: the model's own check. */
    ts_save(&w, 3, 0);
    char p3[1200];
    ckpt_path(p3, sizeof p3, &w, "step-3/" TRAIN_STATE_FILE);
    optim small;
    model_layout lay = w.m.layout; /* the first tensor only, in a slightly smaller arena */
    lay.total -= 16;
    lay.ntensors = 1;
    pt_error err = {0};
    cr_assert_eq(optim_init(&small, &lay, &TS_OPTIM, &err), PT_OK, "%s", err.msg);
    train_progress p;
    cr_assert_eq(train_state_read_file(&p, &small, p3, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "different model config"), "%s", err.msg);
    optim_free(&small);
    ts_world_free(&w);
}

Test(train_state, leftover_tmp_folder_is_skipped_and_kept_by_readers) {
    ts_world w;
    ts_world_init(&w, 5);
    ts_save(&w, 1, 0);
    ts_save(&w, 2, 0);
    /* A crash while writing step-3: its .tmp folder holds part of the files. */
    char tmp[1200], f[1300];
    ckpt_path(tmp, sizeof tmp, &w, "step-3.tmp");
    cr_assert_eq(mkdir(tmp, 0755), 0);
    snprintf(f, sizeof f, "%s/config.json", tmp);
    FILE *fp = fopen(f, "wb");
    fputs("{\"model_type\": \"deeps", fp);
    fclose(fp);
    expect_latest(&w, 2, "step-3.tmp", "interrupted");
    cr_assert(exists(f), "find_latest must not remove anything");
    /* The next save of step 3 replaces the leftover with a complete checkpoint. */
    ts_save(&w, 3, 0);
    cr_assert(!exists(tmp));
    expect_latest(&w, 3, NULL, NULL);
    ts_world_free(&w);
}

/* ---- retention and replacement ------------------------------------------------------------ */

Test(train_state, keeps_the_newest_k) {
    ts_world w;
    ts_world_init(&w, 6);
    /* A damaged folder older than everything: retention must leave it for a human. */
    char broken[1200], dir[1200];
    ckpt_path(broken, sizeof broken, &w, "");
    cr_assert_eq(mkdir(broken, 0755), 0);
    ckpt_path(broken, sizeof broken, &w, "step-0");
    cr_assert_eq(mkdir(broken, 0755), 0);
    for (int s = 1; s <= 5; s++) {
        ts_save(&w, s, 2);
        for (int k = 1; k <= s; k++) {
            snprintf(dir, sizeof dir, "%s/checkpoints/step-%d", w.run_dir, k);
            int want = k >= s - 1;
            cr_assert_eq(exists(dir), want, "after saving step %d, step-%d should %s", s, k, want ? "exist" : "be gone");
            if (want) {
                pt_error err = {0};
                cr_assert_eq(train_state_verify(NULL, dir, &err), PT_OK, "%s", err.msg);
            }
        }
        cr_assert(exists(broken), "an incomplete folder is never removed by retention");
    }
    /* A save of an older step (a resume from step 4) keeps every newer checkpoint. */
    ts_save(&w, 3, 1);
    for (int k = 3; k <= 5; k++) {
        snprintf(dir, sizeof dir, "%s/checkpoints/step-%d", w.run_dir, k);
        cr_assert(exists(dir), "step-%d must survive", k);
    }
    expect_latest(&w, 5, NULL, NULL);
    ts_world_free(&w);
}

Test(train_state, resave_replaces_a_damaged_step) {
    ts_world w;
    ts_world_init(&w, 7);
    ts_save(&w, 1, 0);
    ts_save(&w, 2, 0);
    char path[1200];
    ckpt_path(path, sizeof path, &w, "step-2/" TRAIN_STATE_FILE);
    xor_byte(path, 100, 0xff);
    expect_latest(&w, 1, "step-2", "checksum");
    w.m.params[5] = 42.0f;
    ts_save(&w, 2, 0);
    expect_latest(&w, 2, NULL, NULL);
    char dir[1200], old[1200];
    ckpt_path(dir, sizeof dir, &w, "step-2");
    ckpt_path(old, sizeof old, &w, "step-2.old");
    cr_assert(!exists(old));
    policy_model m2;
    optim o2;
    train_progress p2;
    pt_error err = {0};
    cr_assert_eq(train_state_load(&m2, &o2, &p2, dir, &TS_OPTIM, w.prog.config_hash, false, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(m2.params[5], 42.0f, "the new step-2 must have replaced the damaged one");
    train_progress_free(&p2);
    optim_free(&o2);
    model_free(&m2);
    ts_world_free(&w);
}

/* ---- failed writes ------------------------------------------------------------------------ */

/* Files larger than `limit` bytes cannot be written (EFBIG) while this is in force. */
static void save_with_file_limit(ts_world *w, long limit, int64_t step) {
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)limit;
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    w->prog.step = step;
    train_save_options o = {1, 0};
    pt_error err = {0};
    pt_status st = train_state_save(NULL, 0, w->run_dir, &w->m, &w->opt, &w->prog, &o, &err);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(st, PT_ERR_IO, "a save that cannot write must fail (limit %ld): %s", limit, err.msg);
    cr_assert(strstr(err.msg, "earlier checkpoints are untouched"), "%s", err.msg);
}

Test(train_state, failed_write_leaves_previous_checkpoints) {
    ts_world w;
    ts_world_init(&w, 8);
    ts_save(&w, 1, 0);
    ts_save(&w, 2, 0);
    char st_path[1200], model_path[1200], cfg_path[1200];
    ckpt_path(st_path, sizeof st_path, &w, "step-2/" TRAIN_STATE_FILE);
    ckpt_path(model_path, sizeof model_path, &w, "step-2/model.safetensors");
    ckpt_path(cfg_path, sizeof cfg_path, &w, "step-2/config.json");
    long st_size = file_size(st_path), model_size = file_size(model_path), cfg_size = file_size(cfg_path);
    cr_assert_gt(st_size, model_size + 64, "the test needs the state file to be the largest");
    /* Mid-way through the first file, then after the model but inside train_state.bin. */
    const long limits[2] = {cfg_size / 2, model_size + 32};
    for (int k = 0; k < 2; k++) {
        save_with_file_limit(&w, limits[k], 3);
        char p3[1200], p3t[1200];
        ckpt_path(p3, sizeof p3, &w, "step-3");
        ckpt_path(p3t, sizeof p3t, &w, "step-3.tmp");
        cr_assert(!exists(p3) && !exists(p3t), "a failed save leaves neither step-3 nor its temporary folder");
        expect_latest(&w, 2, NULL, NULL);
        char d1[1200];
        ckpt_path(d1, sizeof d1, &w, "step-1");
        pt_error err = {0};
        cr_assert_eq(train_state_verify(NULL, d1, &err), PT_OK, "keep_last=1 must not act on a failed save: %s",
                     err.msg);
    }
    /* A run_dir that is a file. */
    char file_dir[1200];
    snprintf(file_dir, sizeof file_dir, "%s/not-a-dir", w.run_dir);
    FILE *f = fopen(file_dir, "wb");
    fclose(f);
    train_save_options o = {1, 0};
    pt_error err = {0};
    cr_assert_eq(train_state_save(NULL, 0, file_dir, &w.m, &w.opt, &w.prog, &o, &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "not-a-dir"), "%s", err.msg);
    ts_world_free(&w);
}

Test(train_state, unwritable_checkpoints_folder) {
    if (geteuid() == 0) cr_skip_test("running as root: permissions do not stop writes (see the RLIMIT test)");
    ts_world w;
    ts_world_init(&w, 9);
    ts_save(&w, 1, 0);
    char ck[1200];
    ckpt_path(ck, sizeof ck, &w, "");
    cr_assert_eq(chmod(ck, 0555), 0);
    w.prog.step = 2;
    train_save_options o = {1, 0};
    pt_error err = {0};
    cr_assert_eq(train_state_save(NULL, 0, w.run_dir, &w.m, &w.opt, &w.prog, &o, &err), PT_ERR_IO);
    chmod(ck, 0755);
    expect_latest(&w, 1, NULL, NULL);
    ts_world_free(&w);
}

/* ---- bit-identical resume ----------------------------------------------------------------- */

enum { RB = 2, RT = 8, MICRO = 2, STEPS = 6, SAVE_AT = 3 };
#define RUN_SEED UINT64_C(2024)

typedef struct trainer {
    policy_model m;
    optim opt;
    model_acts acts;
    lr_schedule sched;
    rng mask_rng;    /* persistent: which targets are dropped */
    uint64_t cursor; /* micro-batches consumed: keys the data stream */
} trainer;

/* One optimizer step over MICRO micro-batches; returns the mean loss. */
static double train_step(trainer *t) {
    pt_error err = {0};
    const int N = RB * RT, V = t->m.cfg.vocab_size;
    int ids[RB * RT], targets[RB * RT];
    float dlogp[RB * RT];
    double mean = 0.0;
    model_zero_grads(&t->m);
    for (int mb = 0; mb < MICRO; mb++) {
        uint64_t key[2] = {0xda7a, t->cursor++};
        rng data;
        rng_init(&data, RUN_SEED, rng_stream_id(key, 2));
        for (int i = 0; i < N; i++) ids[i] = (int)rng_below(&data, (uint32_t)V);
        for (int i = 0; i < N; i++) {
            targets[i] = (i % RT == RT - 1) ? -1 : ids[i + 1];
            if (rng_uniform(&t->mask_rng) < 0.25f) targets[i] = -1;
        }
        model_batch b = {ids, targets, NULL, NULL, RB, RT, 1.0f, false};
        cr_assert_eq(model_forward(&t->m, &t->acts, &b, &err), PT_OK, "%s", err.msg);
        double loss;
        cr_assert_gt(model_mean_nll(&t->acts, dlogp, &loss), 0);
        for (int i = 0; i < N; i++) dlogp[i] *= 1.0f / MICRO;
        model_backward(&t->m, &t->acts, dlogp, NULL, 1.0f / MICRO);
        mean += loss / MICRO;
    }
    optim_step_info info;
    cr_assert_eq(optim_step(&info, &t->opt, t->m.params, t->m.grads, lr_at(&t->sched, t->opt.step), &err), PT_OK,
                 "%s", err.msg);
    cr_assert(!info.skipped);
    model_update_router_bias(&t->m, &t->acts, (float)t->m.cfg.posttrain_bias_update_speed);
    return mean;
}

static void trainer_fresh(trainer *t) {
    memset(t, 0, sizeof *t);
    ts_model(&t->m, 77);
    pt_error err = {0};
    cr_assert_eq(optim_init(&t->opt, &t->m.layout, &TS_OPTIM, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_acts_init(&t->acts, &t->m, RB, RT, &err), PT_OK, "%s", err.msg);
    t->sched = (lr_schedule){LR_SCHEDULE_COSINE, 3e-2, 2, STEPS, 0.1};
    uint64_t key = 0x6d61736b;
    rng_init(&t->mask_rng, RUN_SEED, rng_stream_id(&key, 1));
}

static void trainer_free(trainer *t) {
    model_acts_free(&t->acts);
    optim_free(&t->opt);
    model_free(&t->m);
}

/* What a resume restores; `restore_rng` / `restore_step` off are the negative controls. */
static void trainer_resume(trainer *t, const char *run_dir, bool restore_rng, bool restore_step) {
    memset(t, 0, sizeof *t);
    ckpt_scan scan;
    pt_error err = {0};
    cr_assert_eq(train_state_find_latest(&scan, run_dir, &err), PT_OK, "%s", err.msg);
    cr_assert(scan.found && scan.step == SAVE_AT);
    train_progress p;
    cr_assert_eq(train_state_load(&t->m, &t->opt, &p, scan.dir, &TS_OPTIM, 0xfeed, false, &err), PT_OK, "%s", err.msg);
    ckpt_scan_free(&scan);
    cr_assert_eq(p.step, SAVE_AT);
    cr_assert_eq(p.n_rngs, 1);
    cr_assert_eq(p.cursor_bytes, sizeof t->cursor);
    cr_assert_eq(model_acts_init(&t->acts, &t->m, RB, RT, &err), PT_OK, "%s", err.msg);
    t->sched = (lr_schedule){LR_SCHEDULE_COSINE, 3e-2, 2, STEPS, 0.1};
    if (restore_rng) {
        t->mask_rng = p.rngs[0];
    } else {
        uint64_t key = 0x6d61736b;
        rng_init(&t->mask_rng, RUN_SEED, rng_stream_id(&key, 1));
    }
    if (!restore_step) t->opt.step = 0;
    memcpy(&t->cursor, p.cursor, sizeof t->cursor);
    train_progress_free(&p);
}

Test(train_state, resume_is_bit_identical, .timeout = 30) {
    char run_dir[] = "/tmp/pt-resume-XXXXXX";
    cr_assert(mkdtemp(run_dir));
    double losses[STEPS];
    trainer a;
    trainer_fresh(&a);
    for (int s = 0; s < STEPS; s++) {
        losses[s] = train_step(&a);
        cr_assert(isfinite(losses[s]));
        if (s + 1 == SAVE_AT) {
            train_progress p = {SAVE_AT, 0xfeed, &a.mask_rng, 1, (unsigned char *)&a.cursor, sizeof a.cursor};
            train_save_options o = {2, 0};
            pt_error err = {0};
            cr_assert_eq(train_state_save(NULL, 0, run_dir, &a.m, &a.opt, &p, &o, &err), PT_OK, "%s", err.msg);
        }
    }
    cr_assert(losses[STEPS - 1] < losses[0] + 1.0, "training diverged (%g → %g)", losses[0], losses[STEPS - 1]);

    trainer b;
    trainer_resume(&b, run_dir, true, true);
    for (int s = SAVE_AT; s < STEPS; s++) {
        double l = train_step(&b);
        cr_assert(memcmp(&l, &losses[s], sizeof l) == 0, "step %d: resumed loss %.17g, uninterrupted %.17g", s + 1, l,
                  losses[s]);
    }
    const size_t n = a.m.layout.total;
    cr_assert_eq(memcmp(b.m.params, a.m.params, n * sizeof(float)), 0, "final parameters differ after resume");
    cr_assert_eq(memcmp(b.opt.m, a.opt.m, n * sizeof(float)), 0, "final first moments differ");
    cr_assert_eq(memcmp(b.opt.v, a.opt.v, n * sizeof(float)), 0, "final second moments differ");
    cr_assert_eq(b.opt.step, a.opt.step);
    trainer_free(&b);

    /* Negative controls: without the RNG or the optimizer step the run must differ. */
    for (int control = 0; control < 2; control++) {
        trainer c;
        trainer_resume(&c, run_dir, control != 0, control != 1);
        int same = 1;
        for (int s = SAVE_AT; s < STEPS; s++) {
            double l = train_step(&c);
            same &= memcmp(&l, &losses[s], sizeof l) == 0;
        }
        same &= memcmp(c.m.params, a.m.params, n * sizeof(float)) == 0;
        cr_assert(!same, "control %d: a resume missing %s reproduced the run; the test cannot see that part", control,
                  control == 0 ? "the RNG state" : "the optimizer step");
        trainer_free(&c);
    }
    trainer_free(&a);
    nftw(run_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
