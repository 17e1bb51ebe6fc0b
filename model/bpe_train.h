/* bpe_train.h — train a byte-level BPE tokenizer from text, as `tokenizers`' BpeTrainer does.
 *
 * Words are the pre-tokens of every fed text (DeepSeek-V3's pre-tokenizer by default; special
 * tokens in the text are cut out and not learned); ids are the special tokens in the given order,
 * then the 256 byte characters sorted by code point, then one id per merge. Each step merges the
 * pair with the highest count over all words (count = occurrences weighted by word frequency);
 * ties go to the smallest (left id, right id), which is BpeTrainer's order, so the same corpus and
 * options give the same vocabulary and merges as `tokenizers` (tests/ref/make_tokenizer_fixture.py
 * checks this). Training stops at vocab_size ids or when no pair occurs min_frequency times.
 */
#ifndef POSTTRAIN_MODEL_BPE_TRAIN_H
#define POSTTRAIN_MODEL_BPE_TRAIN_H

#include "model/tokenizer.h"

typedef struct bpe_train_opts {
    size_t vocab_size;                 /* target size: special tokens and the 256 byte characters count */
    const char *const *special_tokens; /* ids 0, 1, ... in this order */
    size_t n_special;
    uint64_t min_frequency;            /* 0: merge while any pair occurs */
    const char *pre_tokenizer;         /* "deepseek-v3" (NULL means this), "digits" (the same, but every
                                          digit its own pre-token, so numbers are digit sequences) or
                                          "gpt2" */
    const char *bos_token, *eos_token, *pad_token; /* for tokenizer_config.json; each a special token or NULL */
    bool add_bos;                      /* the post-processor prepends bos_token (TemplateProcessing) */
    const char *chat_template;         /* Jinja string for tokenizer_config.json, or NULL */
} bpe_train_opts;

typedef struct bpe_trainer bpe_trainer;

/* The options' strings are copied. */
pt_status bpe_trainer_init(bpe_trainer **out, const bpe_train_opts *opts, pt_error *err);
void bpe_trainer_free(bpe_trainer *tr);
/* Count the words of one text (one sequence: regexes never look across texts). */
pt_status bpe_trainer_feed(bpe_trainer *tr, const char *text, size_t len, pt_error *err);
/* A file: *.jsonl gives one text per line from its "text" field (an error names file:line when a
 * line is not a JSON object with a string "text"); any other file gives one text per line, the
 * newline included (as `tokenizers` reads training files). */
pt_status bpe_trainer_feed_file(bpe_trainer *tr, const char *path, pt_error *err);
/* Run the merges and build the tokenizer (which the caller frees). The trainer may then be freed. */
pt_status bpe_trainer_finish(tokenizer **out, bpe_trainer *tr, pt_error *err);

#endif
