# Compiles the C++ code blocks of the documentation. Run as a script:
#   cmake -DALLOY_SOURCE_DIR=<alloy source> -DWORK_DIR=<scratch dir> -DCXX_COMPILER=<c++>
#         -P check_docs.cmake
#
# Every ```cpp (or ```c++) block in docs/*.md and docs/policies/*.md must begin with one of
#   // compile-check   a complete program: compiled here with -fsyntax-only against include/
#   // fragment        a piece of code that cannot stand alone (not compiled)
# so that no snippet is left unchecked by accident.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS ALLOY_SOURCE_DIR WORK_DIR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_docs.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
file(GLOB pages "${ALLOY_SOURCE_DIR}/docs/*.md" "${ALLOY_SOURCE_DIR}/docs/policies/*.md")
list(SORT pages)

set(fence "```")
set(compiled 0)
set(fragments 0)
set(failures "")
foreach(page IN LISTS pages)
  file(RELATIVE_PATH rel "${ALLOY_SOURCE_DIR}" "${page}")
  string(MAKE_C_IDENTIFIER "${rel}" stem)
  file(READ "${page}" text)
  set(offset 0)  # of `rest` within `text`
  set(n 0)
  while(TRUE)
    string(SUBSTRING "${text}" ${offset} -1 rest)
    string(REGEX MATCH "(^|\n)${fence}(cpp|c\\+\\+)[ \t]*\n" open "${rest}")
    if(NOT open)
      break()
    endif()
    string(FIND "${rest}" "${open}" at)
    string(LENGTH "${open}" open_len)
    math(EXPR body_at "${offset} + ${at} + ${open_len}")
    string(SUBSTRING "${text}" ${body_at} -1 rest)
    string(FIND "${rest}" "\n${fence}" close)
    if(close EQUAL -1)
      message(FATAL_ERROR "${rel}: a ${fence}cpp block is never closed")
    endif()
    math(EXPR close_len "${close} + 1")
    string(SUBSTRING "${rest}" 0 ${close_len} body)
    math(EXPR offset "${body_at} + ${close} + 4")

    # Line number of the block's first line, for messages.
    string(SUBSTRING "${text}" 0 ${body_at} before)
    string(REGEX MATCHALL "\n" newlines "${before}")
    list(LENGTH newlines line)
    math(EXPR line "${line} + 1")
    math(EXPR n "${n} + 1")

    if(body MATCHES "^// compile-check")
      set(src "${WORK_DIR}/${stem}_${n}.cpp")
      file(WRITE "${src}" "#line ${line} \"${rel}\"\n${body}")
      execute_process(
        COMMAND "${CXX_COMPILER}" -std=c++20 -fsyntax-only -Wall -Wextra -Werror
                -Wno-missing-field-initializers "-I${ALLOY_SOURCE_DIR}/include" "${src}"
        RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
      if(NOT rc EQUAL 0)
        string(APPEND failures "${rel}:${line}: the block does not compile:\n${out}\n")
      endif()
      math(EXPR compiled "${compiled} + 1")
    elseif(body MATCHES "^// fragment")
      math(EXPR fragments "${fragments} + 1")
    else()
      string(APPEND failures "${rel}:${line}: a C++ block must begin with '// compile-check' "
                             "(a complete program, compiled by this test) or '// fragment' "
                             "(code that cannot stand alone)\n")
    endif()
  endwhile()
endforeach()

if(failures)
  message(FATAL_ERROR "${failures}")
endif()
if(compiled EQUAL 0)
  message(FATAL_ERROR "no '// compile-check' blocks found under ${ALLOY_SOURCE_DIR}/docs")
endif()
message(STATUS "docs: ${compiled} blocks compiled, ${fragments} fragments skipped")
