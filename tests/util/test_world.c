/* test_world.c — see test_world.h. */
#include "tests/util/test_world.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "sft/sft_files.h"
#include "tests/util/check.h"

unsigned char *test_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_geq(size, 0, "%s: %s", path, strerror(errno));
    rewind(f);
    unsigned char *b = malloc(size > 0 ? (size_t)size : 1);
    cr_assert(b);
    cr_assert_eq(fread(b, 1, (size_t)size, f), (size_t)size, "%s: short read", path);
    fclose(f);
    *n = (size_t)size;
    return b;
}

void test_tmpdir(char *out, size_t cap, const char *tag) {
    int n = snprintf(out, cap, "/tmp/pt-%s-XXXXXX", tag);
    cr_assert(n > 0 && (size_t)n < cap, "test_tmpdir: buffer of %zu bytes is too small for tag '%s'", cap, tag);
    cr_assert(mkdtemp(out), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void test_rmtree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

tokenizer *test_fixture_tokenizer(void) {
    char dir[1024];
    tokenizer *tok = NULL;
    pt_error err = {0};
    cr_assert_eq(tokenizer_load(&tok, fixture_path(dir, sizeof dir, "tokenizer"), &err), PT_OK, "%s", err.msg);
    return tok;
}

int test_fixture_vocab_size(void) {
    tokenizer *tok = test_fixture_tokenizer();
    int n = (int)tokenizer_n_ids(tok);
    tokenizer_free(tok);
    return n;
}

void test_save_policy(const char *dir, const model_config *c, uint64_t seed) {
    char tok_dir[1024];
    fixture_path(tok_dir, sizeof tok_dir, "tokenizer");
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_init(&m, c, seed, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_save(&m, dir, 0, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(sft_copy_tokenizer_files(dir, tok_dir, &err), PT_OK, "%s", err.msg);
    model_free(&m);
}

void test_small_policy_config(model_config *c, int vocab) {
    model_config_init(c);
    c->vocab_size = vocab;
    c->hidden_size = 32;
    c->intermediate_size = 64;
    c->moe_intermediate_size = 16;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 2;
    c->n_shared_experts = 1;
    c->n_routed_experts = 4;
    c->routed_scaling_factor = 1.0;
    c->kv_lora_rank = 16;
    c->q_lora_rank = 0;
    c->qk_rope_head_dim = 8;
    c->qk_nope_head_dim = 8;
    c->v_head_dim = 8;
    c->n_group = 1;
    c->topk_group = 1;
    c->num_experts_per_tok = 2;
    c->first_k_dense_replace = 1;
    c->norm_topk_prob = true;
    c->max_position_embeddings = 128;
    c->initializer_range = 0.3;
    c->bos_token_id = 0;
    c->eos_token_ids[0] = 1;
    c->n_eos_token_ids = 1;
    c->num_nextn_predict_layers = 0;
}

void test_fp8_policy_config(model_config *c) {
    test_small_policy_config(c, 320);
    c->hidden_size = 128;
    c->intermediate_size = 256;
    c->moe_intermediate_size = 64;
    c->kv_lora_rank = 32;
    c->q_lora_rank = 64;
    c->qk_rope_head_dim = 16;
    c->qk_nope_head_dim = 16;
    c->v_head_dim = 16;
    c->max_position_embeddings = 256;
    c->initializer_range = 0.05;
    c->posttrain_bias_update_speed = 0.001;
}
