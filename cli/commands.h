/* commands.h — the subcommand table: each cli/cmd_*.c defines one entry point. */
#ifndef POSTTRAIN_CLI_COMMANDS_H
#define POSTTRAIN_CLI_COMMANDS_H

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit code */
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_grpo(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_rejection_sample(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif
