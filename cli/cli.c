/* cli.c — see cli.h. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int cli_parse(config *cfg, const config_schema *schemas, size_t n, int argc, char **argv, const char *summary) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: posttrain %s [--config FILE] [--key value ...]\n\n%s\n\nkeys:\n", argv[0], summary);
            config_print_help(stdout, schemas, n);
            return -1;
        }
    pt_error err = {0};
    if (config_init(cfg, schemas, n, &err) != PT_OK) return cli_fail(argv[0], &err);
    if (config_load_cli(cfg, argc - 1, argv + 1, &err) != PT_OK) {
        config_free(cfg);
        fprintf(stderr, "posttrain %s: %s\n(see `posttrain %s --help`)\n", argv[0], err.msg, argv[0]);
        return 2;
    }
    return 0;
}

int cli_fail(const char *cmd, const pt_error *err) {
    fprintf(stderr, "posttrain %s: %s\n", cmd, err->msg);
    if (err->status == PT_ERR_INTERNAL && err->file)
        fprintf(stderr, "  (raised at %s:%d — please report this)\n", err->file, err->line);
    return err->status == PT_ERR_CONFIG || err->status == PT_ERR_INVALID ? 2 : 1;
}

const char *cli_require(const config *cfg, const char *cmd, const char *key) {
    const char *v = config_string(cfg, key);
    if (!v || !*v) {
        fprintf(stderr, "posttrain %s: --%s is required\n", cmd, key);
        return NULL;
    }
    return v;
}
