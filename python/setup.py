"""pip's entry point for the kiln package: builds kiln._kiln with the project's CMake.

    /usr/bin/python3 -m pip install --no-build-isolation ./python

The CMake build directory is $KILN_BUILD_DIR (an existing, configured one is only rebuilt; its
configuration is left alone), else <repo>/build-pip, configured here as a Release build with
KILN_BUILD_PYTHON=ON for this interpreter (ccache when installed). CMAKE_BUILD_PARALLEL_LEVEL sets
the build's parallelism.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def _version() -> str:
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"project\(kiln VERSION ([0-9.]+)", text)
    return m.group(1) if m else "0.0.0"


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build_dir = pathlib.Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build-pip")).resolve()
        if not (build_dir / "CMakeCache.txt").is_file():
            configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
                         "-DCMAKE_BUILD_TYPE=Release", "-DKILN_BUILD_PYTHON=ON",
                         f"-DKILN_PYTHON_EXECUTABLE={sys.executable}",
                         "-DKILN_BUILD_TESTS=OFF", "-DKILN_BUILD_BENCH=OFF"]
            if shutil.which("ccache"):
                configure += ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", "-DCMAKE_C_COMPILER_LAUNCHER=ccache"]
            subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "kiln_python"])
        name = pathlib.Path(self.get_ext_filename(ext.name)).name
        built = build_dir / "python" / "kiln" / name
        if not built.is_file():
            raise RuntimeError(f"{built} was not built (is {build_dir} configured with KILN_BUILD_PYTHON=ON?)")
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest)


setup(
    name="kiln",
    version=_version(),
    description="kiln: inference optimizer and runtime (TF-TRT's successor), Python API",
    packages=["kiln"],
    package_dir={"kiln": "kiln"},
    package_data={"kiln": ["py.typed", "_kiln.pyi"]},
    ext_modules=[CMakeExtension("kiln._kiln")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.8",
    install_requires=["numpy"],
    zip_safe=False,
)
