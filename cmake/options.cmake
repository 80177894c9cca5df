# Compiler settings shared by every vfiokit target through the vfiokit_options interface library.
add_library(vfiokit_options INTERFACE)
target_compile_options(vfiokit_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Wimplicit-fallthrough -Wformat=2)
if(VFIOKIT_WERROR)
  target_compile_options(vfiokit_options INTERFACE -Werror)
endif()
# The libraries' headers are included as "vfiokit/LAYER/NAME.h", the name they are installed
# under; in the build tree build/include/vfiokit is a link to the source root. The program, the
# tests and the benchmarks include their own headers by source path ("tools/...", "tests/...").
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/include)
file(CREATE_LINK ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/include/vfiokit SYMBOLIC)
target_include_directories(vfiokit_options INTERFACE
  ${PROJECT_BINARY_DIR}/include ${PROJECT_SOURCE_DIR})
target_compile_definitions(vfiokit_options INTERFACE
  VFIOKIT_VERSION="${PROJECT_VERSION}" VFIOKIT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

if(VFIOKIT_STATIC_RUNTIME AND NOT VFIOKIT_SANITIZE AND NOT VFIOKIT_FUZZ)
  # Every vfiokit command is a short-lived process; in the TCG rig loading libstdc++ and
  # relocating against it is a measurable part of each run (docs/performance.md).
  # Only on the vfiokit program (tools/vfiokit/CMakeLists.txt): vfiokit-device-plugin and the
  # tests link gRPC, whose libstdc++ is the shared one, and one process must not hold two.
  set(VFIOKIT_STATIC_RUNTIME_FLAGS -static-libstdc++ -static-libgcc)
endif()

if(VFIOKIT_SANITIZE)
  add_compile_options(-fsanitize=${VFIOKIT_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${VFIOKIT_SANITIZE})
endif()

if(VFIOKIT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "VFIOKIT_FUZZ needs clang's libFuzzer: configure with CC=clang CXX=clang++")
  endif()
  if(VFIOKIT_SANITIZE)
    message(FATAL_ERROR "VFIOKIT_FUZZ brings its own sanitizers; leave VFIOKIT_SANITIZE empty")
  endif()
  # Coverage feedback for libFuzzer in every library, ASan and UBSan everywhere; a UBSan report
  # aborts, so libFuzzer keeps the input. The fuzz targets link with -fsanitize=fuzzer (fuzz/).
  set(VFIOKIT_FUZZ_SANITIZERS address,undefined)
  add_compile_options(-fsanitize=fuzzer-no-link,${VFIOKIT_FUZZ_SANITIZERS}
                      -fno-omit-frame-pointer -fno-sanitize-recover=all)
endif()

# vfiokit_library(NAME SOURCES... DEPENDS targets...): one layer's library target.
function(vfiokit_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS" ${ARGN})
  add_library(vfiokit_${name} STATIC ${ARG_SOURCES})
  add_library(vfiokit::${name} ALIAS vfiokit_${name})
  # vfiokit_options (warnings, -Werror, the source-tree include paths and definitions) reaches
  # everything built here, never what links the installed library (cmake/install.cmake).
  target_link_libraries(vfiokit_${name} PUBLIC $<BUILD_INTERFACE:vfiokit_options> ${ARG_DEPENDS})
  target_include_directories(vfiokit_${name} INTERFACE
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set_target_properties(vfiokit_${name} PROPERTIES EXPORT_NAME ${name})
endfunction()
