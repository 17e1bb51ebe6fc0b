/* dataset.h — training data in the shapes TRL users already have, from JSONL files or a SQLite
 * query, validated, tokenised into sequences with a loss mask, and reported when bad.
 *
 * Shapes (one per file: given by `format`, or detected from the first valid record):
 *   text               {"text": str}                                    SFT, language modelling
 *   prompt_completion  {"prompt": str|messages, "completion": str|messages}    SFT
 *   messages           {"messages": [{"role", "content"}, ...]}         SFT, conversational
 *   prompt             {"prompt": str|messages, ...any columns}         GRPO; every other column is
 *                      kept verbatim as JSON text and handed to reward functions
 *   preference         {"prompt"?: str|messages, "chosen": ..., "rejected": ...}   reward models
 * Other keys of the SFT and preference shapes are ignored (TRL drops them too). Detection looks
 * for messages, then chosen+rejected, then prompt+completion, then text, then prompt: a GRPO file
 * whose rows also carry a "completion" or "text" column must say format "prompt".
 *
 * Tokenisation, as TRL's SFTTrainer / GRPOTrainer / RewardTrainer do it:
 *   text               BOS + text + EOS (EOS only when the text does not already end with it);
 *                      loss on every token.
 *   prompt_completion  string: encode(prompt) with BOS, then encode(completion) + EOS.
 *                      conversational: the chat template renders prompt + completion messages.
 *                      Loss on the completion tokens (completion_only_loss, default true); with
 *                      completion_only_loss false, on every token.
 *   messages           the chat template's render; loss on every token, or with
 *                      assistant_only_loss on the assistant spans (content + end marker) only.
 *   prompt             string: encode(prompt) with BOS, as the prompt of prompt_completion data
 *                      (TRL's GRPOTrainer passes add_special_tokens=False here, so a model
 *                      fine-tuned on string prompts would be sampled from a start it never saw);
 *                      conversational: the render with the generation prompt (the template
 *                      carries BOS). No loss mask.
 *   preference         two sequences, prompt+chosen and prompt+rejected, each as prompt_completion.
 * One deliberate difference from TRL: a string prompt and its completion are encoded separately
 * and concatenated (TRL encodes prompt + completion together and masks by the prompt's token
 * count). The loss boundary is then exact, and SFT sees the prompt/completion boundary
 * tokenised the way a rollout produces it (prompt ids, then generated ids).
 * With both completion_only_loss and assistant_only_loss set, the mask is their product (as TRL).
 *
 * Truncation (per sequence, after EOS is appended; max_length 0 = no limit): right keeps the
 * first max_length tokens (TRL's SFT default), left keeps the last ones (TRL's GRPO prompt rule),
 * error rejects the example as a bad record. The default is right for SFT and preference shapes
 * and left for prompt.
 *
 * Bad records — malformed JSON, wrong types, missing fields, empty text/completions, examples
 * over max_length under truncation "error", invalid UTF-8 — give an error naming the file, the
 * line and the field:  train.jsonl:17: field 'completion': expected a string, got number
 * With on_bad_line "skip" they are skipped and counted per reason (dataset_skip_report). A
 * record of another shape than the file's is an error in both modes (a file is one shape).
 *
 * Memory: opening reads the source once (validating and tokenising every record) and keeps only
 * an index entry per record (offset, size, line, token count); records are re-read and
 * re-tokenised when asked for. A JSONL file is therefore streamed; a SQLite query's rows are held
 * in memory as JSON text (they are rollouts, not corpora).
 *
 * Threads: a dataset uses its tokenizer's scratch encoder; use one dataset from one thread.
 */
#ifndef POSTTRAIN_DATASETS_DATASET_H
#define POSTTRAIN_DATASETS_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/tokenizer.h"

typedef struct dataset dataset;

typedef enum dataset_format {
    DATASET_FORMAT_AUTO,
    DATASET_FORMAT_TEXT,
    DATASET_FORMAT_PROMPT_COMPLETION,
    DATASET_FORMAT_MESSAGES,
    DATASET_FORMAT_PROMPT,
    DATASET_FORMAT_PREFERENCE,
} dataset_format;

typedef enum dataset_on_bad { DATASET_ON_BAD_ERROR, DATASET_ON_BAD_SKIP } dataset_on_bad;

typedef enum dataset_truncation {
    DATASET_TRUNCATE_AUTO, /* right for SFT and preference, left for prompt */
    DATASET_TRUNCATE_RIGHT,
    DATASET_TRUNCATE_LEFT,
    DATASET_TRUNCATE_ERROR,
} dataset_truncation;

/* Why a record was rejected; skips are counted per reason. */
typedef enum dataset_bad_reason {
    DATASET_BAD_JSON,     /* not parseable JSON, not an object, a NUL byte */
    DATASET_BAD_TYPE,     /* a field of the wrong JSON type */
    DATASET_BAD_MISSING,  /* a required field is absent */
    DATASET_BAD_EMPTY,    /* empty text, completion, prompt, messages list, or nothing to train on */
    DATASET_BAD_TOO_LONG, /* over max_length tokens with truncation "error" */
    DATASET_BAD_UTF8,     /* a string that is not well-formed UTF-8 */
    DATASET_BAD_MESSAGE,  /* a message the chat template cannot render (role, structure) */
    DATASET_BAD_COUNT
} dataset_bad_reason;

