# Install rules and package config, so that another project can do
#
#   find_package(linattn CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE linattn::linattn)
#
# Installed: the headers (include/linattn/**), the exported INTERFACE targets linattn::linattn
# linattn::io (component io) and linattn::models (component models, on io),
# linattnConfig.cmake and linattnConfigVersion.cmake under <datadir>/cmake/linattn (the
# library is header-only, so the package is architecture independent).
#
# Relies on, from the top-level CMakeLists.txt: the INTERFACE targets `linattn`, `linattn_io`,
# `linattn_models` and the
# variable LINATTN_USES_OPENMP (ON when linattn links OpenMP::OpenMP_CXX), both set before
# this file is included. Only those three are exported: test/bench/dev targets (Catch2, Google
# Benchmark, linattn_dev) never are.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(LINATTN_INSTALL "Generate the install rules of linattn" ON)

if(LINATTN_INSTALL)
  set(LINATTN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/linattn"
      CACHE STRING "Where linattnConfig.cmake is installed, relative to the install prefix")
  mark_as_advanced(LINATTN_INSTALL_CMAKEDIR)

  install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/linattn"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
          FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")

  # INCLUDES DESTINATION puts <prefix>/include on the imported target's include path.
  install(TARGETS linattn linattn_io linattn_models
          EXPORT linattnTargets
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

  install(EXPORT linattnTargets
          NAMESPACE linattn::
          FILE linattnTargets.cmake
          DESTINATION "${LINATTN_INSTALL_CMAKEDIR}")

  configure_package_config_file(
    "${CMAKE_CURRENT_LIST_DIR}/linattnConfig.cmake.in"
    "${PROJECT_BINARY_DIR}/linattnConfig.cmake"
    INSTALL_DESTINATION "${LINATTN_INSTALL_CMAKEDIR}")

  write_basic_package_version_file(
    "${PROJECT_BINARY_DIR}/linattnConfigVersion.cmake"
    VERSION "${PROJECT_VERSION}"
    COMPATIBILITY SameMajorVersion
    ARCH_INDEPENDENT)

  install(FILES
            "${PROJECT_BINARY_DIR}/linattnConfig.cmake"
            "${PROJECT_BINARY_DIR}/linattnConfigVersion.cmake"
          DESTINATION "${LINATTN_INSTALL_CMAKEDIR}")

  if(EXISTS "${PROJECT_SOURCE_DIR}/LICENSE")
    install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/linattn")
  endif()
endif()
