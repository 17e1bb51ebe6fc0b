/* fp8_gap.h — `make bench ARGS="fp8 ..."`: the fp32 vs fp8 SFT loss gap (sft/sft_fp8_gap.h),
 * printed as tables. See bench_fp8_gap in fp8_gap.c for the arguments. */
#ifndef POSTTRAIN_TESTS_BENCH_FP8_GAP_H
#define POSTTRAIN_TESTS_BENCH_FP8_GAP_H

/* argv[at] is "fp8"; the arguments after it are parsed. Returns the process exit code. */
int bench_fp8_gap(int argc, char **argv, int at);

#endif
