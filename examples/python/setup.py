# Builds linattn._core from the headers in ../../include (the repository's), or LINATTN_INCLUDE;
# with Eigen (libeigen3-dev) and nlohmann-json (nlohmann-json3-dev) from Debian.
#
# The extension is compiled for this machine's CPU (-march=native), as the C++ library's own
# builds are. LINATTN_PORTABLE=1 builds it for any x86-64 instead: the recurrence core's plain
# C++ loops and the ternary kernels' scalar backend (include/linattn/core/portable.hpp).
import os
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup

here = Path(__file__).resolve().parent
include = Path(os.environ.get("LINATTN_INCLUDE", here.parent.parent / "include"))
if not (include / "linattn" / "linattn.hpp").exists():
    raise SystemExit(f"linattn: headers not found in {include} (set LINATTN_INCLUDE to the include/ folder)")

portable = os.environ.get("LINATTN_PORTABLE", "0") not in ("", "0")
args = ["-O2", "-fopenmp"] + (["-DLINATTN_PORTABLE"] if portable else ["-march=native"])

setup(
    ext_modules=[
        Pybind11Extension(
            "linattn._core",
            ["src/core.cpp", "src/models.cpp"],
            include_dirs=[str(include), "/usr/include/eigen3"],
            cxx_std=20,
            extra_compile_args=args,
            extra_link_args=["-fopenmp"],
        )
    ],
)
