# cmake -DCOMPILER=... -DSOURCE=... -DFLAGS=... -DPATTERN=regex -P CheckFirstError.cmake
# Compiles SOURCE (syntax only), expects it to fail, and checks that the first error the
# compiler prints matches PATTERN: the error a user sees first is the one that explains.
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND ${COMPILER} ${flags} -fsyntax-only ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled with ${FLAGS}; it should not")
endif()
string(REGEX MATCH "error: [^\n]*" first "${err}")
if(NOT first MATCHES "${PATTERN}")
  message(FATAL_ERROR "the first error is\n  ${first}\nnot one matching ${PATTERN}; compiler output:\n${err}")
endif()
message(STATUS "first error: ${first}")
