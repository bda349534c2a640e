"""Build script of ``dsalab._native`` (cffi API mode): one FFI object, compiled by ``pip install``.

Switches (environment variables, read here and nowhere else):

- ``DSALAB_CC_FLAGS``: extra compiler flags, appended.
- ``DSALAB_LD_FLAGS``: extra linker flags, appended (``make test-asan`` passes ``-fsanitize=...`` in both).
- ``DSALAB_NO_PORTAL=1``: leave out the ENQCMD/MOVDIR64B submission code even where the compiler has it.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = sorted(p.name for p in HERE.glob("*.c"))


def _compiles(code: str, flags: list[str]) -> bool:
    """True if the C compiler accepts ``code`` with ``flags`` (a probe, like meson's ``cc.compiles``)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp, "probe.c")
        src.write_text(code)
        cmd = [*cc.split(), *flags, "-c", str(src), "-o", str(pathlib.Path(tmp, "probe.o"))]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _build_id() -> str:
    """Hash of every native source, carried by the module so a stale build can be recognised."""
    h = hashlib.sha256()
    for p in sorted(HERE.glob("*.[ch]")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _config() -> tuple[list[str], list[tuple[str, str | None]]]:
    flags = ["-O3", "-std=gnu11", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]
    macros: list[tuple[str, str | None]] = [("DSL_BUILD_ID", f'"{_build_id()}"')]
    if _compiles("#include <linux/idxd.h>\nstruct dsa_hw_desc d;\n", []):
        macros.append(("DSL_HAVE_IDXD_H", "1"))
    portal = "#include <immintrin.h>\nint f(void *p, const void *d) { _movdir64b(p, d); return _enqcmd(p, d); }\n"
    if os.environ.get("DSALAB_NO_PORTAL") != "1" and _compiles(portal, ["-menqcmd", "-mmovdir64b"]):
        macros.append(("DSL_HAVE_PORTAL_ISA", "1"))
    if _compiles("#include <immintrin.h>\nvoid f(void) { _umwait(0, 0); }\n", ["-mwaitpkg"]):
        macros.append(("DSL_HAVE_WAITPKG", "1"))
    flags += os.environ.get("DSALAB_CC_FLAGS", "").split()
    return flags, macros


#: the DSA structs of <linux/idxd.h>, partial: the compiler knows their layout (the tests check it)
PARTIAL_STRUCTS = """
struct dsa_hw_desc { ...; };
struct dsa_completion_record { uint8_t status; uint8_t result; uint32_t bytes_completed; uint64_t fault_addr; ...; };
"""


def cdef_source() -> str:
    """What cdef() reads: the DSL_* constants of dsl.h as "..." (values from the compiler), the partial DSA
    structs, then dsalab.h itself without its include guard."""
    names = re.findall(r"^#define (DSL_[A-Z0-9_]+) [0-9]", (HERE / "dsl.h").read_text(), flags=re.M)
    consts = "".join(f"#define {n} ...\n" for n in names)
    header = "\n".join(ln for ln in (HERE / "dsalab.h").read_text().splitlines() if not ln.startswith("#"))
    return consts + PARTIAL_STRUCTS + header


ffibuilder = FFI()
ffibuilder.cdef(cdef_source())
_flags, _macros = _config()
ffibuilder.set_source(
    "dsalab._native",
    '#include "dsa.h"\n',
    # setuptools wants paths relative to the project root, where pip runs this script
    sources=[f"native/{s}" for s in SOURCES],
    include_dirs=["native"],
    define_macros=_macros,
    extra_compile_args=_flags,
    libraries=["pthread"],
    extra_link_args=os.environ.get("DSALAB_LD_FLAGS", "").split(),
)

if __name__ == "__main__":
    print(f"sources: {SOURCES}\nflags: {_flags}\nmacros: {_macros}", file=sys.stderr)
    ffibuilder.compile(verbose=True)
