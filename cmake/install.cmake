# What `cmake --install` puts where (GNUInstallDirs): the vfiokit program; each layer's static
# library and its headers as include/vfiokit/LAYER/NAME.h, the name the tree already uses; a
# CMake package (find_package(vfiokit): vfiokit::base ... vfiokit::drivers) and vfiokit.pc.
# Consumers get the include path and the dependencies; the warning flags, -Werror and the
# source-tree paths of vfiokit_options stay in this build ($<BUILD_INTERFACE:...>).
include(CMakePackageConfigHelpers)

# Lowest first: the order a linker needs is the reverse (vfiokit.pc).
set(VFIOKIT_LAYERS base pci iommu bind vfio msix kvm payloads vmm drivers)
set(VFIOKIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vfiokit)

# vfiokit/version.h: the release as macros, for code built against an installed vfiokit.
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in
  ${PROJECT_BINARY_DIR}/generated/vfiokit/version.h @ONLY)
target_include_directories(vfiokit_base PUBLIC $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/generated>)
install(FILES ${PROJECT_BINARY_DIR}/generated/vfiokit/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vfiokit COMPONENT dev)

install(TARGETS vfiokit RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT program)

set(layer_targets)
set(pc_libs)
foreach(layer IN LISTS VFIOKIT_LAYERS)
  list(APPEND layer_targets vfiokit_${layer})
  list(PREPEND pc_libs -lvfiokit_${layer})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vfiokit/${layer} COMPONENT dev
    FILES_MATCHING PATTERN "*.h")
endforeach()
install(TARGETS ${layer_targets} EXPORT vfiokitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(EXPORT vfiokitTargets NAMESPACE vfiokit:: DESTINATION ${VFIOKIT_CMAKE_DIR}
  COMPONENT dev)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/vfiokitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/vfiokitConfig.cmake INSTALL_DESTINATION ${VFIOKIT_CMAKE_DIR})
# Before 1.0 a minor release may break the API, so 0.1 satisfies only a request for 0.1.x.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vfiokitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vfiokitConfig.cmake
  ${PROJECT_BINARY_DIR}/vfiokitConfigVersion.cmake
  DESTINATION ${VFIOKIT_CMAKE_DIR} COMPONENT dev)

# vfiokit.pc: the static libraries in link order, libpci through Requires. Its prefix is found
# from where the file lies, so an install with `cmake --install --prefix` elsewhere still works.
list(JOIN pc_libs " " VFIOKIT_PC_LIBS)
set(VFIOKIT_PC_REQUIRES "libpci nlohmann_json")
if(NOT VFIOKIT_STATIC_RUNTIME)
  string(APPEND VFIOKIT_PC_REQUIRES " spdlog fmt")
endif()
set(pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH VFIOKIT_PC_TO_PREFIX /${pc_dir} /)
string(REGEX REPLACE "/$" "" VFIOKIT_PC_TO_PREFIX "${VFIOKIT_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/vfiokit.pc.in ${PROJECT_BINARY_DIR}/vfiokit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/vfiokit.pc DESTINATION ${pc_dir} COMPONENT dev)
