/* record.h — one JSON record of a dataset: parsed (cJSON), checked against a shape, and taken
 * apart into the fields tokenisation needs, or rejected with a reason, a field and a message.
 *
 * Order of checks (the first failure is reported): the bytes parse as one JSON object (no NUL
 * byte, no "\u0000" escape, which cJSON would silently cut the string at); every string and key
 * is well-formed UTF-8 (Unicode Table 3-7), reported with its path (messages[1].content); the
 * record has the file's shape (a record that has none of the shape's required fields but fits
 * another shape is "mixed", which the caller treats as a hard error); each field has its type
 * and is non-empty where emptiness means nothing to train on.
 *
 * Invariants: a good record's chat_message strings and raw spans point into r->root and the
 * text handed to record_parse, so both must outlive it; member spans are in file order and
 * match the cJSON children one to one (cJSON keeps members, duplicates included, in order).
 */
#ifndef POSTTRAIN_DATASETS_RECORD_H
#define POSTTRAIN_DATASETS_RECORD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "datasets/dataset.h"
#include "model/chat_template.h"

typedef struct record_bad {
    dataset_bad_reason reason;
    bool mixed;           /* the record has another shape than the file's: never skippable */
    char field[96];       /* the field path, "" for the record as a whole */
    char msg[224];        /* what is wrong, without location */
} record_bad;

/* A field that is a string or a list of messages. */
typedef struct record_part {
    bool present;
    bool is_chat;           /* a list of messages */
    const char *text;       /* the string (NUL-terminated, inside the cJSON tree) */
    chat_message *msgs;     /* (n_msgs) for a list; strings inside the cJSON tree */
    size_t n_msgs;
    size_t raw_start, raw_end; /* the field's JSON value in the record text */
} record_part;

typedef struct record_member {
    const char *name;       /* inside the cJSON tree */
    size_t raw_start, raw_end;
} record_member;

typedef struct record {
    cJSON *root;
    dataset_format format;
    record_part text, prompt, completion, messages, chosen, rejected;
    record_member *members; /* (n_members) top-level members in file order */
    size_t n_members;
} record;

/* Parse text[0..len) (NUL-terminated at len) as a record of shape `want` (AUTO: whichever shape
 * it has). *good tells whether it is a valid record; when not, *bad says why and r holds nothing.
 * Only out-of-memory is an error. */
pt_status record_parse(record *r, bool *good, record_bad *bad, const char *text, size_t len, dataset_format want,
                       pt_error *err);
void record_free(record *r);

/* The shape a parsed object has by its keys (see dataset.h), or AUTO when none. */
dataset_format record_detect(const cJSON *root);

/* Index of the first byte of s[0..n) that is not part of a well-formed UTF-8 sequence, or n. */
size_t record_utf8_check(const unsigned char *s, size_t n);

#endif
