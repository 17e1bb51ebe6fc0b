/* config.h — a run's configuration: one JSON file plus `--key value` overrides, checked against a
 * schema that each subcommand declares.
 *
 * A schema is an array of config_key {key, type, def, help}. `def` is the default as JSON text
 * ("3e-4", "\"cosine\"", "true", "[]"); a default of "null" (or a NULL pointer) makes the key
 * nullable: null is then accepted from the file and the string "null" from the command line.
 * Several schema arrays combine into one config (common keys + sft keys); a key may appear in
 * only one of them. Keys are lower-case [a-z0-9_]; on the command line '-' and '_' are the same
 * (`--learning-rate 1e-5` sets `learning_rate`), in the JSON file keys are written exactly.
 *
 * Sources apply in call order and later ones win: defaults, then config_load_file /
 * config_load_string, then config_apply_args. Each load is atomic: on error the config is left
 * exactly as it was. Errors are PT_ERR_CONFIG (PT_ERR_IO for an unreadable file) with a message
 * for the user: "run.json:3:17: invalid JSON near '...': <reason>", "run.json:4: unknown key
 * 'lerning_rate' (did you mean 'learning_rate'?)", "run.json:5: key 'batch_size' expects an
 * integer, got string \"32\"". Type rules: an integer key takes a whole number within int64
 * (2.5 is an error; 1e4 is 10000); a float key takes any finite number (an integer is fine);
 * a bool key takes true/false; a string key a string; a JSON key any JSON value. Duplicate keys
 * in a file (at any depth) are rejected, as is anything but an object at the top level.
 *
 * Getters take a key from the schema. Asking for a key that is not in the schema, with the wrong
 * getter for its type (config_int on a float key), or config_int/float/bool on a value that is
 * null, is a bug in the caller: the getter prints the key to stderr and calls abort().
 *
 * config_to_json prints the resolved config (every key, in schema order, defaults filled in);
 * its hash is FNV-1a 64 over the unformatted print of the same object (cJSON_PrintUnformatted,
 * keys in schema order, integers printed exactly), so equal values give equal hashes whatever
 * the source and formatting, and loading the printed JSON back reproduces values and hash.
 */
#ifndef POSTTRAIN_CORE_CONFIG_H
#define POSTTRAIN_CORE_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef enum config_type {
    CONFIG_INT,    /* int64_t */
    CONFIG_FLOAT,  /* double, finite */
    CONFIG_BOOL,   /* true / false; `--flag`, `--no-flag` on the command line */
    CONFIG_STRING, /* UTF-8 text */
    CONFIG_JSON,   /* any JSON value: lists and objects such as a rewards list */
} config_type;

typedef struct config_key {
    const char *key;  /* lower-case [a-z0-9_], starting with a letter */
    config_type type;
    const char *def;  /* default as JSON text; "null" (or NULL) makes the key nullable */
    const char *help; /* one sentence or two for --help */
} config_key;

/* One schema array; a config combines several. */
typedef struct config_schema {
    const config_key *keys;
    size_t count;
} config_schema;

#define CONFIG_SCHEMA(arr) ((config_schema){(arr), sizeof(arr) / sizeof((arr)[0])})

struct config_entry; /* private: a key's default, value and origin */

typedef struct config {
    struct config_entry *entries; /* (n_keys), in schema order */
    size_t n_keys;
} config;

/* Builds the config from schemas (in order) with every key at its default. A broken schema
 * (bad key name, key given twice, default that is not valid JSON of the key's type) is a bug:
 * PT_ERR_INTERNAL naming the key. On error nothing needs freeing. */
pt_status config_init(config *cfg, const config_schema *schemas, size_t n_schemas, pt_error *err);
void config_free(config *cfg);

