# ctest driver: install the build tree into a scratch prefix, then build and
# run consumers through find_package(pagepool) and through pkg-config, check
# the package's components, and run the installed tools.
#   1. consumer/        find_package(pagepool), no COMPONENTS (all of them):
#        consumer            pagepool::pagepool
#        fwd_consumer        pagepool::fwd: two sim devices, ~0.2 s
#        providers_consumer  pagepool::uring + xdp + fwd_xsk
#   2. core_consumer/   find_package(pagepool COMPONENTS core), nothing else
#                       loaded; components/ (configure only): a component
#                       that does not exist fails, saying so
#   3. the same with liburing's, libxdp's and libbpf's pkg-config modules
#      hidden: core_consumer builds and runs, the default set is core and
#      fwd, COMPONENTS uring / xdp fail naming the module and the Debian
#      package (skipped, with a note, if they cannot be hidden)
#   4. pkg-config, one consumer per .pc set
#   5. the tools (COMPONENT tools): each one installed runs from
#      <prefix>/bin, and --component tools installs them alone
cmake_minimum_required(VERSION 3.25)  # script mode: this version's policies (IN_LIST)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    WORKING_DIRECTORY ${WORK_DIR} TIMEOUT 300)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
  set(run_all "${out}${err}" PARENT_SCOPE)
endfunction()

# run_fails(COMMAND cmd... MATCH regex...): cmd must exit non-zero with
# every regex in its output.
function(run_fails)
  cmake_parse_arguments(a "" "" "COMMAND;MATCH" ${ARGN})
  execute_process(COMMAND ${a_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    WORKING_DIRECTORY ${WORK_DIR} TIMEOUT 300)
  if(rc EQUAL 0)
    message(FATAL_ERROR "succeeded, expected to fail: ${a_COMMAND}\n${out}\n${err}")
  endif()
  foreach(re IN LISTS a_MATCH)
    if(NOT "${out}${err}" MATCHES "${re}")
      message(FATAL_ERROR "failed without \"${re}\" in its output: ${a_COMMAND}\n${out}\n${err}")
    endif()
  endforeach()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
set(consumer_args -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX})

# 1. CMake package, every component.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/cmake-build
    ${consumer_args})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
foreach(exe consumer fwd_consumer providers_consumer)
  run(${WORK_DIR}/cmake-build/${exe})
  message(STATUS "find_package ${exe}: ${run_out}")
endforeach()

# 2. Components: core alone; one that does not exist; uring alone loads
# core with it and nothing else.
function(core_consumer label dir)  # ARGN: a prefix to the commands (an environment)
  run(${ARGN} ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/core_consumer -B ${dir}
      ${consumer_args})
  run(${ARGN} ${CMAKE_COMMAND} --build ${dir})
  run(${dir}/core_consumer)
  message(STATUS "find_package COMPONENTS core${label}: ${run_out}")
endfunction()
core_consumer("" ${WORK_DIR}/core-build)

set(components_src ${SOURCE_DIR}/tests/install/components)
run_fails(COMMAND ${CMAKE_COMMAND} -S ${components_src} -B ${WORK_DIR}/components-nosuch
    ${consumer_args} -DPP_COMPONENTS=core,nosuch
  MATCH "no component \"nosuch\"" "core, fwd, uring, xdp")
message(STATUS "find_package COMPONENTS nosuch: fails at configure")
run(${CMAKE_COMMAND} -S ${components_src} -B ${WORK_DIR}/components-uring ${consumer_args}
    -DPP_COMPONENTS=uring -DPP_EXPECT_FOUND=core,uring -DPP_EXPECT_MISSING=fwd,xdp)

# 3. The same with the providers' pkg-config modules out of sight: pkg-config
# searches only an empty folder (PKG_CONFIG_LIBDIR) and, through
# CMAKE_PREFIX_PATH, the scratch prefix, which holds pagepool's .pc files
# only. The core needs no pkg-config module (it links -lnuma by name).
set(empty ${WORK_DIR}/empty-pkgconfig)
file(MAKE_DIRECTORY ${empty})
set(hidden ${CMAKE_COMMAND} -E env --unset=PKG_CONFIG_PATH --unset=CMAKE_PREFIX_PATH
    PKG_CONFIG_LIBDIR=${empty})
