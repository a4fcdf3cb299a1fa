# Thin wrapper over meson/ninja.  See README.md.
#   make          build into build/
#   make check    unit tests (also under ASan/UBSan), iotests, interop tests
#   make demo     the main scenario
#   make bench    benchmarks side by side with Debian's QEMU

BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan

.PHONY: all deps check check-unit check-asan check-iotests check-interop \
        check-fuzz demo bench clean

all: deps $(BUILD_DIR)/build.ninja
	ninja -C $(BUILD_DIR)

deps:
	@scripts/ensure-deps.sh

$(BUILD_DIR)/build.ninja:
	./configure --builddir=$(BUILD_DIR)

$(ASAN_BUILD_DIR)/build.ninja:
	./configure --builddir=$(ASAN_BUILD_DIR) --enable-sanitizers

check: all
	@scripts/run-checks.sh $(BUILD_DIR) $(ASAN_BUILD_DIR)

check-unit: all
	meson test -C $(BUILD_DIR) --suite unit --print-errorlogs

check-asan: deps $(ASAN_BUILD_DIR)/build.ninja
	ninja -C $(ASAN_BUILD_DIR)
	meson test -C $(ASAN_BUILD_DIR) --suite unit --print-errorlogs

check-iotests: all
	cd tests/qemu-iotests && QBLOCK_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) ./check -qcow2 && \
	    QBLOCK_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) ./check -raw

check-interop: all
	QBLOCK_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) tests/interop/run

check-fuzz: deps
	scripts/run-fuzz.sh

# DEMO_ARGS go to scripts/demo (--size SIZE, --keep, --dir DIR).
demo: all
	@QBLOCK_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) scripts/demo $(DEMO_ARGS)

# BENCH_ARGS go to both drivers (--quick, --runs N); WRITE_DOC=1 also
# writes the backup tables and chart into docs/benchmarks.md/.png.
bench: all
	@scripts/ensure-deps.sh --bench
	@QBLOCK_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) tests/bench/run $(BENCH_ARGS)
	@QBLOCK_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) tests/bench/backup.py \
	    $(BENCH_ARGS) $(if $(WRITE_DOC),--write-doc)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
