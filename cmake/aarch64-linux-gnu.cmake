# Cross-build for 64-bit Arm with Debian's cross toolchain and the arm64 (multiarch) builds of the
# dependencies: tools/install-deps --arm64 installs both.
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Multiarch: the arm64 libraries and their CMake and pkg-config files live under
# /usr/lib/aarch64-linux-gnu, the architecture-independent headers (CLI11, nlohmann-json) and
# package files under /usr/include and /usr/share. Programs (ninja, pkg-config's wrapper, the
# host's tools) are the build machine's.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# The host's pkg-config, reading only the arm64 .pc files and the architecture-independent ones.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# ctest runs arm64 test binaries under qemu-user (qemu-user-static) when it is there; the arm64
# loader and libraries are the multiarch ones (libc6:arm64), so it needs no -L.
find_program(VFIOKIT_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(VFIOKIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VFIOKIT_QEMU_AARCH64})
endif()
