# One timed libFuzzer run for ctest: cmake -DFUZZER= -DWORK= -DARTIFACTS= -DDICT= -DSECONDS= -DSEEDS= -P.
# Fails when the fuzzer does (a crash, a sanitizer report, a leak, a timeout, out of memory); the
# input that did it is left at ARTIFACTS*, to be added to tests/fuzz/corpus/<harness>/ once fixed.
file(MAKE_DIRECTORY ${WORK})
get_filename_component(artifact_dir ${ARTIFACTS} DIRECTORY)
file(MAKE_DIRECTORY ${artifact_dir})
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=20 -rss_limit_mb=2048
          -print_final_stats=1 -dict=${DICT} -artifact_prefix=${ARTIFACTS} ${WORK} ${SEEDS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the input is at ${ARTIFACTS}*")
endif()
