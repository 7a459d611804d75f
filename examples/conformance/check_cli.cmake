# Negative / command-line tests of linattn-conformance, run as a script by ctest
# (registered in tests/CMakeLists.txt):
#
#   cmake -DCASE=usage|rejects_garbage|rejects_unknown_kind -DCONFORMANCE=<linattn-conformance>
#         [-DFIXTURE=<linattn-conformance-fixture>] [-DDATA_DIR=<tests/data>] [-DWORK_DIR=<scratch>]
#         -P check_cli.cmake
#
# usage                 no arguments: exit status 2 and a usage text.
# rejects_garbage       a file that is not safetensors, then a good golden file: exit status 1,
#                       "<file>: error: ..." for the first, and the good file is still checked (PASS).
# rejects_unknown_kind  a well-formed file whose metadata kind is "op.nonsense" (written by FIXTURE
#                       into WORK_DIR): exit status 1 and "unknown op kind 'op.nonsense' (known: ...)".
cmake_minimum_required(VERSION 3.25)

foreach(var CASE CONFORMANCE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_cli.cmake: -D${var}=... is required")
  endif()
endforeach()

# Runs linattn-conformance with ARGN; checks its exit status and that the combined output
# matches every regex in MATCHES.
function(expect_run want_rc)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "ARGS;MATCHES")
  execute_process(COMMAND "${CONFORMANCE}" ${arg_ARGS}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  message(STATUS "linattn-conformance ${arg_ARGS} -> exit ${rc}\n${all}")
  if(NOT rc STREQUAL "${want_rc}")
    message(FATAL_ERROR "expected exit status ${want_rc}, got '${rc}'")
  endif()
  foreach(re IN LISTS arg_MATCHES)
    if(NOT all MATCHES "${re}")
      message(FATAL_ERROR "output does not match '${re}'")
    endif()
  endforeach()
endfunction()

if(CASE STREQUAL "usage")
  expect_run(2 MATCHES "usage: linattn-conformance")
elseif(CASE STREQUAL "rejects_garbage")
  set(garbage "${DATA_DIR}/GOLDEN-README.md")
  set(good "${DATA_DIR}/gla_b1_t1_h1_k16_v16.safetensors")
  expect_run(1 ARGS "${garbage}" "${good}"
    MATCHES "GOLDEN-README\\.md: error: [^\n]+"
            "gla_b1_t1_h1_k16_v16 recurrent max_abs=[^ ]+ max_rel=[^ ]+ PASS")
elseif(CASE STREQUAL "rejects_unknown_kind")
  if(NOT FIXTURE OR NOT WORK_DIR)
    message(FATAL_ERROR "check_cli.cmake: rejects_unknown_kind needs -DFIXTURE=... and -DWORK_DIR=...")
  endif()
  file(MAKE_DIRECTORY "${WORK_DIR}")
  set(file "${WORK_DIR}/op_nonsense.safetensors")
  execute_process(COMMAND "${FIXTURE}" "${file}" op.nonsense RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${FIXTURE} failed (${rc})")
  endif()
  expect_run(1 ARGS "${file}"
    MATCHES "op_nonsense\\.safetensors: error: unknown op kind 'op\\.nonsense' \\(known: [^)]*op\\.gla[^)]*\\)")
else()
  message(FATAL_ERROR "check_cli.cmake: unknown CASE '${CASE}'")
endif()
