# mg - render farm for AI music. `make` builds bin/mgctl, bin/mg-coordinator, bin/mg-worker.
#
#   make            build the product binaries
#   make test       install missing packages (ops/install-deps.sh), build, run every test
#   make demo       start a coordinator and a worker, submit jobs/ad-campaign.yaml, show results
#   make bench      coordinator throughput figures (bench/)
#   make SAN=address,undefined test    the same tests under sanitizers (objects in build-san/)
#   make fuzz       the libFuzzer targets of tests/fuzz/ (job files, kv frames, mg.conf, MGNN model
#                   files, MIDI) built with clang into build-fuzz/, each run FUZZ_SECONDS (60) under
#                   ASan+UBSan, printing execs/s and any crash (installs clang: ops/install-deps.sh
#                   fuzz); FUZZ_TARGETS=kv picks some. Not part of `make test`, which only replays
#                   each target's corpus once (docs/security.md, "Fuzzing")
#   make cuda       (part of `make` when nvcc exists) the GPU renderer's test, bench and the worker's
#                   plugin bin/libmg-wavernn-cuda.so (docs/architecture.md, "Backends"); see
#                   bench/cuda/README.md for what runs on a GPU machine
#
# Sources are picked up by folder: common/, composer/ and kernels/ form libmg, coordinator/ (less
# main.c) libmgcoord, worker/ (less main.c and the test renderer) libmgworker. Tests are
# tests/test_*.c, one cmocka binary each, each linked with tests/testlib.c (the scaffolding they
# share, tests/testlib.h). The test renderer is compiled into build/.../mg-worker-test only,
# never into bin/.

CC      ?= cc
SAN     ?=
ifeq ($(FUZZ),1)
# `make fuzz` calls itself with FUZZ=1: the library instrumented for libFuzzer, in build-fuzz/.
CC       = $(FUZZ_CC)
BUILD   ?= build-fuzz
BIN     ?= build-fuzz/bin
OPT     ?= -O1
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(SAN),)
BUILD   ?= build
OPT     ?= -O2
else
BUILD   ?= build-san
BIN     ?= build-san/bin
OPT     ?= -O1
SANFLAGS = -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
BIN     ?= bin
PKGS     = libzmq sqlite3 sndfile libavcodec libavformat libavutil libswresample yaml-0.1 libsodium libebur128
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Wno-unused-parameter -MMD -MP \
           -I. $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -lpthread -ldl

COMMON_SRC = $(wildcard common/*.c) $(wildcard composer/*.c) $(wildcard kernels/*.c)
COORD_SRC  = $(filter-out coordinator/main.c,$(wildcard coordinator/*.c))
WORKER_SRC = $(filter-out worker/main.c worker/render_test.c,$(wildcard worker/*.c))
CLI_SRC    = $(wildcard cli/*.c)
TEST_SRC   = $(wildcard tests/test_*.c)
FUZZ_SRC   = $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC  = $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBMG      = $(BUILD)/libmg.a
LIBCOORD   = $(BUILD)/libmgcoord.a
LIBWORKER  = $(BUILD)/libmgworker.a
SCHEMA_OBJ = $(BUILD)/obj/gen/schema_sql.o
TEST_BINS  = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TESTLIB_OBJ = $(BUILD)/obj/tests/testlib.o
BENCH_BINS = $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
WORKER_TEST_BIN = $(BUILD)/tests/mg-worker-test

PRODUCTS = $(BIN)/mgctl $(BIN)/mg-coordinator $(BIN)/mg-worker

.PHONY: all deps deps-test deps-fuzz test test-run demo demo-run bench bench-run bench-model clean cuda \
        fuzz fuzz-run
all: $(PRODUCTS) cuda

# ---- dependencies -----------------------------------------------------------------
# Checked before test/demo/bench; a second make then parses with the packages present.
deps:
	@if ! pkg-config --exists $(PKGS) 2>/dev/null || ! command -v flac >/dev/null || \
	    ! command -v sqlite3 >/dev/null || ! command -v cc >/dev/null; then \
	  echo "mg: installing missing packages (ops/install-deps.sh)"; \
	  sh ops/install-deps.sh; \
	fi
# The tests also check outputs with cmocka, mido and a GM synth (fluidsynth + FluidR3).
deps-test: deps
	@if ! pkg-config --exists cmocka 2>/dev/null || ! command -v fluidsynth >/dev/null || \
	    ! test -f /usr/share/sounds/sf2/FluidR3_GM.sf2 || ! /usr/bin/python3 -c 'import mido' 2>/dev/null; then \
	  echo "mg: installing the test tools (ops/install-deps.sh test)"; \
	  sh ops/install-deps.sh test; \
	fi

test: deps-test
	@$(MAKE) --no-print-directory test-run
demo: deps
	@$(MAKE) --no-print-directory demo-run
bench: deps
	@$(MAKE) --no-print-directory bench-run
# the neural renderer: C runtime vs PyTorch eager (needs models/data/install-deps.sh for torch)
bench-model: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench/model_bench
	@sh bench/model_speed.sh

# ---- libraries and binaries ---------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# schema.sql is the single source of the schema; it is compiled in as a string.
$(BUILD)/gen/schema_sql.c: schema.sql
	@mkdir -p $(dir $@)
	@{ echo '/* generated from schema.sql by the Makefile; do not edit */'; \
	   echo 'const char mg_schema_sql[] = {'; \
	   od -An -v -tx1 schema.sql | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	   echo '0x00};'; } > $@
$(SCHEMA_OBJ): $(BUILD)/gen/schema_sql.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBMG): $(call obj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIBCOORD): $(call obj,$(COORD_SRC)) $(SCHEMA_OBJ)
	@rm -f $@; ar rcs $@ $^