/* Applies a JSON file; `path` names it in messages. */
pt_status config_load_file(config *cfg, const char *path, pt_error *err);
/* Applies JSON text (NUL-terminated); `name` stands for the file in messages. */
pt_status config_load_string(config *cfg, const char *text, const char *name, pt_error *err);
/* Applies `--key value`, `--key=value`, `--flag`, `--no-flag` (bool keys; `--flag false` too).
 * argv holds only options (no program or subcommand name); a positional or malformed argument
 * is an error naming it. A value for a non-bool key is always the next argument, so negative
 * numbers work (`--beta -0.1`). A later repetition of a key wins. */
pt_status config_apply_args(config *cfg, int argc, char **argv, pt_error *err);
/* What a subcommand usually wants: `--config FILE` (or `--config=FILE`, at most once, anywhere)
 * is loaded first, then every other argument is applied as by config_apply_args. */
pt_status config_load_cli(config *cfg, int argc, char **argv, pt_error *err);

/* Typed getters; see the file comment for what aborts. */
int64_t config_int(const config *cfg, const char *key);
double config_float(const config *cfg, const char *key);
bool config_bool(const config *cfg, const char *key);
const char *config_string(const config *cfg, const char *key); /* NULL when null */
const cJSON *config_json(const config *cfg, const char *key);    /* any type; owned by cfg */
bool config_is_null(const config *cfg, const char *key);
bool config_is_set(const config *cfg, const char *key); /* given by a file or an argument */
/* Where the value came from, for messages: "run.json:5", "--learning-rate" or "default". */
const char *config_origin(const config *cfg, const char *key);
/* Whether key is in the schema (never aborts). */
bool config_has(const config *cfg, const char *key);

/* Checked getters for a subcommand's option validation; each fails with PT_ERR_CONFIG and leaves
 * *out untouched on error. The range checks are inclusive unless said otherwise. */
/* Always fails: "key 'k' (from ORIGIN): <message>", ORIGIN as config_origin gives it. */
pt_status config_bad_key(pt_error *err, const config *cfg, const char *key, const char *fmt, ...) PT_PRINTF(4, 5);
/* *out = the integer key, which must be in lo..hi: "key 'k' (from ...): must be in 1..8, got 9". */
pt_status config_int_in(int64_t *out, const config *cfg, const char *key, int64_t lo, int64_t hi, pt_error *err);
/* *out = the float key, which must be in [lo, hi], or [lo, hi) when hi_open (NaN never is):
 * "key 'k' (from ...): must be in [0, 1), got 1". */
pt_status config_float_in(double *out, const config *cfg, const char *key, double lo, double hi, bool hi_open,
                          pt_error *err);
/* *out = the string key, which must be non-null and non-empty:
 * "--k is required (or \"k\" in the config file)". */
pt_status config_required(const char **out, const config *cfg, const char *key, pt_error *err);
/* Returns st; when it is an error, prefixes err's message with "key 'k' (from ORIGIN)", for a
 * parse function's error about the key's value. */
pt_status config_keyed(pt_status st, pt_error *err, const config *cfg, const char *key);

/* *json = the resolved config, pretty-printed (malloc'd; free() it); *hash = its FNV-1a 64
 * hash (see the file comment). Either output may be NULL. */
pt_status config_to_json(char **json, uint64_t *hash, const config *cfg, pt_error *err);

/* *hash = the hash of a run's config for checkpoints: FNV-1a 64 over the unformatted resolved
 * config without the keys in skip (where files go, how often to log or save: keys that do not
 * change what a step computes) and without the keys in skip_at_default while they hold their
 * default value (keys added later, so that checkpoints written before them keep their hash). */
pt_status config_hash_except(uint64_t *hash, const config *cfg, const char *const *skip, size_t n_skip,
                             const char *const *skip_at_default, size_t n_skip_at_default, pt_error *err);

/* Every key of every schema: `--key TYPE (default ...)` and its help text, wrapped. */
void config_print_help(FILE *out, const config_schema *schemas, size_t n_schemas);

#endif
