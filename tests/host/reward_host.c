/* reward_host.c — `posttrain reward-host` as its own small binary (<build>/tests/reward-host),
 * so that the tests can start it as a subprocess reward's command without the CLI. */
#include "rewards/reward_host.h"

int main(int argc, char **argv) { return reward_host_main(argc, argv); }
