# Tests that hold alloy to what a downstream project sees (included from tests/CMakeLists.txt):
#   consumer.subdirectory, consumer.fetchcontent, consumer.find_package
#       configure, build and run tests/consumer/project against alloy in a fresh directory, one
#       way of consuming it each (run_consumer.cmake); alloy must add only its library target.
#   consumer.version_header   include/alloy/version.hpp agrees with project(VERSION)
#   docs.snippets             the C++ blocks of docs/ compile (check_docs.cmake)

set(_alloy_consumer_dir "${CMAKE_CURRENT_LIST_DIR}")
set(_alloy_consumer_work "${CMAKE_CURRENT_BINARY_DIR}/consumer")

set(_alloy_consumer_tool_args "-DGENERATOR=${CMAKE_GENERATOR}"
                              "-DCXX_COMPILER=${CMAKE_CXX_COMPILER}")
if(CMAKE_MAKE_PROGRAM)
  list(APPEND _alloy_consumer_tool_args "-DMAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}")
endif()

foreach(_mode IN ITEMS subdirectory fetchcontent find_package)
  add_test(NAME consumer.${_mode}
           COMMAND "${CMAKE_COMMAND}" -DMODE=${_mode} "-DALLOY_SOURCE_DIR=${alloy_SOURCE_DIR}"
                   "-DWORK_DIR=${_alloy_consumer_work}/${_mode}" ${_alloy_consumer_tool_args}
                   -P "${_alloy_consumer_dir}/run_consumer.cmake")
  set_tests_properties(consumer.${_mode} PROPERTIES LABELS consumer TIMEOUT 180)
endforeach()

add_test(NAME consumer.version_header
         COMMAND "${CMAKE_COMMAND}" "-DALLOY_SOURCE_DIR=${alloy_SOURCE_DIR}"
                 "-DVERSION=${alloy_VERSION}" -P "${_alloy_consumer_dir}/check_version.cmake")
set_tests_properties(consumer.version_header PROPERTIES LABELS consumer TIMEOUT 30)

# The snippet check drives the compiler with GCC-style flags.
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  add_test(NAME docs.snippets
           COMMAND "${CMAKE_COMMAND}" "-DALLOY_SOURCE_DIR=${alloy_SOURCE_DIR}"
                   "-DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/docs-snippets"
                   "-DCXX_COMPILER=${CMAKE_CXX_COMPILER}"
                   -P "${_alloy_consumer_dir}/check_docs.cmake")
  set_tests_properties(docs.snippets PROPERTIES LABELS docs TIMEOUT 180)
endif()
