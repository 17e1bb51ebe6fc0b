/* main.c — the posttrain binary: a dispatcher over subcommands, one file each in cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "rewards/reward_host.h"

static const cli_command COMMANDS[] = {
    {"info", "show how this binary was built and which backends it can use", cmd_info},
    {"init", "write a randomly initialised model folder from a config.json", cmd_init},
    {"logits", "run one forward pass over token ids and write the logits", cmd_logits},
    {"serve", "OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions) on a model", cmd_serve},
    {"generate", "sample completions (G per prompt) with the rollout engine; chat on a terminal", cmd_generate},
    {"data", "make built-in task data (countdown, arithmetic, instructions) or inspect a JSONL file", cmd_data},
    {"tokenizer", "train a byte-level BPE tokenizer, or encode / decode with one", cmd_tokenizer},
    {"sft", "supervised fine-tuning on JSONL data, with checkpoints and exact resume", cmd_sft},
    {"sample", "generate a completion for a prompt (or a JSONL file's prompts) from a model folder", cmd_sample},
    {"score", "score completions (JSONL) with a reward set and print each reward's column and the total", cmd_score},
    {"grpo", "GRPO reinforcement learning on prompts scored by a reward set, with checkpoints and exact resume", cmd_grpo},
    {"rm", "train a reward model (scalar head, Bradley-Terry loss) on {prompt, chosen, rejected} pairs", cmd_rm},
    {"eval", "held-out evaluation: mean reward, accuracy and pass@k of a model on prompts, by a reward set", cmd_eval},
    {"rejection-sample", "sample N per prompt, keep the ones the rewards accept, write them as an SFT dataset",
     cmd_rejection_sample},
    {"report", "one self-contained HTML report (charts, sample rollouts) from a run directory's run store", cmd_report},
    {"convert", "rewrite a model folder with fp8 (DeepSeek's FP8 release format) or fp32 weights", cmd_convert},
    {"reward-host", "serve one reward (e.g. a C plugin) to a subprocess reward, so that a crash stays in its process",
     reward_host_main},
};
static const int NCOMMANDS = (int)(sizeof COMMANDS / sizeof COMMANDS[0]);

static void usage(FILE *out) {
    fprintf(out, "usage: posttrain <command> [--config FILE] [--key value ...]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "this list; `posttrain <command> --help` lists a command's keys");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "posttrain: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
