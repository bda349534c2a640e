#!/usr/bin/env bash
# `make test-asan`: the native module built with AddressSanitizer and UndefinedBehaviorSanitizer, then the tests
# that drive native code (kernels, devices, the emulator, offload, migration) run against it.
#
# The sanitized module is built into build/asan/ next to a copy of the Python package, so the checkout's own
# build is untouched; PYTHONPATH puts that copy first. The compiler's libasan is preloaded (Python itself is not
# sanitized), leak detection is off (the interpreter's own allocations would drown the report), and any ASan or
# UBSan report ends the run with a non-zero status.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=build/asan
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

rm -rf "$OUT" build/asan-tmp
mkdir -p build
DSALAB_CC_FLAGS="$SAN -g -O1" DSALAB_LD_FLAGS="-fsanitize=address,undefined" \
  "$PY" setup.py -q build_ext --build-lib "$OUT" --build-temp build/asan-tmp >build/asan-build.log 2>&1 \
  || { cat build/asan-build.log; exit 1; }
so=$(ls "$OUT"/dsalab/_native*.so)
# the Python package (every module and subpackage), without the checkout's own compiled module
tar -C dsalab --exclude='_native*' --exclude=__pycache__ -cf - . | tar -C "$OUT"/dsalab -xf -
ln -sfn ../../native "$OUT"/native   # the stale-build check hashes the checkout's native sources

CC=${CC:-cc}
export LD_PRELOAD="$($CC -print-file-name=libasan.so):$($CC -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ROOT=$PWD
case "$PY" in /*) ;; *) PY="$ROOT/$PY" ;; esac
export PYTHONPATH="$ROOT/$OUT"
# run from inside the copy, so that Python's current-directory entry (tests' subprocesses too) finds it first
cd "$OUT"
loaded=$("$PY" -c 'import dsalab._native as n; print(n.__file__)')
[ "$loaded" = "$ROOT/$so" ] || { echo "test-asan: loaded $loaded, not the sanitized $so" >&2; exit 1; }
echo "test-asan: sanitized module $so"
TESTS=${TESTS:-"test_binding test_kernels test_fuzz_kernels test_devices test_fuzz_devices test_emulator test_offload test_offload_lifetime test_fuzz_offload test_migration test_migration_bounds"}
paths=()
for t in $TESTS; do paths+=("$ROOT/tests/$t.py"); done
"$PY" -m pytest -c "$ROOT/pyproject.toml" --rootdir "$ROOT" -p no:cacheprovider -q "${paths[@]}" "$@"
