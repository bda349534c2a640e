/* Internal header of the dsalab C sources: constants and prototypes shared between the .c files.
 * The public declarations are in dsalab.h (fed to cffi); their values live here. */
#ifndef DSL_H
#define DSL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>

#define DSL_ABI_VERSION 1

#define DSL_OK 0
#define DSL_EINVAL 1
#define DSL_ENOMEM 2
#define DSL_ENODEV 3
#define DSL_EQUEUE_FULL 4
#define DSL_EGONE 5
#define DSL_ETIMEDOUT 6
#define DSL_EIO 7
#define DSL_EUNSUPPORTED 8
#define DSL_EPERM 9

#ifndef DSL_BUILD_ID
#define DSL_BUILD_ID "unknown"
#endif

typedef int (*dsl_zero_fn)(const void *buf, size_t len);

/* platform.c */
int dsl_abi_version(void);
const char *dsl_build_id(void);
int dsl_built_with_idxd_h(void);
int dsl_built_with_portal_isa(void);
int dsl_built_with_waitpkg(void);
int dsl_cpu_has(const char *feature);
int dsl_set_thread_name(const char *name);
uint64_t dsl_thread_cpu_ns(void);
uint64_t dsl_now_ns(void);

/* kernels.c */
const char *dsl_kernel_isa(void);
int dsl_set_kernel_isa(const char *isa);
int dsl_is_zero(const void *buf, size_t len);
int dsl_find_zero_pages(const void *buf, size_t npages, size_t page_size, uint8_t *out, int threads);
int dsl_find_zero_pages_fn(dsl_zero_fn fn, const void *buf, size_t npages, size_t page_size, uint8_t *out);
int dsl_compare_pages(const void *a, const void *b, size_t npages, size_t page_size, uint8_t *out, int threads);
uint64_t dsl_or_reduce(const void *buf, size_t len, int threads);
dsl_zero_fn dsl_native_zero_fn(void);

/* Run fn(i, arg) for i in [0, n) on n threads (the caller runs i = 0); always completes, returns DSL_OK. */
int dsl_run_parallel(int n, void (*fn)(int i, void *arg), void *arg);

#endif
