/* reward_plugin_crash.c — a test plugin that crashes: scores 1 for every item, except that a
 * completion containing "CRASH" kills the process with SIGSEGV, and one containing "FAIL" is a
 * per-item failure; one containing "PRINT" writes a line to stdout first. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "rewards/plugin_abi.h"

static void *crash_init(const char *config_json, char *err, size_t err_len) {
    (void)config_json, (void)err, (void)err_len;
    static int handle;
    return &handle;
}

static int crash_score(void *handle, const posttrain_reward_item *items, int n, double *scores, unsigned char *status,
                       char *err, size_t err_len) {
    (void)handle, (void)err, (void)err_len;
    for (int i = 0; i < n; i++) {
        if (strstr(items[i].completion, "CRASH")) {
            signal(SIGSEGV, SIG_DFL); /* die of it even where a sanitizer catches SIGSEGV */
            raise(SIGSEGV);
        }
        if (strstr(items[i].completion, "PRINT")) {
            printf("{\"scores\": [7]} a plugin that talks on stdout\n");
            fflush(stdout);
        }
        scores[i] = 1.0;
        status[i] = strstr(items[i].completion, "FAIL") ? POSTTRAIN_REWARD_FAILED : POSTTRAIN_REWARD_SCORED;
    }
    return 0;
}

const posttrain_reward_plugin_v1 posttrain_reward_v1 = {.abi_version = POSTTRAIN_REWARD_ABI_VERSION,
                                                        .struct_size = sizeof(posttrain_reward_plugin_v1),
                                                        .name = "crash",
                                                        .init = crash_init,
                                                        .score = crash_score,
                                                        .free = NULL};
