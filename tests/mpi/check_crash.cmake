# Runs COMMAND (mpiexec ... crash_worker) and checks that it ends, failed, with the launcher
# reporting the dead rank or the root reporting its timeout.
execute_process(COMMAND ${COMMAND} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc
                TIMEOUT 120)
string(APPEND out "${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the job succeeded although a worker died:\n${out}")
endif()
if(NOT out MATCHES "BAD TERMINATION|exited on signal|root: TimeoutError|terminated")
  message(FATAL_ERROR "no report of the dead worker (exit ${rc}):\n${out}")
endif()
message(STATUS "the job ended (exit ${rc}) and reported the dead worker")
