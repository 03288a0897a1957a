// alloy version: kept in step with project(VERSION) in CMakeLists.txt (a test checks).
#pragma once

#define ALLOY_VERSION_MAJOR 0
#define ALLOY_VERSION_MINOR 1
#define ALLOY_VERSION_PATCH 0
#define ALLOY_VERSION_STRING "0.1.0"

// Everything lives in a versioned inline namespace, so two shared objects that include
// different alloy versions never exchange kernels or types by accident.
#define ALLOY_NAMESPACE_BEGIN \
  namespace alloy {           \
  inline namespace v0_1_0 {
#define ALLOY_NAMESPACE_END \
  }                         \
  }
