/* cli.h — what every subcommand shares: option parsing against a schema, `--help`, and turning
 * a pt_error into a message and an exit code (only cli/ exits). */
#ifndef POSTTRAIN_CLI_CLI_H
#define POSTTRAIN_CLI_CLI_H

#include "core/config.h"
#include "core/error.h"

/* Builds cfg from the schemas and argv (argv[0] is the subcommand): `--config FILE` first, then
 * the other `--key value` options. Returns 0 to go on, -1 after printing --help (exit 0), or 2
 * after printing what is wrong with the options. */
int cli_parse(config *cfg, const config_schema *schemas, size_t n, int argc, char **argv, const char *summary);
/* Prints "posttrain <cmd>: <message>" and returns the exit code for the status. */
int cli_fail(const char *cmd, const pt_error *err);
/* A required string key: prints an error and returns NULL when it is null or empty. */
const char *cli_require(const config *cfg, const char *cmd, const char *key);

#endif
