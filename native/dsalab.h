/* dsalab native API: declarations only, fed to cffi's cdef() by native/build_native.py.
 * Constants are declared with "..." so that the compiler fills them in from native/dsl.h, where they are
 * defined and where the C sources take the same prototypes from (a mismatch fails the build).
 * Bump DSL_ABI_VERSION (and dsalab/_binding.py's _ABI_VERSION) whenever a declaration here changes. */

#define DSL_ABI_VERSION ...

/* ---- status codes: 0 is success, every other value becomes a dsalab.errors exception ---- */
#define DSL_OK ...
#define DSL_EINVAL ...
#define DSL_ENOMEM ...
#define DSL_ENODEV ...
#define DSL_EQUEUE_FULL ...
#define DSL_EGONE ...
#define DSL_ETIMEDOUT ...
#define DSL_EIO ...
#define DSL_EUNSUPPORTED ...
#define DSL_EPERM ...

/* ---- build and CPU facts ---- */
int dsl_abi_version(void);
const char *dsl_build_id(void);          /* hash of the native sources this module was built from */
int dsl_built_with_idxd_h(void);         /* 1 if <linux/idxd.h> was found at build time */
int dsl_built_with_portal_isa(void);     /* 1 if the ENQCMD/MOVDIR64B submission code was compiled */
int dsl_built_with_waitpkg(void);        /* 1 if the UMWAIT completion wait was compiled */
int dsl_cpu_has(const char *feature);    /* run time: "avx2", "avx512f", "avx512bw", "enqcmd", "movdir64b", "waitpkg" */
const char *dsl_kernel_isa(void);        /* which zero-check code path the kernels use: "avx512", "avx2", "scalar" */
int dsl_set_kernel_isa(const char *isa); /* force a code path (tests); "auto" restores the default */
int dsl_set_thread_name(const char *name); /* name the calling thread (15 characters at most) */
uint64_t dsl_thread_cpu_ns(void);        /* CPU time of the calling thread, ns */
uint64_t dsl_now_ns(void);               /* CLOCK_MONOTONIC, ns */

/* ---- CPU zero-page kernels (native reference) ---- */
typedef int (*dsl_zero_fn)(const void *buf, size_t len);          /* 1 if buf[0:len] is all zero */
int dsl_is_zero(const void *buf, size_t len);
int dsl_find_zero_pages(const void *buf, size_t npages, size_t page_size, uint8_t *out, int threads);
int dsl_find_zero_pages_fn(dsl_zero_fn fn, const void *buf, size_t npages, size_t page_size, uint8_t *out);
int dsl_compare_pages(const void *a, const void *b, size_t npages, size_t page_size, uint8_t *out, int threads);
uint64_t dsl_or_reduce(const void *buf, size_t len, int threads);  /* bandwidth reference: ORs every byte */
dsl_zero_fn dsl_native_zero_fn(void);
