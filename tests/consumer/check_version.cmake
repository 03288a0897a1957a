# Checks that include/alloy/version.hpp and project(VERSION) in CMakeLists.txt agree: the
# numeric macros, the version string and the versioned inline namespace. Run as a script:
#   cmake -DALLOY_SOURCE_DIR=<alloy source> -DVERSION=<project version> -P check_version.cmake
cmake_minimum_required(VERSION 3.25)

if(NOT VERSION MATCHES "^([0-9]+)\\.([0-9]+)\\.([0-9]+)$")
  message(FATAL_ERROR "check_version.cmake: -DVERSION=x.y.z is required (got '${VERSION}')")
endif()
set(want_major "${CMAKE_MATCH_1}")
set(want_minor "${CMAKE_MATCH_2}")
set(want_patch "${CMAKE_MATCH_3}")

set(header "${ALLOY_SOURCE_DIR}/include/alloy/version.hpp")
file(READ "${header}" text)
set(errors "")
foreach(part IN ITEMS MAJOR MINOR PATCH)
  string(TOLOWER "${part}" lower)
  if(NOT text MATCHES "#define ALLOY_VERSION_${part} ([0-9]+)")
    string(APPEND errors "  no #define ALLOY_VERSION_${part}\n")
  elseif(NOT CMAKE_MATCH_1 STREQUAL want_${lower})
    string(APPEND errors "  ALLOY_VERSION_${part} is ${CMAKE_MATCH_1}, expected ${want_${lower}}\n")
  endif()
endforeach()
if(NOT text MATCHES "#define ALLOY_VERSION_STRING \"([^\"]*)\"")
  string(APPEND errors "  no #define ALLOY_VERSION_STRING\n")
elseif(NOT CMAKE_MATCH_1 STREQUAL VERSION)
  string(APPEND errors "  ALLOY_VERSION_STRING is \"${CMAKE_MATCH_1}\", expected \"${VERSION}\"\n")
endif()
set(ns "v${want_major}_${want_minor}_${want_patch}")
if(NOT text MATCHES "inline namespace ${ns} *{")
  string(APPEND errors "  the versioned inline namespace is not ${ns}\n")
endif()

if(errors)
  message(FATAL_ERROR "${header} disagrees with project(alloy VERSION ${VERSION}):\n${errors}"
                      "Update the header and CMakeLists.txt together.")
endif()
message(STATUS "version.hpp matches project(VERSION ${VERSION}), namespace ${ns}")
