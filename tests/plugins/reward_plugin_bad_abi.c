/* reward_plugin_bad_abi.c — a test plugin that claims ABI version 99: posttrain must refuse it
 * with a message naming the file and both versions, without calling any of its functions. */
#include <stdlib.h>

#include "rewards/plugin_abi.h"

static void *never_init(const char *config_json, char *err, size_t err_len) {
    (void)config_json, (void)err, (void)err_len;
    abort(); /* reaching this is the bug the test looks for */
}

const posttrain_reward_plugin_v1 posttrain_reward_v1 = {
    .abi_version = 99,
    .struct_size = sizeof(posttrain_reward_plugin_v1),
    .name = "bad-abi",
    .init = never_init,
};
