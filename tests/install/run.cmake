# ctest driver: install the build tree into a scratch prefix, then build and
# run consumers through find_package(pagepool) and through pkg-config:
#   consumer            pagepool::pagepool / pagepool
#   fwd_consumer        pagepool::fwd / pagepool-fwd: two sim devices, ~0.2 s
#   providers_consumer  pagepool::uring + xdp + fwd_xsk /
#                       pagepool-uring pagepool-xdp pagepool-fwd-xsk
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    TIMEOUT 300)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# 1. CMake package.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/cmake-build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
foreach(exe consumer fwd_consumer providers_consumer)
  run(${WORK_DIR}/cmake-build/${exe})
  message(STATUS "find_package ${exe}: ${run_out}")
endforeach()

# 2. pkg-config, one consumer per .pc set.
file(GLOB pcdir ${prefix}/lib*/pkgconfig ${prefix}/lib/*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "${pcdir}")
function(pc_consumer name source)
  run(pkg-config --cflags --libs ${ARGN})
  string(STRIP "${run_out}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${CXX} ${SOURCE_DIR}/tests/install/consumer/${source} ${flags} -o ${WORK_DIR}/${name})
  run(${WORK_DIR}/${name})
  message(STATUS "pkg-config ${name} (${ARGN}): ${run_out}")
endfunction()
pc_consumer(pc-consumer main.cpp pagepool)
pc_consumer(pc-fwd-consumer fwd_main.cpp pagepool-fwd)
pc_consumer(pc-providers-consumer providers_main.cpp pagepool-uring pagepool-xdp pagepool-fwd-xsk)
