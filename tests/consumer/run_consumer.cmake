# Builds and runs the consumer project in ./project against alloy, one way of consuming it per
# call, in a fresh directory. Run as a script:
#
#   cmake -DMODE=subdirectory|fetchcontent|find_package -DALLOY_SOURCE_DIR=<alloy source>
#         -DWORK_DIR=<scratch dir, emptied first> -DGENERATOR=<generator>
#         [-DMAKE_PROGRAM=<path>] [-DCXX_COMPILER=<path>] -P run_consumer.cmake
#
# find_package mode first configures alloy's source alone (no tests, examples or CUDA) and
# installs it to WORK_DIR/prefix. Every mode then checks that the program's ALLOY_VERSION_STRING
# equals project(VERSION) in alloy's CMakeLists.txt.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS MODE ALLOY_SOURCE_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

set(project_dir "${CMAKE_CURRENT_LIST_DIR}/project")
set(tool_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND tool_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND tool_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
list(APPEND tool_args -DCMAKE_BUILD_TYPE=Release)

# Runs a command, echoes what it ran, and stops with its output if it fails.
function(run_step what)
  message(STATUS "[${MODE}] ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "[${MODE}] ${what} failed (${rc}):\n  ${cmd}\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# The version alloy's build declares.
file(STRINGS "${ALLOY_SOURCE_DIR}/CMakeLists.txt" project_lines REGEX "^[ \t]*VERSION[ \t]+[0-9]")
if(NOT project_lines MATCHES "VERSION[ \t]+([0-9]+\\.[0-9]+\\.[0-9]+)")
  message(FATAL_ERROR "cannot find project(... VERSION x.y.z) in ${ALLOY_SOURCE_DIR}/CMakeLists.txt")
endif()
set(project_version "${CMAKE_MATCH_1}")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(consumer_args "-DALLOY_CONSUME=${MODE}")

if(MODE STREQUAL "subdirectory")
  list(APPEND consumer_args "-DALLOY_SOURCE_DIR=${ALLOY_SOURCE_DIR}")
elseif(MODE STREQUAL "fetchcontent")
  # An archive of the source tree, as a release tarball would hold it (build trees left out).
  set(entries "")
  foreach(e IN ITEMS CMakeLists.txt cmake include tests examples LICENSE README.md)
    if(EXISTS "${ALLOY_SOURCE_DIR}/${e}")
      list(APPEND entries "${e}")
    endif()
  endforeach()
  set(archive "${WORK_DIR}/alloy-src.tar.gz")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E tar czf "${archive}" -- ${entries}
                  WORKING_DIRECTORY "${ALLOY_SOURCE_DIR}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[${MODE}] could not pack ${ALLOY_SOURCE_DIR} into ${archive}")
  endif()
  file(SHA256 "${archive}" hash)
  list(APPEND consumer_args "-DALLOY_URL=file://${archive}" "-DALLOY_URL_HASH=SHA256=${hash}")
elseif(MODE STREQUAL "find_package")
  set(alloy_build "${WORK_DIR}/alloy-build")
  set(prefix "${WORK_DIR}/prefix")
  run_step("configure alloy alone" "${CMAKE_COMMAND}" -S "${ALLOY_SOURCE_DIR}" -B "${alloy_build}"
           ${tool_args} -DALLOY_BUILD_TESTS=OFF -DALLOY_BUILD_EXAMPLES=OFF -DALLOY_CUDA=OFF)
  run_step("build alloy" "${CMAKE_COMMAND}" --build "${alloy_build}" --config Release)
  run_step("install alloy" "${CMAKE_COMMAND}" --install "${alloy_build}" --config Release
           --prefix "${prefix}")
  foreach(f IN ITEMS include/alloy/alloy.hpp include/alloy/version.hpp)
    if(NOT EXISTS "${prefix}/${f}")
      message(FATAL_ERROR "[${MODE}] the install has no ${f}")
    endif()
  endforeach()
  file(GLOB_RECURSE config_files "${prefix}/*/alloyConfig.cmake" "${prefix}/*/alloyConfigVersion.cmake")
  list(LENGTH config_files n)
  if(NOT n EQUAL 2)
    message(FATAL_ERROR "[${MODE}] expected alloyConfig.cmake and alloyConfigVersion.cmake in the install, found: ${config_files}")
  endif()
  list(APPEND consumer_args "-DCMAKE_PREFIX_PATH=${prefix}")
else()
  message(FATAL_ERROR "MODE='${MODE}': expected subdirectory, fetchcontent or find_package")
endif()

set(consumer_build "${WORK_DIR}/consumer-build")
run_step("configure the consumer" "${CMAKE_COMMAND}" -S "${project_dir}" -B "${consumer_build}"
         ${tool_args} ${consumer_args})
run_step("build the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}" --config Release)
if(step_output MATCHES "warning:")
  message(WARNING "[${MODE}] compiling the consumer against alloy gave warnings:\n${step_output}")
endif()
run_step("run the consumer" "${consumer_build}/bin/consumer${CMAKE_EXECUTABLE_SUFFIX}")
message(STATUS "${step_output}")

if(NOT step_output MATCHES "alloy version: ([^\n]+)")
  message(FATAL_ERROR "[${MODE}] the consumer printed no version")
endif()
if(NOT CMAKE_MATCH_1 STREQUAL project_version)
  message(FATAL_ERROR "[${MODE}] ALLOY_VERSION_STRING is '${CMAKE_MATCH_1}' but "
                      "CMakeLists.txt declares project(alloy VERSION ${project_version}); "
                      "update include/alloy/version.hpp")
endif()
message(STATUS "[${MODE}] passed: alloy ${project_version}")
