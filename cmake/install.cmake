# What `cmake --install build --prefix P` puts under P, laid out like SQLite's:
#   bin/coffer, lib/libcoffer.so.0.1.0 (+ libcoffer.so.0, libcoffer.so), lib/libcoffer.a,
#   include/coffer.h, lib/pkgconfig/coffer.pc, lib/cmake/coffer/ (find_package(coffer) ->
#   coffer::coffer), share/man/man1/coffer.1, coffer-serve.1, share/man/man3/libcoffer.3,
#   lib/systemd/system/coffer.service, share/doc/coffer/.
# `cpack -G DEB` in the build folder makes a .deb of the same files under /usr.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS coffer EXPORT coffer-targets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS coffer_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/coffer.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# CMake package: find_package(coffer) gives the imported target coffer::coffer (the shared
# library; its dependencies are private to it).
install(EXPORT coffer-targets NAMESPACE coffer:: FILE coffer-targets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coffer)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/coffer-config.cmake.in
  ${CMAKE_BINARY_DIR}/coffer-config.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coffer)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/coffer-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/coffer-config.cmake ${CMAKE_BINARY_DIR}/coffer-config-version.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coffer)

# pkg-config: relocatable (the prefix is found from the .pc file's own folder), so the file is
# right for whatever --prefix `cmake --install` is given. Requires.private/Libs.private are what
# a static link of libcoffer.a needs (`pkg-config --static --libs coffer`).
# libpq is named in Libs.private, not Requires.private: Debian's libpq.pc lists static-only
# helpers (-lpgcommon -lpgport) and -lgssapi_krb5 that a libpq-dev install does not carry, so
# `pkg-config --static` through it gives flags that cannot link; libpq itself stays shared.
set(COFFER_PC_REQUIRES_PRIVATE "libsodium sqlite3")
set(COFFER_PC_LIBS_PRIVATE "-pthread")
if(COFFER_WITH_POSTGRES)
  string(PREPEND COFFER_PC_LIBS_PRIVATE "-lpq ")
endif()
file(RELATIVE_PATH COFFER_PC_UP /x/${CMAKE_INSTALL_LIBDIR}/pkgconfig /x)
string(REGEX REPLACE "/$" "" COFFER_PC_UP "${COFFER_PC_UP}")
configure_file(${CMAKE_SOURCE_DIR}/cmake/coffer.pc.in ${CMAKE_BINARY_DIR}/coffer.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/coffer.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# Man pages, written in scdoc (docs/man/*.scd) and generated at build time.
find_program(SCDOC scdoc)
set(COFFER_MAN_PAGES coffer.1 coffer-serve.1 libcoffer.3)
if(SCDOC)
  set(COFFER_MAN_OUT)
  foreach(m ${COFFER_MAN_PAGES})
    add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${m}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${SCDOC} < ${CMAKE_SOURCE_DIR}/docs/man/${m}.scd > ${CMAKE_BINARY_DIR}/man/${m}
      DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/${m}.scd
      COMMENT "scdoc: ${m}")
    list(APPEND COFFER_MAN_OUT ${CMAKE_BINARY_DIR}/man/${m})
    string(REGEX MATCH "[0-9]$" sect ${m})
    install(FILES ${CMAKE_BINARY_DIR}/man/${m} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sect})
  endforeach()
  add_custom_target(coffer_man ALL DEPENDS ${COFFER_MAN_OUT})
else()
  message(STATUS "scdoc not found: man pages are not generated (apt-get install scdoc, or scripts/deps.sh)")
endif()

# The systemd unit (dist/coffer.service expects the binary at /usr/bin/coffer, as the .deb puts it).
install(FILES ${CMAKE_SOURCE_DIR}/dist/coffer.service DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/operations.md
              ${CMAKE_SOURCE_DIR}/docs/design.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)

set(CPACK_PACKAGE_NAME coffer)
set(CPACK_PACKAGE_VENDOR "coffer")
set(CPACK_PACKAGE_CONTACT "coffer developers <coffer@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "encrypted, versioned secret store: libcoffer, coffer CLI, coffer serve")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_GENERATOR DEB)
include(CPack)