find_program(pkg_config NAMES pkg-config pkgconf)
set(hideable ${pkg_config})
foreach(module liburing libxdp libbpf)
  if(pkg_config)
    execute_process(COMMAND ${hidden} ${pkg_config} --exists ${module} RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      set(hideable "")
    endif()
  endif()
endforeach()
if(NOT hideable)
  message(STATUS "hidden pkg-config modules: skipped, pkg-config still finds liburing, "
    "libxdp or libbpf with PKG_CONFIG_LIBDIR=${empty} (or there is no pkg-config)")
else()
  core_consumer(" (providers' modules hidden)" ${WORK_DIR}/core-build-hidden ${hidden})
  run(${hidden} ${CMAKE_COMMAND} -S ${components_src} -B ${WORK_DIR}/components-default-hidden
      ${consumer_args} -DPP_EXPECT_FOUND=core,fwd -DPP_EXPECT_MISSING=uring,xdp)
  foreach(re "component uring not loaded" "liburing-dev" "component xdp not loaded" "libxdp-dev")
    if(NOT run_all MATCHES "${re}")
      message(FATAL_ERROR "default components, providers hidden: no \"${re}\" in\n${run_all}")
    endif()
  endforeach()
  run(${hidden} ${CMAKE_COMMAND} -S ${components_src} -B ${WORK_DIR}/components-optional-hidden
      ${consumer_args} -DPP_COMPONENTS=fwd -DPP_OPTIONAL=xdp
      -DPP_EXPECT_FOUND=core,fwd -DPP_EXPECT_MISSING=uring,xdp)
  run_fails(COMMAND ${hidden} ${CMAKE_COMMAND} -S ${components_src}
      -B ${WORK_DIR}/components-uring-hidden ${consumer_args} -DPP_COMPONENTS=uring
    MATCH "component uring" "module liburing not found" "liburing-dev")
  run_fails(COMMAND ${hidden} ${CMAKE_COMMAND} -S ${components_src}
      -B ${WORK_DIR}/components-xdp-hidden ${consumer_args} -DPP_COMPONENTS=core,xdp
    MATCH "component xdp" "module libxdp not found" "libxdp-dev" "module libbpf not found"
          "libbpf-dev")
  message(STATUS "providers' pkg-config modules hidden: core and fwd load; uring and xdp "
    "fail naming liburing-dev, libxdp-dev, libbpf-dev")
endif()

# 4. pkg-config, one consumer per .pc set.
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

# 5. Tools. pagepool-fwd is always built; the others when their dependencies
# were found (CLI11, clang for the BPF programs; PAGEPOOL_BENCH). What is in
# <prefix>/bin must be known tools, pagepool-fwd among them, each running
# from there; the tools component must install exactly the same.
set(known pagepool-fwd pagepool-bench pagepool-gen pagepool-sink xsk-minfwd)
file(GLOB tools RELATIVE ${prefix} ${prefix}/bin/*)
if(NOT "bin/pagepool-fwd" IN_LIST tools)
  message(FATAL_ERROR "pagepool-fwd not installed in ${prefix}/bin (there: ${tools})")
endif()
foreach(t IN LISTS tools)
  get_filename_component(name ${t} NAME)
  if(NOT name IN_LIST known)
    message(FATAL_ERROR "${prefix}/${t}: not a known tool (${known})")
  endif()
  run(${prefix}/${t} --help)
  list(REMOVE_ITEM known ${name})
endforeach()
if(known)
  message(STATUS "tools not installed (not built here): ${known}")
endif()
run(${prefix}/bin/pagepool-fwd --duration 0.2 --quiet)
message(STATUS "installed tools run (--help): ${tools}; "
  "bin/pagepool-fwd --duration 0.2 --quiet: ok")

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/tools-prefix --component tools)
file(GLOB_RECURSE files RELATIVE ${WORK_DIR}/tools-prefix ${WORK_DIR}/tools-prefix/*)
list(SORT files)
list(SORT tools)
if(NOT files STREQUAL tools)
  message(FATAL_ERROR "--component tools installed \"${files}\", expected \"${tools}\"")
endif()
message(STATUS "--component tools: ${files}")
