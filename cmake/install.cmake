# Install: headers, the libraries, a CMake package in components and
# pkg-config files. The command-line tools (pagepool-fwd, pagepool-bench,
# pagepool-gen, pagepool-sink, xsk-minfwd) go to bin under COMPONENT tools,
# installed where they are defined (tools/*/CMakeLists.txt); they link the
# libraries statically and carry their BPF objects, so nothing goes beside
# them. `cmake --install B --component tools` installs only them.
#
#   component  library              CMake target         pkg-config         needs
#   core       libpagepool          pagepool::pagepool   pagepool           libnuma, threads
#   fwd        libpagepool_fwd_prog pagepool::fwd_prog   pagepool-fwd-prog  -
#              libpagepool_fwd      pagepool::fwd        pagepool-fwd       core
#   uring      libpagepool_uring    pagepool::uring      pagepool-uring     core, liburing
#   xdp        libpagepool_xdp      pagepool::xdp        pagepool-xdp       core, libxdp, libbpf
#              libpagepool_fwd_xsk  pagepool::fwd_xsk    pagepool-fwd-xsk   fwd, xdp
#
# Every installed header has its library here: pagepool/providers/uring.hpp
# (uring), providers/umem.hpp (xdp), fwd/ (fwd_prog, fwd), devices/sim.hpp
# (fwd), devices/xsk.hpp (fwd_xsk).
#
# Each package component is its own export set and targets file, so that
# loading it (cmake/pagepoolConfig.cmake.in, which holds the same table)
# needs only its own dependencies: find_package(pagepool COMPONENTS core)
# needs neither liburing nor libxdp. A target links targets of other sets
# by their pagepool:: names; the config loads those sets first.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

function(pagepool_install_component component)
  install(TARGETS ${ARGN} EXPORT pagepool-${component}-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT pagepool-${component}-targets NAMESPACE pagepool::
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagepool)
endfunction()
pagepool_install_component(core pagepool)
pagepool_install_component(fwd pagepool_fwd_prog pagepool_fwd)
pagepool_install_component(uring pagepool_uring)
pagepool_install_component(xdp pagepool_xdp pagepool_fwd_xsk)
install(DIRECTORY include/pagepool DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
configure_package_config_file(cmake/pagepoolConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/pagepoolConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagepool)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/pagepoolConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pagepoolConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/pagepoolConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagepool)

if(PAGEPOOL_STATS)
  set(PAGEPOOL_PC_CFLAGS "-DPAGEPOOL_STATS=1")
else()
  set(PAGEPOOL_PC_CFLAGS "-DPAGEPOOL_STATS=0")
endif()
file(RELATIVE_PATH PAGEPOOL_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/pagepool.pc.in ${CMAKE_CURRENT_BINARY_DIR}/pagepool.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pagepool.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# One .pc per extra library (cmake/pagepool-lib.pc.in). The libraries are
# static, so what their code calls is in Requires, not Requires.private:
# `pkg-config --libs` (without --static) must name it for the link.
# umem.hpp also includes <xdp/xsk.h>, so libxdp's and libbpf's Cflags are
# needed too.
function(pagepool_pc name lib description requires)
  set(PC_NAME ${name})
  set(PC_LIB ${lib})
  set(PC_DESCRIPTION "${description}")
  set(PC_REQUIRES "${requires}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pagepool-lib.pc.in
    ${CMAKE_CURRENT_BINARY_DIR}/${name}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${name}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()
set(v "= ${PROJECT_VERSION}")
pagepool_pc(pagepool-uring pagepool_uring "pagepool: io_uring registered-buffer provider"
  "pagepool ${v}, liburing")
pagepool_pc(pagepool-xdp pagepool_xdp "pagepool: AF_XDP UMEM provider"
  "pagepool ${v}, libxdp, libbpf")
pagepool_pc(pagepool-fwd-prog pagepool_fwd_prog "pagepool: packet parser and verdict programs"
  "")
pagepool_pc(pagepool-fwd pagepool_fwd "pagepool: XDP-style forwarder and the sim device"
  "pagepool ${v}, pagepool-fwd-prog ${v}")
pagepool_pc(pagepool-fwd-xsk pagepool_fwd_xsk "pagepool: AF_XDP forwarder device"
  "pagepool-fwd ${v}, pagepool-xdp ${v}")
unset(v)
