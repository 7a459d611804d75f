# Packaging test driver, run as a script by ctest (see tests/CMakeLists.txt):
#
#   cmake -DMODE=find_package|add_subdirectory -DLINATTN_SOURCE_DIR=<repo root>
#         -DWORK_DIR=<scratch dir> [-DGENERATOR=<gen>] [-DCXX_COMPILER=<c++>]
#         [-DMAKE_PROGRAM=<ninja/make>] [-DOPENMP=ON|OFF] -P run_consumer.cmake
#
# find_package:     configure + build + install linattn (tests/bench/examples OFF) into
#                   WORK_DIR/prefix, check the installed package, then configure, build and run
#                   tests/consumer/find_package against it with CMAKE_PREFIX_PATH.
# add_subdirectory: configure, build and run tests/consumer/add_subdirectory, which pulls the
#                   source tree in with add_subdirectory().
# WORK_DIR is wiped first, so every run starts from scratch.
cmake_minimum_required(VERSION 3.25)

foreach(var MODE LINATTN_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

set(consumer_src "${LINATTN_SOURCE_DIR}/tests/consumer/${MODE}")
set(prefix "${WORK_DIR}/prefix")

# Options shared by every configure step: same generator, compiler and build tool as the
# enclosing build; no build type (no -O, no -g) so the consumers build quickly: they check
# packaging, not speed (each consumer TU includes linattn/models/any.hpp: 28 s at -O0 against
# 41 s at -O3, g++ 12 on this machine).
set(common_args -DCMAKE_BUILD_TYPE=)
if(GENERATOR)
  list(APPEND common_args -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
  list(APPEND common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(MAKE_PROGRAM)
  list(APPEND common_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
# linattn's own option, for the linattn build (find_package) or the subproject (add_subdirectory).
if(DEFINED OPENMP AND NOT OPENMP STREQUAL "")
  set(linattn_args "-DLINATTN_OPENMP=${OPENMP}")
else()
  set(linattn_args)
endif()

function(run_step what)
  message(STATUS "[packaging.${MODE}] ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[packaging.${MODE}] ${what} failed (${rc})")
  endif()
endfunction()

# Runs the consumer binary wherever the generator put it (bin/ or bin/Release/), with ARGN.
function(run_consumer_binary build_dir)
  foreach(candidate "${build_dir}/bin/linattn_consumer" "${build_dir}/bin/Release/linattn_consumer")
    if(EXISTS "${candidate}")
      run_step("run consumer" "${candidate}" ${ARGN})
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "[packaging.${MODE}] consumer binary not found under ${build_dir}/bin")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
include(ProcessorCount)
ProcessorCount(jobs)
if(jobs LESS 1)
  set(jobs 2)
endif()

if(MODE STREQUAL "find_package")
  set(lib_build "${WORK_DIR}/linattn-build")
  run_step("configure linattn"
    ${CMAKE_COMMAND} -S "${LINATTN_SOURCE_DIR}" -B "${lib_build}" ${common_args}
      "-DCMAKE_INSTALL_PREFIX=${prefix}" ${linattn_args}
      -DLINATTN_BUILD_TESTS=OFF -DLINATTN_BUILD_BENCH=OFF -DLINATTN_BUILD_EXAMPLES=OFF)
  run_step("build linattn" ${CMAKE_COMMAND} --build "${lib_build}" --config Release -j ${jobs})
  run_step("install linattn" ${CMAKE_COMMAND} --install "${lib_build}" --config Release)

  # The installed package: config files, targets, and every header of the source tree.
  file(GLOB_RECURSE config_files "${prefix}/*/linattnConfig.cmake")
  list(LENGTH config_files n_configs)
  if(NOT n_configs EQUAL 1)
    message(FATAL_ERROR "expected one installed linattnConfig.cmake, found: ${config_files}")
  endif()
  get_filename_component(config_dir "${config_files}" DIRECTORY)
  foreach(f linattnConfigVersion.cmake linattnTargets.cmake)
    if(NOT EXISTS "${config_dir}/${f}")
      message(FATAL_ERROR "${config_dir}/${f} was not installed")
    endif()
  endforeach()
  file(GLOB exported "${config_dir}/*.cmake")
  foreach(f IN LISTS exported)
    file(READ "${f}" text)
    if(text MATCHES "Catch2|benchmark::|linattn_dev")
      message(FATAL_ERROR "${f} mentions a test/bench-only dependency (${CMAKE_MATCH_0})")
    endif()
  endforeach()
  file(GLOB_RECURSE headers RELATIVE "${LINATTN_SOURCE_DIR}/include" "${LINATTN_SOURCE_DIR}/include/*.hpp")
  foreach(h IN LISTS headers)
    if(NOT EXISTS "${prefix}/include/${h}")
      message(FATAL_ERROR "header ${h} was not installed into ${prefix}/include")
    endif()
  endforeach()

  set(consumer_build "${WORK_DIR}/consumer-build")
  run_step("configure consumer"
    ${CMAKE_COMMAND} -S "${consumer_src}" -B "${consumer_build}" ${common_args}
      "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
else()
  set(consumer_build "${WORK_DIR}/consumer-build")
  run_step("configure consumer"
    ${CMAKE_COMMAND} -S "${consumer_src}" -B "${consumer_build}" ${common_args}
      "-DLINATTN_SOURCE_DIR=${LINATTN_SOURCE_DIR}" ${linattn_args})
endif()

run_step("build consumer" ${CMAKE_COMMAND} --build "${consumer_build}" --config Release -j ${jobs})
if(MODE STREQUAL "find_package")
  run_consumer_binary("${consumer_build}" "${LINATTN_SOURCE_DIR}/tests/data/model_gla")  # + the installed loaders
else()
  run_consumer_binary("${consumer_build}")
endif()
message(STATUS "[packaging.${MODE}] passed")