$(LIBWORKER): $(call obj,$(WORKER_SRC))
	@rm -f $@; ar rcs $@ $^

$(BIN)/mg-coordinator: $(call obj,coordinator/main.c) $(LIBCOORD) $(LIBMG)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/mg-worker: $(call obj,worker/main.c) $(LIBWORKER) $(LIBMG)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/mgctl: $(call obj,$(CLI_SRC)) $(LIBMG)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The worker with the test renderer: tests only.
$(BUILD)/obj-test/worker/%.o: worker/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMG_TEST_RENDERER -c $< -o $@
$(WORKER_TEST_BIN): $(BUILD)/obj-test/worker/main.o $(BUILD)/obj-test/worker/render_test.o $(LIBWORKER) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJ) $(LIBCOORD) $(LIBWORKER) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)
# test_worker runs libmgworker's loop in-process with the test renderer, so it links that
# renderer's object from obj-test/ (bin/mg-worker never does).
$(BUILD)/obj/tests/test_worker.o: CFLAGS += -DMG_TEST_RENDERER
$(BUILD)/tests/test_worker: $(BUILD)/obj/tests/test_worker.o $(BUILD)/obj-test/worker/render_test.o $(TESTLIB_OBJ) \
                            $(LIBCOORD) $(LIBWORKER) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBCOORD) $(LIBWORKER) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- CUDA (optional) ----------------------------------------------------------------
# Built whenever nvcc is found (the product binaries never link it): the GPU renderer
# kernels/cuda/ into $(BUILD)/cuda/wavernn_cuda.o and $(BUILD)/bench/cuda_bench by `make`, its
# test $(BUILD)/tests/test_cuda by `make test` (device tests report SKIPPED without a GPU).
# Code for sm_90 (H100, H200) plus compute_90 PTX for later GPUs. --fmad=false: no contraction
# anywhere, every fused multiply-add in kernels/cuda is an explicit fmaf (the features must round
# like the CPU). bench/cuda/Makefile builds the same without the Debian packages (GPU machine).
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS ?= -O3 -std=c++17 --fmad=false -lineinfo \
             -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCC_XCOMPILER = -ffp-contract=off,-Wall,-Wno-unused-parameter$(if $(SAN),$(comma)-fsanitize=$(subst $(comma),$(comma)-fsanitize=,$(SAN))$(comma)-fno-omit-frame-pointer)
