# posttrain — build, test and benchmark.
#
#   make            build ./posttrain (CPU; CUDA too when nvcc is found)
#   make test       install missing libraries, build and run the unit tests
#   make test-long  the slow checks
#   make bench      kernel benchmarks (ratios against this machine's own sgemm ceiling)
#   make sanitize   the unit tests under ASan + UBSan (same as SANITIZE=1 make test)
#   make demo       the runnable demo: data, tokenizer, tiny MoE, SFT (about 5 minutes)
#   make fuzz       libFuzzer on the safetensors and config.json parsers (FUZZ_SECONDS each)
#
# Knobs: NATIVE=1 (-O3 -march=native), CUDA=0/1 (default: 1 when nvcc is found),
#        SANITIZE=1, BUILD=dir, SRCS=... / TESTS=... (build a subset while developing).

# Libraries are installed on first use, so every public target first runs scripts/deps.sh and
# then re-enters make with PT_DEPS=1, when pkg-config can see them.
ifndef PT_DEPS

GOALS := $(filter-out deps clean,$(or $(MAKECMDGOALS),all))
.PHONY: $(GOALS) deps clean
$(GOALS): deps
	@$(MAKE) --no-print-directory PT_DEPS=1 $@
deps:
	@scripts/deps.sh
clean:
	rm -rf build build-san build-fuzz posttrain

else

SANITIZE ?= 0
NATIVE   ?= 0
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA     ?= $(if $(NVCC),1,0)
ifeq ($(SANITIZE),1)
  BUILD  ?= build-san
  CUDA   := 0
else
  BUILD  ?= build
endif

CC       ?= cc
PKGS     := libcjson libpcre2-8 sqlite3 libcurl openblas libmicrohttpd
CFLAGS   := -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Wshadow -Wno-unused-parameter -fopenmp -I. \
            -DPT_SOURCE_DIR='"$(CURDIR)"' $(shell pkg-config --cflags $(PKGS))
LDLIBS   := $(shell pkg-config --libs $(PKGS)) -lm -lpthread -ldl
LDFLAGS  := -fopenmp
ifeq ($(NATIVE),1)
  CFLAGS += -O3 -march=native
else
  CFLAGS += -O2
