/* reward_plugin_no_symbol.c — a test plugin that exports no posttrain_reward_v1: posttrain must
 * refuse it with a message naming the file and the missing symbol. */
int posttrain_reward_v0 = 1;