typedef struct dataset_options {
    dataset_format format;         /* AUTO: detected from the first valid record */
    dataset_on_bad on_bad_line;    /* error (default) or skip */
    dataset_truncation truncation; /* AUTO (default), right, left, error */
    size_t max_length;             /* tokens per sequence; 0 = no limit (default 1024, as TRL) */
    int completion_only_loss;      /* -1 (default): true; 0/1 */
    bool assistant_only_loss;      /* default false */
    const char *chat_format;       /* "deepseek-v3" | "deepseek-r1" | "plain", or NULL: the tokenizer's */
    bool keep_final_think;         /* deepseek-r1: keep the <think> part of the last assistant message */
} dataset_options;

void dataset_options_default(dataset_options *o);
/* Parse the config spellings: "auto" | "text" | "prompt_completion" | "messages" | "prompt" |
 * "preference";  "error" | "skip";  "auto" | "right" | "left" | "error". PT_ERR_CONFIG lists them. */
pt_status dataset_format_parse(dataset_format *out, const char *name, pt_error *err);
pt_status dataset_on_bad_parse(dataset_on_bad *out, const char *name, pt_error *err);
pt_status dataset_truncation_parse(dataset_truncation *out, const char *name, pt_error *err);
const char *dataset_format_name(dataset_format f);
const char *dataset_bad_reason_name(dataset_bad_reason r);

/* A tokenised sequence. loss[i] = 1 when token i is trained on (it is the target of position
 * i − 1); loss[0] is never used as a target. */
typedef struct dataset_seq {
    int32_t *ids;     /* (n) */
    uint8_t *loss;    /* (n) the loss mask */
    size_t n;
    size_t n_prompt;  /* prompt tokens at the start (prompt_completion, preference); else 0 */
    size_t truncated; /* tokens removed by truncation */
} dataset_seq;

/* A column of a prompt-shape record other than "prompt": its name and its JSON value verbatim. */
typedef struct dataset_column {
    char *name;
    char *json;
} dataset_column;

typedef struct dataset_example {
    size_t index;         /* position in the dataset (0 .. dataset_size − 1) */
    uint64_t line;        /* 1-based line of the JSONL file, or row of the SQLite result */
    dataset_format format;
    dataset_seq seq;      /* SFT: the training sequence; prompt: the prompt; preference: chosen */
    dataset_seq rejected; /* preference: prompt + rejected; else empty */
    char *prompt_text;    /* prompt: what the policy continues (the render with the generation
                             prompt, or the prompt string); NULL for other shapes */
    char *prompt_json;    /* prompt: the prompt field verbatim (a JSON string or list) */
    dataset_column *columns; /* (n_columns) prompt: every other column, in file order */
    size_t n_columns;
} dataset_example;

void dataset_example_free(dataset_example *ex);
/* *out (replaced, malloc'd) = the example's columns as one JSON object {"name": value, ...}:
 * values verbatim, names JSON-escaped; "{}" when there are none. What rewards read as columns. */
pt_status dataset_columns_json(char **out, const dataset_example *ex, pt_error *err);

/* What skip mode left out (all zero in error mode). */
typedef struct dataset_skips {
    size_t total;                                /* records skipped */
    size_t by_reason[DATASET_BAD_COUNT];
    char first[DATASET_BAD_COUNT][320];          /* the first message of each reason */
    size_t blank_lines;                          /* whitespace-only lines (ignored, not errors) */
} dataset_skips;

/* Open a JSONL file and index it (see the file comment). tok must outlive the dataset. opts may
 * be NULL (defaults). */
pt_status dataset_open_jsonl(dataset **out, const char *path, tokenizer *tok, const dataset_options *opts,
                             pt_error *err);
/* Run `sql` on the SQLite database db_path (opened read-only) and use each result row as a
 * record whose fields are the result columns: TEXT → string, INTEGER / REAL → number, NULL →
 * null, BLOB → a bad record. A column named <name>_json holding valid JSON becomes the field
 * <name> with that JSON value (invalid JSON there is a bad record). Errors name "<db>:row N". */
pt_status dataset_open_sqlite(dataset **out, const char *db_path, const char *sql, tokenizer *tok,
                              const dataset_options *opts, pt_error *err);
void dataset_free(dataset *ds);

size_t dataset_size(const dataset *ds);          /* records accepted */
dataset_format dataset_get_format(const dataset *ds); /* the detected or given shape */
const char *dataset_label(const dataset *ds);    /* the path used in messages */
/* Token count of record i's sequence (the longer of chosen / rejected for preference). */
size_t dataset_tokens(const dataset *ds, size_t i);
size_t dataset_max_tokens(const dataset *ds);
uint64_t dataset_line(const dataset *ds, size_t i);
/* A hash of the index (offsets, sizes, lines, token counts): changes when the data does. */
uint64_t dataset_fingerprint(const dataset *ds);
int32_t dataset_eos_id(const dataset *ds);

/* Read, validate and tokenise record i into *ex (freed first if it holds anything: pass a
 * zeroed example the first time). An error here means the source changed after opening. */
pt_status dataset_get(dataset_example *ex, dataset *ds, size_t i, pt_error *err);

const dataset_skips *dataset_skip_stats(const dataset *ds);
/* A human-readable account of the skipped records ("" when none), for the trainer to print at
 * the end of a run; returns the length snprintf would have written. */
size_t dataset_skip_report(char *buf, size_t len, const dataset *ds);

#endif
