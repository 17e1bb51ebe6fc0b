/* reward_host.h — any reward served over the `subprocess` reward's JSON-lines protocol
 * (rewards/reward_subprocess.c), so that a reward which may crash — a C plugin above all — runs
 * in its own process and a crash costs one batch instead of the trainer:
 *
 *     {"name": "kw", "type": "subprocess",
 *      "command": ["posttrain", "reward-host", "{\"type\": \"plugin\", \"path\": \"./kw.so\"}"]}
 *
 * The subprocess reward restarts the host after a crash, and a timeout kills it. The host
 * creates the reward from the config given as its argument (any built-in type), then answers each
 * request line {"items": [...]} with {"scores": [...], "reasons": [...], "errors": [...]}: a
 * scored item is its number; a masked one null with its reason; one the reward failed on null
 * with its reason and errors[i] true (so the trainer counts it as an error, not a mask). A
 * request it cannot read, or a batch-level failure, is answered {"error": "..."}, which keeps
 * the two processes in step. End of input ends the host (exit 0). A config the reward refuses
 * is reported on stderr before any request is read (exit 2). What the reward itself prints to
 * stdout goes to stderr, so it cannot break the protocol.
 */
#ifndef POSTTRAIN_REWARDS_REWARD_HOST_H
#define POSTTRAIN_REWARDS_REWARD_HOST_H

#include <stdio.h>

#include "core/error.h"

/* Serves the reward of cfg_json (a JSON object text) on in/out until in ends. PT_OK at end of
 * input; the reward's creation error, or PT_ERR_IO when out cannot be written. */
pt_status reward_host_serve(const char *cfg_json, FILE *in, FILE *out, pt_error *err);

/* `reward-host CONFIG_JSON` on stdin/stdout; returns the exit code (0, 1 on a write failure, 2
 * on bad arguments or a refused config), with the message on stderr. */
int reward_host_main(int argc, char **argv);

#endif