comma := ,
CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lstdc++
CUDA_OBJ = $(BUILD)/cuda/wavernn_cuda.o
CUDA_DEPS = $(wildcard kernels/cuda/*.cu kernels/cuda/*.cuh kernels/cuda/*.h) kernels/wavernn.h kernels/philox.h
# The worker's GPU backend: a plugin (wavernn_cuda_plugin.h) that mg-worker dlopens when asked
# to (worker/backend.c), with its own PIC copy of kernels/*.c and cudart linked in and one
# exported symbol; installed next to the binaries. The binaries stay free of CUDA.
CUDA_PLUGIN = $(BUILD)/cuda/libmg-wavernn-cuda.so
CUDA_PLUGIN_OBJ = $(BUILD)/cuda/pic/wavernn_cuda.o $(BUILD)/cuda/pic/wavernn_cuda_plugin.o \
                  $(patsubst %.c,$(BUILD)/pic/%.o,$(wildcard kernels/*.c))
ifneq ($(NVCC),)
CUDA_PLUGIN_INST = $(BIN)/libmg-wavernn-cuda.so
CUDA_BINS = $(BUILD)/bench/cuda_bench $(CUDA_PLUGIN_INST)
CUDA_TEST_BINS = $(BUILD)/tests/test_cuda
endif
cuda: $(CUDA_BINS)
ifeq ($(NVCC),)
	@echo "mg: nvcc not found; CUDA backend not built (CPU path only)"
endif

$(BUILD)/cuda/%.o: kernels/cuda/%.cu $(CUDA_DEPS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -I. -Xcompiler $(NVCC_XCOMPILER) -c $< -o $@
$(BUILD)/cuda/pic/%.o: kernels/cuda/%.cu $(CUDA_DEPS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -I. -Xcompiler $(NVCC_XCOMPILER),-fPIC -c $< -o $@
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@
$(CUDA_PLUGIN): $(CUDA_PLUGIN_OBJ) kernels/cuda/wavernn_cuda_plugin.map
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=kernels/cuda/wavernn_cuda_plugin.map -Wl,-Bsymbolic \
	  -Wl,--no-undefined -o $@ $(CUDA_PLUGIN_OBJ) $(CUDA_LIBS) -lm -lpthread
$(BIN)/libmg-wavernn-cuda.so: $(CUDA_PLUGIN)
	@mkdir -p $(BIN)
	cp $< $@
$(BUILD)/cuda/bench/%.o: bench/cuda/%.cu $(CUDA_DEPS) tests/cuda/random_model.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -I. -Xcompiler $(NVCC_XCOMPILER) -c $< -o $@
# (testlib.o's SQL and store helpers, unused here, need libmgcoord to link)
$(BUILD)/tests/test_cuda: $(BUILD)/obj/tests/cuda/test_cuda.o $(TESTLIB_OBJ) $(CUDA_OBJ) $(LIBCOORD) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS) $(CUDA_LIBS)
$(BUILD)/bench/cuda_bench: $(BUILD)/cuda/bench/cuda_bench.o $(CUDA_OBJ) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CUDA_LIBS)

# ---- fuzzing (tests/fuzz/, docs/security.md) ----------------------------------------------
# Each tests/fuzz/fuzz_<t>.c is built twice: by `make fuzz` with libFuzzer (clang,
# -fsanitize=fuzzer,address,undefined) into build-fuzz/fuzz_<t>, and by every build with
# tests/fuzz/driver.c into $(BUILD)/tests/fuzz/fuzz_<t>, the corpus replay `make test` runs.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_SMOKE_BINS = $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(FUZZ_SRC))
FUZZ_BINS  = $(patsubst %,$(BUILD)/fuzz_%,$(FUZZ_TARGETS))

$(BUILD)/tests/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/driver.o $(TESTLIB_OBJ) \
                            $(LIBCOORD) $(LIBWORKER) $(LIBMG)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

# libFuzzer supplies main; only under FUZZ=1, where $(BUILD) is build-fuzz.
$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LIBMG)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Whether clang links a libFuzzer target here (Debian: clang + libclang-rt-dev).
FUZZ_PROBE = printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
  $(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o /tmp/mg-fuzz-probe.$$$$ - 2>/dev/null && \
  rm -f /tmp/mg-fuzz-probe.$$$$
deps-fuzz: deps
	@if ! command -v $(FUZZ_CC) >/dev/null || ! ( $(FUZZ_PROBE) ); then \
	  echo "mg: installing clang and libFuzzer (ops/install-deps.sh fuzz)"; \
	  sh ops/install-deps.sh fuzz; \
	  ( $(FUZZ_PROBE) ) || { echo "mg: $(FUZZ_CC) -fsanitize=fuzzer does not link; see ops/install-deps.sh" >&2; exit 1; }; \
	fi
fuzz: deps-fuzz
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-run
fuzz-run: $(FUZZ_BINS)
	@sh tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- test, demo, bench --------------------------------------------------------------
export MG_BUILD = $(BUILD)
export MG_BIN = $(BIN)
test-run: $(PRODUCTS) $(TEST_BINS) $(WORKER_TEST_BIN) $(CUDA_TEST_BINS) $(CUDA_PLUGIN_INST) $(FUZZ_SMOKE_BINS)
	@sh tests/run.sh $(TEST_BINS) $(CUDA_TEST_BINS) $(FUZZ_SMOKE_BINS)

demo-run: $(PRODUCTS)
	@sh ops/demo.sh

bench-run: $(PRODUCTS) $(BENCH_BINS) $(WORKER_TEST_BIN)
	@sh bench/run.sh $(BENCH_BINS)

clean:
	rm -rf $(BUILD) build-san build-fuzz $(BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
