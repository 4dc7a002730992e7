# Runs tools/kettle-gdb.py's `kettle tasks` on the call_graph example, stopped in
# print_tasks() while its other tasks are suspended, and checks what it names.
#   cmake -DGDB=<gdb> -DSCRIPT=<kettle-gdb.py> -DPROGRAM=<call_graph> -P check_gdb.cmake
execute_process(
  COMMAND ${GDB} -batch -nx -x ${SCRIPT} -ex "set pagination off"
          -ex "break kettle::print_tasks" -ex run -ex "kettle tasks" -ex kill --args ${PROGRAM}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 120)
foreach(want "Event loop 0x" "* Task(name='Levitate', id=0x" "* Task(name='Task-1', id=0x"
             "in kettle::sleep()" "call_graph.cpp', line 41, in async play"
             "in kettle::TaskGroup::__aexit__()" "call_graph.cpp', line 50, in async album"
             "  + Awaited by:\n    * Task(name='Sundowning', id=0x")
  string(FIND "${out}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "kettle tasks did not print '${want}'.\n--- gdb said:\n${out}\n${err}")
  endif()
endforeach()
message(STATUS "ok: kettle tasks")