endif
ifeq ($(SANITIZE),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  # Leaks inside libcriterion itself are not ours (tests/lsan.supp).
  SAN_ENV := LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
endif

# Everything but cli/ goes into one static library; the binary, tests and benchmarks link it.
LIBDIRS  := core kernels model datasets rollout rewards sft grpo
SRCS     ?= $(foreach d,$(LIBDIRS),$(wildcard $(d)/*.c))
CLI_SRCS := $(wildcard cli/*.c)
TESTS    ?= $(wildcard tests/test_*.c)
LONG     := $(wildcard tests/long/test_*.c)
TESTLIB  := $(wildcard tests/util/*.c)
# Reward plugins the tests dlopen (built beside the test binary).
PLUGINS  := $(patsubst tests/plugins/%.c,$(BUILD)/tests/plugins/%.so,$(wildcard tests/plugins/*.c))
BENCH    := $(wildcard tests/bench/*.c)
# `posttrain reward-host` for the tests, which start it as a subprocess reward's command.
HOST     := $(BUILD)/tests/reward-host
CU_SRCS  := $(wildcard kernels/cuda/*.cu)

ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CFLAGS    += -DPT_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
  NVFLAGS   := -O3 -arch=sm_90 -std=c++17 -I. -Xcompiler -fPIC,-Wall
  CU_OBJS   := $(CU_SRCS:%.cu=$(BUILD)/%.o)
endif

OBJS      := $(SRCS:%.c=$(BUILD)/%.o) $(CU_OBJS)
LIB       := $(BUILD)/libposttrain.a
BIN       := posttrain
DEPFILES  := $(OBJS:.o=.d) $(CLI_SRCS:%.c=$(BUILD)/%.d) $(TESTS:%.c=$(BUILD)/%.d) \
             $(LONG:%.c=$(BUILD)/%.d) $(TESTLIB:%.c=$(BUILD)/%.d) $(BENCH:%.c=$(BUILD)/%.d) \
             $(BUILD)/tests/host/reward_host.d

.PHONY: all test test-long bench sanitize clean features fuzz demo
.DEFAULT_GOAL := all

all: features $(BIN)

features:
	@if [ "$(CUDA)" = 1 ]; then echo "  ✓ CUDA       $$($(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') (sm_90, cuBLAS, cuBLASLt)"; \
	 elif [ "$(SANITIZE)" = 1 ]; then echo "  ✗ CUDA       off in sanitizer builds"; \
	 else echo "  ✗ CUDA       nvcc not found (CPU build only; set CUDA=1 and NVCC=... to force)"; fi
	@echo "  ✓ OpenMP     $(CC) -fopenmp"
	@if [ "$(SANITIZE)" = 1 ]; then echo "  ✓ sanitizers ASan + UBSan"; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(LIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $^

# The binary is linked with g++'s runtime only when CUDA objects need it.
LINK := $(CC)
ifeq ($(CUDA),1)
  LDLIBS += -lstdc++
endif

$(BIN): $(CLI_SRCS:%.c=$(BUILD)/%.o) $(LIB)
	$(LINK) $(LDFLAGS) -o $@ $^ $(LDLIBS)

TEST_LIBS := $(LDLIBS) $(shell pkg-config --libs criterion)

$(BUILD)/tests/unit: $(TESTS:%.c=$(BUILD)/%.o) $(TESTLIB:%.c=$(BUILD)/%.o) $(LIB)
	$(LINK) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

$(BUILD)/long-tests: $(LONG:%.c=$(BUILD)/%.o) $(TESTLIB:%.c=$(BUILD)/%.o) $(LIB)
	$(LINK) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

$(BUILD)/bench: $(BENCH:%.c=$(BUILD)/%.o) $(BUILD)/tests/util/check.o $(LIB)
	$(LINK) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests run from the repository root; OMP threads are capped so Criterion's parallel workers
# do not oversubscribe a small machine. ARGS passes options to Criterion (e.g. --filter).
$(BUILD)/tests/plugins/%.so: tests/plugins/%.c $(wildcard rewards/plugin_abi.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Wshadow -O2 -fPIC -shared -I. -o $@ $<

$(HOST): $(BUILD)/tests/host/reward_host.o $(LIB)
	$(LINK) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test: features $(BUILD)/tests/unit $(PLUGINS) $(HOST)
	$(SAN_ENV) OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=1 $(BUILD)/tests/unit $(ARGS)

test-long: features $(BUILD)/long-tests
	OPENBLAS_NUM_THREADS=1 $(BUILD)/long-tests $(ARGS)

# The main job: tasks → tokenizer → tiny MoE → SFT → held-out loss and sampled answers.
demo: all
	scripts/demo.sh

bench: features $(BUILD)/bench
	$(BUILD)/bench $(ARGS)

sanitize:
	@$(MAKE) --no-print-directory SANITIZE=1 test

# Coverage-guided fuzzing of the file parsers with libFuzzer (clang from Debian); not part of CI.
#   make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 60
FUZZ_SRCS    := core/error.c core/utf8.c kernels/fp8.c model/dtype.c model/safetensors.c model/model_config.c
FUZZERS      := safetensors model_config
fuzz: $(FUZZERS:%=build-fuzz/fuzz_%)
	@for f in $(FUZZERS); do mkdir -p build-fuzz/corpus-$$f; \
	  echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus-$$f tests/fuzz/corpus/$$f \
	    2>&1 | grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|crash-' ; done

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRCS)
	@mkdir -p build-fuzz
	clang -g -O1 -std=c11 -D_GNU_SOURCE -I. $(shell pkg-config --cflags libcjson) \
	  -fsanitize=fuzzer,address,undefined -o $@ $^ $(shell pkg-config --libs libcjson) -lm

clean:
	rm -rf build build-san build-fuzz $(BIN)

-include $(DEPFILES)

endif
