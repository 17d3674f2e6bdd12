# Install: headers, the library, a CMake package (pagepool::pagepool) and
# pagepool.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS pagepool EXPORT pagepoolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/pagepool DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT pagepoolTargets NAMESPACE pagepool::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/pagepool)
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
