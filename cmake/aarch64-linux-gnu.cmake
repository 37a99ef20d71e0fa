# Cross toolchain for arm64 (aarch64) Linux with Debian's own packages:
#
#   contrib/bootstrap.sh release      # gcc-aarch64-linux-gnu, the :arm64 -dev packages, qemu
#   cmake -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DPRISN_STATIC=ON
#
# The arm64 -dev packages install beside the amd64 ones (multiarch), so the
# libraries are found under /usr/lib/aarch64-linux-gnu by setting the library
# architecture; the headers are shared. The build runs embedgen, an arm64
# program, to compile the Lua modules: qemu-aarch64-static runs it (CMake
# prepends the emulator to custom commands and tests that run a target).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
find_program(PRISN_QEMU_AARCH64 qemu-aarch64-static)
if(NOT PRISN_QEMU_AARCH64)
  message(FATAL_ERROR "qemu-aarch64-static is missing: run contrib/bootstrap.sh release")
endif()
# QEMU_LD_PREFIX is not needed: Debian's libc6:arm64 puts the loader at
# /lib/ld-linux-aarch64.so.1, where the dynamic embedgen looks for it.
set(CMAKE_CROSSCOMPILING_EMULATOR ${PRISN_QEMU_AARCH64})

# libhttp-parser-dev is not multiarch (its :arm64 package would replace the
# amd64 one): contrib/bootstrap.sh release unpacks its archive here instead.
set(PRISN_CROSS_ROOT /opt/prisn-cross/arm64 CACHE PATH "arm64 packages unpacked beside the system")
list(APPEND CMAKE_LIBRARY_PATH ${PRISN_CROSS_ROOT}/usr/lib/aarch64-linux-gnu)
