/* reward_file.h — a reward set from a rewards file, the one format every command reads:
 *
 *   [ {"name": "answer", "type": "countdown", "weight": 1.0, ...}, ... ]
 * or
 *   { "rewards": [ ... ], "max_error_rate": 0.1, "error_window": 512, "error_min_items": 32 }
 *
 * Errors name the file, and the line and column of a JSON syntax error.
 */
#ifndef POSTTRAIN_REWARDS_REWARD_FILE_H
#define POSTTRAIN_REWARDS_REWARD_FILE_H

#include <stdint.h>

#include "rewards/reward.h"

/* Builds *set from the file at path. max_error_rate ≥ 0 overrides the file's (and the default);
 * pass a negative value to keep them. When hash is not NULL the file's bytes are folded into
 * *hash with FNV-1a 64 (so a run's config hash covers its rewards). */
pt_status reward_set_load_file(reward_set *set, const char *path, double max_error_rate, uint64_t *hash,
                               pt_error *err);

#endif
