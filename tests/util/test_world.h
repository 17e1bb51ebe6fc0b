/* test_world.h — the set-up that tests with a model on disk share: a scratch folder under /tmp,
 * the fixture tokenizer (tests/fixtures/tokenizer) and a model folder that uses it. Each helper
 * fails the calling Criterion test on error, so call sites need no checks of their own. */
#ifndef POSTTRAIN_TESTS_TEST_WORLD_H
#define POSTTRAIN_TESTS_TEST_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "model/tokenizer.h"

/* Creates a fresh folder /tmp/pt-<tag>-XXXXXX and writes its path to out (cap bytes). */
void test_tmpdir(char *out, size_t cap, const char *tag);
/* Removes dir and everything below it (best effort: a missing folder is fine). */
void test_rmtree(const char *dir);
/* The whole file at path (malloc'd, at least one byte allocated; free() it); *n = its size. */
unsigned char *test_slurp(const char *path, size_t *n);
/* The fixture tokenizer, loaded; tokenizer_free() it. */
tokenizer *test_fixture_tokenizer(void);
/* The fixture tokenizer's vocabulary size (tokenizer_n_ids: the embedding rows a model needs). */
int test_fixture_vocab_size(void);
/* Writes a policy model folder dir: the model of config c initialised from seed (model_init), saved
 * unsharded (model_save), plus the fixture tokenizer's files. The caller keeps c. */
void test_save_policy(const char *dir, const model_config *c, uint64_t seed);
/* The small policy most trainer tests use: hidden 32, 2 layers (one dense, one MoE with 4 routed
 * experts, top-2, and 1 shared), MLA with kv_lora 16 and no q_lora, max 128 positions,
 * initializer_range 0.3, BOS 0, EOS 1, no MTP module. Call sites override what they need. */
void test_small_policy_config(model_config *c, int vocab);
/* The FP8 tests' policy: test_small_policy_config widened so that 128×128 weight blocks and
 * 1×128 tiles are exercised (vocab 320, hidden 128, intermediate 256, experts 64, q_lora 64,
 * kv_lora 32, head dims 16), max 256 positions, initializer_range 0.05, router bias speed 0.001. */
void test_fp8_policy_config(model_config *c);

#endif
