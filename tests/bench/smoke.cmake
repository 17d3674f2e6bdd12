# bench.smoke: `pagepool-bench --quick --out OUT` exits 0 and writes the
# markdown, the CSVs (with no failed case) and, with gnuplot, the chart.
# Also: a bad option exits non-zero.
file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${BENCH}" --quick --out "${OUT}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pagepool-bench --quick exited ${rc}\n${out}\n${err}")
endif()
foreach(f results.md results.csv raw.csv)
  if(NOT EXISTS "${OUT}/${f}")
    message(FATAL_ERROR "pagepool-bench did not write ${OUT}/${f}")
  endif()
endforeach()
if(WANT_PNG AND NOT EXISTS "${OUT}/chart.png")
  message(FATAL_ERROR "gnuplot is installed but ${OUT}/chart.png is missing")
endif()
file(READ "${OUT}/results.csv" csv)
if(csv MATCHES ",fail,")
  message(FATAL_ERROR "a case failed:\n${csv}")
endif()
if(NOT csv MATCHES "S1,S1,0,pagepool,ok,")
  message(FATAL_ERROR "no pagepool S1 result:\n${csv}")
endif()
# mapping: measured, or skipped (n/a) where io_uring is unavailable.
if(NOT csv MATCHES "mapping,mapping,0,uring-pool,(ok|n/a),")
  message(FATAL_ERROR "no mapping result:\n${csv}")
endif()
if(NOT out MATCHES "\\| S1 \\|")
  message(FATAL_ERROR "the markdown table was not printed:\n${out}")
endif()

# --tag-colour: the run says where the tags went, and every case passes.
execute_process(COMMAND "${BENCH}" --quick --tag-colour --scenarios S1,S2b,S4 --allocators pagepool,stack
    --reps 1 --out "${OUT}-colour"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pagepool-bench --tag-colour exited ${rc}\n${out}\n${err}")
endif()
file(READ "${OUT}-colour/results.csv" csv)
if(csv MATCHES ",fail," OR NOT csv MATCHES "S2b,S2b,0,pagepool,ok,")
  message(FATAL_ERROR "--tag-colour: a case failed or is missing:\n${csv}")
endif()
if(NOT out MATCHES "--tag-colour\\)")
  message(FATAL_ERROR "--tag-colour: the machine notes do not say where the tags went:\n${out}")
endif()

execute_process(COMMAND "${BENCH}" --scenarios S9 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "pagepool-bench --scenarios S9 exited 0")
endif()
message(STATUS "smoke: ok (${OUT})")
